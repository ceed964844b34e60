"""Short-lived stream tokens: HMAC-signed with a node secret, good only for opening the stream."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass

TOKEN_PREFIX = "reef_st_"
PURPOSE = "stream"


@dataclass(frozen=True, slots=True)
class StreamToken:
    token: str
    agent_id: uuid.UUID
    expires_at: float


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue_token(secret: bytes, agent_id: uuid.UUID, ttl_seconds: int, now: float | None = None) -> StreamToken:
    expires = int((now if now is not None else time.time()) + ttl_seconds)
    body = _b64(json.dumps({"a": str(agent_id), "p": PURPOSE, "e": expires, "n": uuid.uuid4().hex[:8]}).encode())
    sig = _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())
    return StreamToken(f"{TOKEN_PREFIX}{body}.{sig}", agent_id, float(expires))


class TokenError(ValueError):
    """Why a token was refused: the message is safe to show the client."""


def verify_token(secret: bytes, token: str, now: float | None = None) -> uuid.UUID:
    """The agent id the token was issued to, or TokenError."""
    if not token.startswith(TOKEN_PREFIX) or token.count(".") != 1:
        raise TokenError("Malformed stream token.")
    body, sig = token[len(TOKEN_PREFIX):].split(".")
    expected = _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(sig, expected):
        raise TokenError("Invalid stream token.")
    try:
        claims = json.loads(_unb64(body))
        agent_id = uuid.UUID(claims["a"])
        expires = float(claims["e"])
        purpose = claims["p"]
    except (ValueError, KeyError, TypeError):
        raise TokenError("Malformed stream token.") from None
    if purpose != PURPOSE:
        raise TokenError("This token is not for the stream.")
    if expires <= (now if now is not None else time.time()):
        raise TokenError("This stream token has expired.")
    return agent_id
