"""HTTP signatures on `cryptography`: draft-cavage (rsa-sha256, hs2019) and RFC 9421, with digests."""
from __future__ import annotations

import base64
import datetime as dt
import email.utils
import functools
import hashlib
import re
from dataclasses import dataclass, field
from typing import Mapping
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from multidict import CIMultiDict, CIMultiDictProxy
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

# What we sign on every outgoing POST (exactly Mastodon's and Lemmy's set; PieFed compares the digest string).
POST_HEADERS = ("(request-target)", "host", "date", "digest", "content-type")
GET_HEADERS = ("(request-target)", "host", "date")


class SignatureError(Exception):
    """A signature is missing, malformed, stale or wrong; the message says which (never a secret)."""


def _ci(headers: Mapping[str, str]) -> Mapping[str, str]:
    """Header look-ups are case-insensitive whatever mapping the caller passes."""
    if isinstance(headers, (CIMultiDict, CIMultiDictProxy)):
        return headers
    return CIMultiDict(headers)


# --- keys -------------------------------------------------------------------------------------


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


# --- digests ----------------------------------------------------------------------------------


def digest_header(body: bytes) -> str:
    """`Digest: SHA-256=<base64>`, spelled exactly so."""
    return "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()


def content_digest_header(body: bytes) -> str:
    """RFC 9530 `Content-Digest: sha-256=:<base64>:`."""
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"


_DIGEST_ALGS = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}


def verify_digest(headers: Mapping[str, str], body: bytes) -> None:
    """Check Digest and/or Content-Digest against the body; at least one must be present."""
    headers = _ci(headers)
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


# --- signing (draft-cavage, what every fediverse server accepts) -------------------------------


def http_date(at: dt.datetime | None = None) -> str:
    at = at or dt.datetime.now(dt.timezone.utc)
    return email.utils.format_datetime(at.astimezone(dt.timezone.utc), usegmt=True)


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


# --- verification -----------------------------------------------------------------------------


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


def _ts(value: str | int | None) -> dt.datetime | None:
    if value in (None, ""):
        return None
    try:
        return dt.datetime.fromtimestamp(int(float(value)), dt.timezone.utc)
    except (TypeError, ValueError, OverflowError):
        raise SignatureError(f"bad timestamp {value!r} in signature") from None


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
    created, expires = _ts(p.get("created")), _ts(p.get("expires"))
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


# RFC 8941 inner list with parameters: ("@method" "@target-uri");created=1;keyid="k";alg="x"
_SF_ITEM = re.compile(r'"([^"\\]*)"(?:;[a-z]+(?:=(?:"[^"]*"|[^;\s)]+))?)*')
_SF_PARAM = re.compile(r';\s*([a-z][a-z0-9_.*-]*)(?:=("(?:[^"\\]|\\.)*"|[^;,\s]+))?')


def _split_sf_dict(value: str) -> dict[str, str]:
    """Top-level members of a structured-field dictionary (label -> raw member text)."""
    members: dict[str, str] = {}
    depth, quote, start = 0, False, 0
    items = []
    for i, ch in enumerate(value):
        if ch == '"' and (i == 0 or value[i - 1] != "\\"):
            quote = not quote
        elif not quote and ch == "(":
            depth += 1
        elif not quote and ch == ")":
            depth -= 1
        elif not quote and depth == 0 and ch == ",":
            items.append(value[start:i])
            start = i + 1
    items.append(value[start:])
    for item in items:
        label, eq, rest = item.strip().partition("=")
        if label and eq:
            members[label.strip()] = rest.strip()
    return members


def _rfc9421_component(name: str, method: str, url: str, lower: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    if name == "@method":
        return method.upper()
    if name == "@target-uri":
        return url
    if name == "@authority":
        return parts.netloc.lower()
    if name == "@scheme":
        return parts.scheme.lower()
    if name == "@request-target":
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if name == "@path":
        return parts.path or "/"
    if name == "@query":
        return "?" + parts.query
    if name.startswith("@"):
        raise SignatureError(f"unsupported derived component {name!r}")
    if name not in lower:
        raise SignatureError(f"signed header {name!r} is missing from the request")
    return lower[name].strip()


def _parse_rfc9421(method: str, url: str, headers: Mapping[str, str]) -> ParsedSignature:
    inputs = _split_sf_dict(headers.get("Signature-Input", ""))
    sigs = _split_sf_dict(headers.get("Signature", ""))
    label = next((l for l in inputs if l in sigs), None)
    if label is None:
        raise SignatureError("Signature-Input and Signature name no common signature")
    raw_input = inputs[label]
    if not raw_input.startswith("("):
        raise SignatureError("malformed Signature-Input")
    close = raw_input.index(")")
    components = tuple(re.findall(r'"([^"]+)"', raw_input[1:close]))
    params = {m.group(1): (m.group(2) or "").strip('"') for m in _SF_PARAM.finditer(raw_input[close + 1:])}
    key_id = params.get("keyid")
    if not key_id:
        raise SignatureError("Signature-Input needs keyid")
    lower = {k.lower(): v for k, v in headers.items()}
    lines = [f'"{c}": {_rfc9421_component(c, method, url, lower)}' for c in components]
    lines.append(f'"@signature-params": {raw_input}')
    sig_raw = sigs[label].strip()
    if not (sig_raw.startswith(":") and sig_raw.endswith(":")):
        raise SignatureError("Signature value must be a byte sequence (:base64:)")
    try:
        signature = base64.b64decode(sig_raw.strip(":"), validate=True)
    except (ValueError, base64.binascii.Error):
        raise SignatureError("signature is not valid base64") from None
    return ParsedSignature(
        "rfc9421", key_id, params.get("alg", "").lower(), components, signature, "\n".join(lines).encode(),
        _ts(params.get("created")), _ts(params.get("expires")),
    )


def parse_signature(method: str, url: str, headers: Mapping[str, str]) -> ParsedSignature:
    """Read the request's signature. `url` is the full URL as the client addressed it (its Host)."""
    headers = _ci(headers)
    if headers.get("Signature-Input"):
        return _parse_rfc9421(method, url, headers)
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _parse_cavage(method, target, headers)


def check_freshness(
    parsed: ParsedSignature, headers: Mapping[str, str], *, window: int, now: dt.datetime | None = None
) -> None:
    """The signature must cover a time (Date or created) within `window` seconds of now."""
    headers = _ci(headers)
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


def sign_request_rfc9421(
    method: str,
    url: str,
    *,
    key_id: str,
    private_key_pem: str,
    body: bytes | None = None,
    content_type: str = "application/activity+json",
    label: str = "sig1",
    now: dt.datetime | None = None,
) -> dict[str, str]:
    """Headers for an RFC 9421 rsa-v1_5-sha256 signature, as Mastodon sends them."""
    now = now or dt.datetime.now(dt.timezone.utc)
    out: dict[str, str] = {"Host": urlsplit(url).netloc, "Date": http_date(now)}
    components = ["@method", "@target-uri"]
    if body is not None:
        out["Content-Digest"] = content_digest_header(body)
        out["Content-Type"] = content_type
        components.append("content-digest")
    params = "(" + " ".join(f'"{c}"' for c in components) + f');created={int(now.timestamp())};keyid="{key_id}";alg="rsa-v1_5-sha256"'
    lower = {k.lower(): v for k, v in out.items()}
    lines = [f'"{c}": {_rfc9421_component(c, method, url, lower)}' for c in components]
    lines.append(f'"@signature-params": {params}')
    signed = load_private_key(private_key_pem).sign("\n".join(lines).encode(), padding.PKCS1v15(), hashes.SHA256())
    out["Signature-Input"] = f"{label}={params}"
    out["Signature"] = f"{label}=:{base64.b64encode(signed).decode()}:"
    return out
