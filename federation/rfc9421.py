"""RFC 9421 HTTP message signatures (Signature-Input / Signature), as Mastodon sends them."""
from __future__ import annotations

import base64
import datetime as dt
import re
from typing import Mapping
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from .sigcore import (
    ParsedSignature, SignatureError, content_digest_header, http_date, load_private_key, signature_time,
)


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


def parse_rfc9421(method: str, url: str, headers: Mapping[str, str]) -> ParsedSignature:
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
        signature_time(params.get("created")), signature_time(params.get("expires")),
    )


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

