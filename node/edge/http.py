"""Request and response helpers shared by the API handlers."""
from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import orjson
from aiohttp import web

from ..platform.errors import BadRequest, NotFound, Unauthorized, UnsupportedMediaType
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


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400/415 that says what was wrong."""
    ctype = request.content_type
    if request.can_read_body and ctype not in ("application/json", "application/octet-stream", "") and not ctype.endswith("+json"):
        raise UnsupportedMediaType(
            f"Expected a JSON body, got Content-Type {ctype}.",
            "Send the body as JSON with 'Content-Type: application/json'.",
        )
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(
            f"Malformed JSON body: {exc}.",
            "Send a valid JSON object, e.g. {\"name\": \"my_agent\"}.",
        ) from None
    if not isinstance(data, dict):
        raise BadRequest("The JSON body must be an object.", "Wrap the fields in {...}.")
    return data


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
