"""Signed session cookies: a random token, HMAC-signed with the node's secret; logins are also rows in web_sessions.

Every visitor gets a cookie (anonymous ones too: the token binds the CSRF tokens of the login and claim
forms). A logged-in cookie names a web_sessions row by the token's hash; logging out deletes the row,
so the cookie dies at once, and it expires with the row in any case.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from aiohttp import web

from node.platform import appkeys
from node.stores import web_accounts as store
from node.stores.web_accounts import Account

COOKIE = "reef_session"
LOGIN_SECONDS = 14 * 24 * 3600
ANONYMOUS_SECONDS = 7 * 24 * 3600
SECRET_NAME = "web_session"

SECRET = web.AppKey("web_secret", bytes)


@dataclass(frozen=True, slots=True)
class WebSession:
    token: str                 # random; binds CSRF tokens; for logins its hash is the web_sessions key
    expires: int               # unix time
    account: Account | None    # None: an anonymous visitor
    fresh: bool = False        # the cookie must be (re)sent with this response


SESSION = web.RequestKey("web_session", WebSession)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign(secret: bytes, payload: str) -> str:
    mac = hmac.new(secret, payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{_b64(mac)}"


def unsign(secret: bytes, value: str) -> str | None:
    """The payload of a signed value, or None when the signature does not match."""
    payload, _, mac = value.rpartition(".")
    if not payload or not mac:
        return None
    expected = sign(secret, payload)
    return payload if hmac.compare_digest(expected.encode(), value.encode()) else None


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _new(seconds: int, account: Account | None) -> WebSession:
    return WebSession(token=secrets.token_urlsafe(32), expires=int(time.time()) + seconds, account=account, fresh=True)


def anonymous() -> WebSession:
    return _new(ANONYMOUS_SECONDS, None)


def _parse(secret: bytes, raw: str | None) -> tuple[str, str, int] | None:
    """(kind, token, expires) of a valid, unexpired cookie."""
    if not raw or len(raw) > 512:
        return None
    payload = unsign(secret, raw)
    if payload is None:
        return None
    parts = payload.split(":")
    if len(parts) != 3 or parts[0] not in ("a", "u") or not parts[2].isdigit():
        return None
    kind, token, expires = parts[0], parts[1], int(parts[2])
    if expires <= time.time():
        return None
    return kind, token, expires


async def load_session(request: web.Request) -> WebSession:
    """The visitor's session: one query for a login, none for an anonymous visitor."""
    parsed = _parse(request.app[SECRET], request.cookies.get(COOKIE))
    if parsed is None:
        return anonymous()
    kind, token, expires = parsed
    if kind == "a":
        return WebSession(token=token, expires=expires, account=None)
    async with request.app[appkeys.POOL].acquire() as conn:
        account = await store.get_session_account(conn, token_hash(token))
    if account is None:  # logged out elsewhere, or expired
        return anonymous()
    return WebSession(token=token, expires=expires, account=account)


def current(request: web.Request) -> WebSession:
    return request[SESSION]


def current_account(request: web.Request) -> Account | None:
    session = request.get(SESSION)
    return session.account if session else None


async def log_in(request: web.Request, account: Account) -> None:
    """A new token for the login (never the anonymous one: no session fixation), stored as a row."""
    session = _new(LOGIN_SECONDS, account)
    expires_at = dt.datetime.fromtimestamp(session.expires, dt.timezone.utc)
    async with request.app[appkeys.POOL].acquire() as conn:
        await store.insert_session(conn, token_hash(session.token), account.id, expires_at)
    request[SESSION] = session


async def log_out(request: web.Request) -> None:
    session = request.get(SESSION)
    if session is not None and session.account is not None:
        async with request.app[appkeys.POOL].acquire() as conn:
            await store.delete_session(conn, token_hash(session.token))
    request[SESSION] = anonymous()


def set_cookie(request: web.Request, response: web.StreamResponse) -> None:
    """Send the cookie when the session is new or changed (login, logout, first visit)."""
    session = request.get(SESSION)
    if session is None or not session.fresh or response.prepared:
        return
    kind = "u" if session.account else "a"
    value = sign(request.app[SECRET], f"{kind}:{session.token}:{session.expires}")
    response.set_cookie(
        COOKIE, value, max_age=max(0, session.expires - int(time.time())), path="/", httponly=True,
        samesite="Lax", secure=request.app[appkeys.CONFIG].node.https,
    )
