"""HTTP signatures on `cryptography`: draft-cavage (rsa-sha256, hs2019) signing and parsing, and checking either scheme.

RFC 9421 lives in federation.rfc9421; what both share (error, keys, digests) in federation.sigcore."""
from __future__ import annotations

import base64
import datetime as dt
import email.utils
import re
from typing import Mapping
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from .rfc9421 import parse_rfc9421
from .sigcore import (
    ParsedSignature, SignatureError, ci_headers, digest_header, http_date, load_private_key, load_public_key,
    signature_time,
)


# What we sign on every outgoing POST (exactly Mastodon's and Lemmy's set; PieFed compares the digest string).
POST_HEADERS = ("(request-target)", "host", "date", "digest", "content-type")
GET_HEADERS = ("(request-target)", "host", "date")


def sign_request(
    method: str,
    url: str,
    *,
    key_id: str,
    private_key_pem: str,
    body: bytes | None = None,
    content_type: str = "application/activity+json",
    headers: Mapping[str, str] | None = None,
    now: dt.datetime | None = None,
) -> dict[str, str]:
    """Headers for a draft-cavage rsa-sha256 signed request (Host, Date, Digest, Content-Type, Signature)."""
    parts = urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    out = dict(headers or {})
    out["Host"] = parts.netloc
    out["Date"] = http_date(now)
    names: tuple[str, ...] = GET_HEADERS
    if body is not None:
        out["Digest"] = digest_header(body)
        out["Content-Type"] = content_type
        names = POST_HEADERS
    values = {k.lower(): v for k, v in out.items()}
    lines = []
    for name in names:
        if name == "(request-target)":
            lines.append(f"(request-target): {method.lower()} {target}")
        else:
            lines.append(f"{name}: {values[name]}")
    signed = load_private_key(private_key_pem).sign("\n".join(lines).encode(), padding.PKCS1v15(), hashes.SHA256())
    out["Signature"] = (
        f'keyId="{key_id}",algorithm="rsa-sha256",headers="{" ".join(names)}",'
        f'signature="{base64.b64encode(signed).decode()}"'
    )
    return out


_CAVAGE_PARAM = re.compile(r'\s*([A-Za-z]+)\s*=\s*(?:"([^"]*)"|([^",]*))\s*,?')


def _parse_cavage_params(value: str) -> dict[str, str]:
    params: dict[str, str] = {}
    pos = 0
    while pos < len(value):
        m = _CAVAGE_PARAM.match(value, pos)
        if not m or m.end() == pos:
            raise SignatureError("malformed Signature header")
        params[m.group(1)] = m.group(2) if m.group(2) is not None else m.group(3)
        pos = m.end()
    return params


def _parse_cavage(method: str, target: str, headers: Mapping[str, str]) -> ParsedSignature:
    raw = headers.get("Signature")
    if not raw:
        auth = headers.get("Authorization", "")
        if auth[:10].lower() == "signature ":
            raw = auth[10:]
    if not raw:
        raise SignatureError("no Signature header")
    p = _parse_cavage_params(raw)
    key_id, sig = p.get("keyId"), p.get("signature")
    if not key_id or not sig:
        raise SignatureError("Signature header needs keyId and signature")
    algorithm = (p.get("algorithm") or "").lower()
    if algorithm not in ("", "rsa-sha256", "hs2019", "rsa-sha512", "ed25519"):
        raise SignatureError(f"unsupported signature algorithm {algorithm!r}")
    names = tuple((p.get("headers") or "date").lower().split())
    created, expires = signature_time(p.get("created")), signature_time(p.get("expires"))
    lower = {k.lower(): v for k, v in headers.items()}
    lines = []
    for name in names:
        if name == "(request-target)":
            lines.append(f"(request-target): {method.lower()} {target}")
        elif name == "(created)":
            if created is None:
                raise SignatureError("(created) is signed but the created parameter is missing")
            lines.append(f"(created): {p['created']}")
        elif name == "(expires)":
            if expires is None:
                raise SignatureError("(expires) is signed but the expires parameter is missing")
            lines.append(f"(expires): {p['expires']}")
        else:
            if name not in lower:
                raise SignatureError(f"signed header {name!r} is missing from the request")
            lines.append(f"{name}: {lower[name].strip()}")
    try:
        signature = base64.b64decode(sig, validate=True)
    except (ValueError, base64.binascii.Error):
        raise SignatureError("signature is not valid base64") from None
    return ParsedSignature("cavage", key_id, algorithm, names, signature, "\n".join(lines).encode(), created, expires)


def parse_signature(method: str, url: str, headers: Mapping[str, str]) -> ParsedSignature:
    """Read the request's signature. `url` is the full URL as the client addressed it (its Host)."""
    headers = ci_headers(headers)
    if headers.get("Signature-Input"):
        return parse_rfc9421(method, url, headers)
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _parse_cavage(method, target, headers)


def check_freshness(
    parsed: ParsedSignature, headers: Mapping[str, str], *, window: int, now: dt.datetime | None = None
) -> None:
    """The signature must cover a time (Date or created) within `window` seconds of now."""
    headers = ci_headers(headers)
    now = now or dt.datetime.now(dt.timezone.utc)
    at = parsed.created
    if at is None:
        if parsed.scheme == "cavage" and "date" not in parsed.components:
            raise SignatureError("the Date header (or created) must be signed")
        date = headers.get("Date")
        if not date:
            raise SignatureError("no Date header")
        try:
            at = email.utils.parsedate_to_datetime(date)
        except (TypeError, ValueError):
            raise SignatureError(f"unreadable Date header {date!r}") from None
        if at.tzinfo is None:
            at = at.replace(tzinfo=dt.timezone.utc)
    skew = (now - at).total_seconds()
    if skew > window:
        raise SignatureError(f"signature is stale: signed {int(skew)} s ago, more than the {window} s allowed")
    if skew < -window:
        raise SignatureError(f"signature is from the future: {int(-skew)} s ahead")
    if parsed.expires is not None and parsed.expires < now:
        raise SignatureError("signature has expired")


def verify_signature(parsed: ParsedSignature, public_key_pem: str) -> None:
    """Check the signature bytes with the signer's public key (RSA PKCS#1 v1.5/PSS, Ed25519, ECDSA)."""
    key = load_public_key(public_key_pem)
    try:
        if isinstance(key, rsa.RSAPublicKey):
            if parsed.algorithm == "rsa-pss-sha512":
                key.verify(parsed.signature, parsed.base, padding.PSS(padding.MGF1(hashes.SHA512()), 64), hashes.SHA512())
            else:
                alg = hashes.SHA512() if parsed.algorithm == "rsa-sha512" else hashes.SHA256()
                key.verify(parsed.signature, parsed.base, padding.PKCS1v15(), alg)
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(parsed.signature, parsed.base)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(parsed.signature, parsed.base, ec.ECDSA(hashes.SHA256()))
        else:
            raise SignatureError("unsupported public key type")
    except InvalidSignature:
        raise SignatureError("signature does not verify with the signer's key") from None


def required_components_present(parsed: ParsedSignature, method: str) -> None:
    """Mastodon's rule: a POST must sign its digest; a GET its host; both the request target."""
    comps = set(parsed.components)
    if parsed.scheme == "cavage":
        if "(request-target)" not in comps:
            raise SignatureError("(request-target) must be signed")
        if method.upper() == "POST" and "digest" not in comps:
            raise SignatureError("the Digest header must be signed on POST")
        if method.upper() == "GET" and "host" not in comps:
            raise SignatureError("the Host header must be signed on GET")
    else:
        if not comps & {"@target-uri", "@request-target", "@path"}:
            raise SignatureError("the request target must be signed")
        if method.upper() == "POST" and "content-digest" not in comps:
            raise SignatureError("Content-Digest must be signed on POST")

