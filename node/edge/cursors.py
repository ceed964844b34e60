"""Opaque page cursors: versioned, url-safe base64 JSON, shared by every endpoint that pages."""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
import uuid
from typing import Any, Mapping

from ..platform.errors import BadRequest

# Bump when the layout of every cursor changes; a cursor of another version is refused, never misread.
VERSION = 1
# Cursors are small (a sort key and an id); anything longer is not one of ours.
MAX_CURSOR_CHARS = 1024
HINT = "use next_cursor from the previous page (cursors are opaque; do not build or edit them)"


def bad_cursor(reason: str = "Malformed cursor.") -> BadRequest:
    """The one error for a cursor the node cannot use (400 with the standard hint)."""
    return BadRequest(reason, HINT)


def encode_cursor(data: Mapping[str, Any]) -> str:
    """A JSON-able mapping as an opaque cursor. Use the cursor_* readers to get typed values back.

    datetimes are written as ISO 8601 (read back with cursor_datetime), UUIDs as strings (cursor_uuid);
    floats round-trip exactly (JSON keeps repr precision), so a float sort key compares equal again.
    """
    payload = {"v": VERSION, **data}
    raw = json.dumps(payload, separators=(",", ":"), default=_default, allow_nan=False).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> dict[str, Any]:
    """The mapping encode_cursor was given (without the version), or a 400 with the standard hint."""
    if not isinstance(cursor, str) or not cursor or len(cursor) > MAX_CURSOR_CHARS:
        raise bad_cursor()
    text = cursor.strip()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad_cursor() from None
    if not isinstance(data, dict):
        raise bad_cursor()
    if data.pop("v", None) != VERSION:
        raise bad_cursor("This cursor is from another version of the node.")
    return data


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot put {type(value).__name__} in a cursor")


# Typed readers: any missing or ill-typed field is the same 400 as a malformed cursor.


def cursor_str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise bad_cursor()
    return value


def cursor_int(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    # bool is an int in Python; bounds keep the value inside PostgreSQL's bigint.
    if isinstance(value, bool) or not isinstance(value, int) or not -(2**63) <= value < 2**63:
        raise bad_cursor()
    return value


def cursor_float(data: Mapping[str, Any], key: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise bad_cursor()
    return float(value)


def cursor_uuid(data: Mapping[str, Any], key: str) -> uuid.UUID:
    try:
        return uuid.UUID(cursor_str(data, key))
    except ValueError:
        raise bad_cursor() from None


def cursor_datetime(data: Mapping[str, Any], key: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(cursor_str(data, key))
    except ValueError:
        raise bad_cursor() from None
    if value.tzinfo is None:
        raise bad_cursor()
    return value
