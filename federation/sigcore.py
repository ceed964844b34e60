"""What both HTTP signature schemes share: the error, a parsed signature, RSA keys, body digests and dates."""
from __future__ import annotations

import base64
import datetime as dt
import email.utils
import functools
import hashlib
from dataclasses import dataclass, field
from typing import Mapping

from multidict import CIMultiDict, CIMultiDictProxy
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


class SignatureError(Exception):
    """A signature is missing, malformed, stale or wrong; the message says which (never a secret)."""


def ci_headers(headers: Mapping[str, str]) -> Mapping[str, str]:
    """Header look-ups are case-insensitive whatever mapping the caller passes."""
    if isinstance(headers, (CIMultiDict, CIMultiDictProxy)):
        return headers
    return CIMultiDict(headers)


def generate_rsa_keypair(bits: int = 2048) -> tuple[str, str]:
    """(private PEM, public PEM) for a new RSA key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return private, public


@functools.lru_cache(maxsize=1024)
def load_private_key(pem: str) -> rsa.RSAPrivateKey:
    """Parse a private key once; parsing a PEM costs far more than signing with it."""
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("only RSA private keys are used for signing")
    return key


@functools.lru_cache(maxsize=4096)
def load_public_key(pem: str):
    try:
        return serialization.load_pem_public_key(pem.encode())
    except ValueError as exc:
        raise SignatureError(f"unreadable public key: {exc}") from None


def digest_header(body: bytes) -> str:
    """`Digest: SHA-256=<base64>`, spelled exactly so."""
    return "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()


def content_digest_header(body: bytes) -> str:
    """RFC 9530 `Content-Digest: sha-256=:<base64>:`."""
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"


_DIGEST_ALGS = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}


def verify_digest(headers: Mapping[str, str], body: bytes) -> None:
    """Check Digest and/or Content-Digest against the body; at least one must be present."""
    headers = ci_headers(headers)
    seen = False
    legacy = headers.get("Digest")
    if legacy:
        for part in legacy.split(","):
            alg, _, value = part.strip().partition("=")
            fn = _DIGEST_ALGS.get(alg.strip().lower())
            if fn is None:
                continue
            seen = True
            if not _b64eq(value.strip(), fn(body).digest()):
                raise SignatureError("Digest header does not match the body")
    modern = headers.get("Content-Digest")
    if modern:
        for part in modern.split(","):
            alg, _, value = part.strip().partition("=")
            fn = _DIGEST_ALGS.get(alg.strip().lower())
            if fn is None:
                continue
            seen = True
            if not _b64eq(value.strip().strip(":"), fn(body).digest()):
                raise SignatureError("Content-Digest header does not match the body")
    if not seen:
        raise SignatureError("a signed POST needs a Digest or Content-Digest header with SHA-256")


def _b64eq(value: str, expected: bytes) -> bool:
    try:
        return base64.b64decode(value, validate=True) == expected
    except (ValueError, base64.binascii.Error):
        return False


def http_date(at: dt.datetime | None = None) -> str:
    at = at or dt.datetime.now(dt.timezone.utc)
    return email.utils.format_datetime(at.astimezone(dt.timezone.utc), usegmt=True)


@dataclass(frozen=True, slots=True)
class ParsedSignature:
    """A signature read off a request, ready to check with the signer's public key."""

    scheme: str  # "cavage" or "rfc9421"
    key_id: str
    algorithm: str  # as sent, lower-case; "" when absent
    components: tuple[str, ...]
    signature: bytes
    base: bytes  # the exact bytes that were signed
    created: dt.datetime | None = None
    expires: dt.datetime | None = None
    extra: dict = field(default_factory=dict)


def signature_time(value: str | int | None) -> dt.datetime | None:
    if value in (None, ""):
        return None
    try:
        return dt.datetime.fromtimestamp(int(float(value)), dt.timezone.utc)
    except (TypeError, ValueError, OverflowError):
        raise SignatureError(f"bad timestamp {value!r} in signature") from None

