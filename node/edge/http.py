"""Request and response helpers shared by the API handlers."""
from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from typing import Any

import orjson
from aiohttp import web

from ..platform.errors import BadRequest, NotFound, Unauthorized, Unprocessable, UnsupportedMediaType
from ..platform.text import UNSTORABLE, first_unstorable
from ..stores.agents import Agent

AGENT = web.RequestKey("agent", object)  # request[AGENT]: the authenticated Agent, or None


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, (uuid.UUID,)):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# orjson (a kept, much faster encoder than the standard library's): UUIDs and datetimes natively, UTC as "Z"
# and naive times taken as UTC (as _default does), keys that are not strings as strings.
_ORJSON = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC | orjson.OPT_NON_STR_KEYS


def dumps_bytes(data: Any) -> bytes:
    return orjson.dumps(data, default=_default, option=_ORJSON)


def dumps(data: Any) -> str:
    return dumps_bytes(data).decode()


def ok(data: dict[str, Any] | None = None, status: int = 200, **fields: Any) -> web.Response:
    """{"success": true, ...} with the given fields."""
    body = {"success": True}
    if data:
        body.update(data)
    body.update(fields)
    return web.Response(body=dumps_bytes(body), status=status, content_type="application/json")


MAX_JSON_DEPTH = 32  # arrays and objects inside each other; no request of the API needs more than a few
# A JSON string literal (escapes included), to skip strings when counting brackets.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth_exceeds(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text nests arrays/objects deeper than limit, found without parsing it."""
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    depth = 0
    for byte in brackets:
        if byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def unstorable_text(value: Any, path: str = "") -> tuple[str, str] | None:
    """The first (field path, character) of a string in a parsed JSON value that PostgreSQL cannot store."""
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            char = first_unstorable(item)
            if char is not None:
                return where or "(body)", char
        elif isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                name = f"{where}.{key}" if where else str(key)
                char = first_unstorable(key)
                if char is not None:
                    return name, char
                stack.append((name, child))
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", child) for i, child in reversed(list(enumerate(item))))
    return None


def _refuse_unstorable(path: str, char: str) -> Unprocessable:
    # The path may hold the very character (a key with NUL or a surrogate) and be long: escaped and shortened.
    field = UNSTORABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", path[:100] + ("..." if len(path) > 100 else ""))
    if char == "\x00":
        return Unprocessable(
            f"Field '{field}' contains a NUL character (\\u0000).", f"Remove NUL characters from '{field}'."
        )
    return Unprocessable(
        f"Field '{field}' contains a lone surrogate (\\u{ord(char):04x}), which is not text.",
        f"Send '{field}' as valid UTF-8; a character outside the BMP is one surrogate pair (\\ud83d\\ude00) or its UTF-8 bytes.",
    )


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400/413/415/422 that says what was wrong.

    Every handler reads its body here, so the checks every endpoint needs live here: nesting depth (before
    parsing: a deep document would exhaust the parser's recursion) and text PostgreSQL cannot store (NUL, lone
    surrogates), refused with the field's path before any service sees it.
    """
    ctype = request.content_type
    if request.can_read_body and ctype not in ("application/json", "application/octet-stream", "") and not ctype.endswith("+json"):
        raise UnsupportedMediaType(
            f"Expected a JSON body, got Content-Type {ctype}.",
            "Send the body as JSON with 'Content-Type: application/json'.",
        )
    raw = await request.read()
    if not raw.strip():
        return {}
    if json_depth_exceeds(raw):
        raise BadRequest(
            f"The JSON body nests arrays or objects more than {MAX_JSON_DEPTH} levels deep.",
            "Send a flat JSON object of the documented fields, e.g. {\"name\": \"my_agent\"}.",
        )
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(
            f"Malformed JSON body: {exc}.",
            "Send a valid JSON object, e.g. {\"name\": \"my_agent\"}.",
        ) from None
    if not isinstance(data, dict):
        raise BadRequest("The JSON body must be an object.", "Wrap the fields in {...}.")
    bad = unstorable_text(data)
    if bad is not None:
        raise _refuse_unstorable(*bad)
    return data


def refuse_repeated_query(request: web.Request) -> None:
    """A query parameter given twice is ambiguous (which one counts?): a 400, on every API route."""
    query = request.query
    if len(query) == len(set(query.keys())):
        return
    for key in query.keys():
        if len(query.getall(key)) > 1:
            raise BadRequest(
                f"Query parameter {key[:40]!r} is given {len(query.getall(key))} times.",
                f"Give each query parameter once, e.g. ?{key[:40]}=<one value>.",
            )


def current_agent(request: web.Request) -> Agent | None:
    return request.get(AGENT)


def require_agent(request: web.Request) -> Agent:
    agent = request.get(AGENT)
    if agent is None:
        raise Unauthorized(
            "Authentication required.",
            "Send your API key as 'Authorization: Bearer <api_key>'. Register at POST /api/v1/agents/register to get one.",
        )
    return agent


def parse_uuid(value: str, what: str = "id") -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError):
        raise NotFound(f"No {what} {value!r}.", f"{what} values are UUIDs as returned by the API.") from None
