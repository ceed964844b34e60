"""Rules for client text shared by the checks and the OpenAPI document: what PostgreSQL can hold, what a URL is."""
from __future__ import annotations

import re

# NUL cannot be in PostgreSQL text; a lone surrogate (U+D800-U+DFFF) is not text and has no UTF-8 encoding.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def first_unstorable(text: str) -> str | None:
    """The first character of text that PostgreSQL cannot store, or None."""
    found = UNSTORABLE.search(text)
    return found.group() if found else None


def is_storable(text: str) -> bool:
    """Whether text can be sent to PostgreSQL as it is (a name with NUL or a surrogate matches nothing)."""
    return UNSTORABLE.search(text) is None


# Whitespace as Python's str.strip() and re's \s take it, spelled out: ECMA-262 regexes (what OpenAPI tools run)
# do not count U+001C-U+001F as space, so patterns meant for both never say \s.
WS_CHARS = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
WS = f"[{WS_CHARS}]*"
# An absolute http(s) URL: optional user info, a host of no separators, space or control characters, an optional port, then a path,
# query or fragment without space or control characters. The node checks it and openapi.json documents it.
_HOST = f"[^{WS_CHARS}\\x00-\\x1f\\x7f/?#@:\\[\\]\\\\]+"
_USERINFO = f"([^{WS_CHARS}\\x00-\\x1f\\x7f/?#@\\[\\]\\\\]*@)?"  # user:password@, which claims refuse by name
HTTP_URL = f"^{WS}[Hh][Tt][Tt][Pp][Ss]?://{_USERINFO}{_HOST}(:[0-9]{{1,5}})?([/?#][^{WS_CHARS}\\x00-\\x1f\\x7f]*)?{WS}$"
_HTTP_URL = re.compile(HTTP_URL)


def is_http_url(value: str) -> bool:
    return _HTTP_URL.search(value) is not None
