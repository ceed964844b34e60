"""Field checks for request bodies and query strings: missing is 400, wrong type or range is 422."""
from __future__ import annotations

import re
from typing import Any, Mapping

from ..platform.errors import BadRequest, Unprocessable

_MISSING = object()
SAFE_INT = 2**53 - 1  # beyond it JSON clients lose digits and PostgreSQL's bigint may overflow: a 400


def _type_word(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list", dict: "an object"}.get(
        type(value), type(value).__name__
    )


def get_str(
    body: Mapping[str, Any],
    key: str,
    *,
    required: bool = False,
    default: str | None = None,
    max_len: int | None = None,
    min_len: int = 0,
    strip: bool = True,
    pattern: re.Pattern[str] | None = None,
    pattern_hint: str = "",
    allow_null: bool = True,
) -> str | None:
    value = body.get(key, _MISSING)
    if value is _MISSING or (value is None and allow_null and not required):
        if required:
            raise BadRequest(f"Missing required field '{key}'.", f"Include '{key}' in the request body.")
        return default
    if not isinstance(value, str):
        raise Unprocessable(
            f"Field '{key}' must be a string, got {_type_word(value)}.", f"Send '{key}' as a JSON string."
        )
    if "\x00" in value:  # PostgreSQL text cannot hold NUL: refuse it here rather than fail in the database
        raise Unprocessable(f"Field '{key}' contains a NUL character (\\u0000).", f"Remove NUL characters from '{key}'.")
    # The limit counts the string as sent (what maxLength in openapi.json says), before stripping.
    if max_len is not None and len(value) > max_len:
        raise Unprocessable(
            f"Field '{key}' is too long ({len(value)} characters; the limit is {max_len}).",
            f"Shorten '{key}' to at most {max_len} characters.",
        )
    if strip:
        value = value.strip()
    if required and not value:
        raise BadRequest(f"Field '{key}' must not be empty.", f"Give '{key}' a value.")
    if value and len(value) < min_len:
        raise Unprocessable(
            f"Field '{key}' is too short (at least {min_len} characters).", f"Lengthen '{key}'."
        )
    if pattern is not None and value and not pattern.fullmatch(value):
        raise Unprocessable(f"Field '{key}' has an invalid value {value!r}.", pattern_hint or f"Check '{key}'.")
    return value


def get_bool(body: Mapping[str, Any], key: str, default: bool = False) -> bool:
    value = body.get(key, _MISSING)
    if value is _MISSING or value is None:
        return default
    if not isinstance(value, bool):
        raise Unprocessable(f"Field '{key}' must be true or false, got {_type_word(value)}.", f"Send '{key}' as a JSON boolean.")
    return value


def get_int(
    body: Mapping[str, Any], key: str, *, default: int | None = None, minimum: int | None = None, maximum: int | None = None
) -> int | None:
    value = body.get(key, _MISSING)
    if value is _MISSING or value is None:
        return default
    if isinstance(value, float) and value.is_integer() and abs(value) <= SAFE_INT:
        value = int(value)  # 161.0 is an integer in JSON (and JSON Schema); 1e400 and 1.5 are not
    if isinstance(value, bool) or not isinstance(value, int):
        raise Unprocessable(f"Field '{key}' must be an integer, got {_type_word(value)}.", f"Send '{key}' as a JSON number.")
    if minimum is not None and value < minimum:
        raise Unprocessable(f"Field '{key}' must be at least {minimum}.", f"Send a larger '{key}'.")
    if maximum is not None and value > maximum:
        raise Unprocessable(f"Field '{key}' must be at most {maximum}.", f"Send a smaller '{key}'.")
    return value


def query_int(
    query: Mapping[str, str], key: str, *, default: int, minimum: int = 0, maximum: int | None = None, clamp: bool = True
) -> int:
    """An integer query parameter; out-of-range values are clamped (old clients send odd limits)."""
    raw = query.get(key)
    if raw is None or raw == "":
        return default
    if not _QUERY_INT.fullmatch(raw):  # int() also reads '١٢', '1_000' and ' 7 ': the API takes ASCII digits
        raise BadRequest(f"Query parameter '{key}' must be an integer, got {raw[:40]!r}.", f"Use e.g. ?{key}={default}.")
    value = int(raw)
    if not -SAFE_INT <= value <= SAFE_INT:
        raise BadRequest(
            f"Query parameter '{key}' is out of range ({raw[:24]}...).",
            f"Use an integer between -{SAFE_INT} and {SAFE_INT}, e.g. ?{key}={default}.",
        )
    if value < minimum:
        if not clamp:
            raise BadRequest(f"Query parameter '{key}' must be at least {minimum}.", f"Use ?{key}={default}.")
        value = minimum
    if maximum is not None and value > maximum:
        if not clamp:
            raise BadRequest(f"Query parameter '{key}' must be at most {maximum}.", f"Use ?{key}={maximum}.")
        value = maximum
    return value


_QUERY_INT = re.compile(r"[+-]?[0-9]{1,20}")


def query_choice(query: Mapping[str, str], key: str, choices: tuple[str, ...], default: str) -> str:
    raw = query.get(key) or default
    if raw not in choices:
        raise BadRequest(f"Unknown {key} {raw!r}.", f"Use one of: {', '.join(choices)}.")
    return raw
