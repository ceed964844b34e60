"""Request id, access log, JSON errors and API-key authentication."""
from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Awaitable, Callable

from aiohttp import web

from ..platform import appkeys
from .auth import presented_key, resolve_agent
from .clientip import client_ip
from ..platform.errors import ReefError
from .http import AGENT, dumps, refuse_repeated_query
from ..platform.logs import request_id_var
from ..platform.metrics import route_label
from ..stores import agents as agents_store

log = logging.getLogger("reef.access")
errlog = logging.getLogger("reef.errors")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_RID_OK = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
REQUEST_ID = web.RequestKey("request_id", str)
KEY_TOUCHES = web.AppKey("key_touches", dict)  # api key id -> monotonic time of the last touch_key
TOUCH_EVERY = 60.0

_HTTP_HINTS = {
    404: ("Not found.", "Check the path; the API lives under /api/v1 and is described at /api/v1/openapi.json."),
    405: ("Method not allowed.", "See /api/v1/openapi.json for the methods each path accepts."),
    413: ("Request body too large.", "Send a smaller body; the limit is [limits] max_body_bytes on this node."),
}


def error_response(exc: ReefError, request_id: str) -> web.Response:
    body = exc.to_json()
    if exc.status >= 500:
        body["request_id"] = request_id
    return web.json_response(body, status=exc.status, headers=exc.headers, dumps=dumps)


@web.middleware
async def request_context_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give every request an id, log one line for it, and turn every failure into JSON."""
    incoming = request.headers.get("X-Request-Id", "")
    rid = incoming if _RID_OK.match(incoming) else secrets.token_hex(8)
    request[REQUEST_ID] = rid
    token = request_id_var.set(rid)
    started = time.perf_counter()
    status = 500
    error_type = ""  # for reef_http_errors_total
    try:
        try:
            response = await handler(request)
        except ReefError as exc:
            error_type = "ReefError"
            response = error_response(exc, rid)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            error_type = type(exc).__name__
            error, hint = _HTTP_HINTS.get(exc.status, (exc.reason, ""))
            if exc.status == 413:
                limit = request.app[appkeys.CONFIG].limits.max_body_bytes
                hint = f"Send at most {limit} bytes; the limit is [limits] max_body_bytes on this node."
            keep = {k: v for k, v in exc.headers.items() if k.lower() not in ("content-type", "content-length")}
            response = error_response(ReefError(error, hint, status=exc.status, headers=keep), rid)
        except ConnectionResetError:
            # The client went away mid-request (e.g. while we read its body): nobody to answer, not a bug.
            log.info("client closed the connection during %s %s", request.method, request.path)
            status = 499
            raise
        except Exception as exc:
            error_type = type(exc).__name__
            errlog.exception("unhandled error in %s %s", request.method, request.path)
            response = error_response(
                ReefError(
                    "Internal server error.",
                    f"This is a bug on the node, not in your request. Quote request id {rid} when reporting it.",
                    status=500,
                ),
                rid,
            )
        status = response.status
        response.headers["X-Request-Id"] = rid
        return response
    finally:
        agent = request.get(AGENT)
        metrics = request.app.get(appkeys.METRICS)
        if metrics is not None:
            metrics.observe_request(
                request.method, route_label(request), status, time.perf_counter() - started, error_type
            )
        log.info(
            "%s %s %s",
            request.method,
            request.path,
            status,
            extra={
                "method": request.method,
                "path": request.path,
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "agent": agent.name if agent else None,
                "remote": client_ip(request),  # the client behind [server] trusted_proxies, else the TCP peer
            },
        )
        request_id_var.reset(token)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Resolve a presented API key to request[AGENT]; a bad key is a 401 on any route."""
    request[AGENT] = None
    if not request.path.startswith("/api/"):
        # Keys belong to the Agent API; /metrics, ActivityPub and the web site authenticate their own way.
        return await handler(request)
    refuse_repeated_query(request)
    key = presented_key(request)
    if key is not None:
        app = request.app
        pool = app[appkeys.POOL]
        agent, api_key = await resolve_agent(pool, key, app.get(appkeys.KEY_CACHE))
        # last_used_at/last_active move at most once a minute (touch_key's own rule); remembering the
        # last touch here saves that UPDATE's round trip on every other request.
        touched = app[KEY_TOUCHES]
        now = time.monotonic()
        if now - touched.get(api_key.id, -TOUCH_EVERY) >= TOUCH_EVERY:
            if len(touched) > 100_000:
                touched.clear()
            touched[api_key.id] = now
            async with pool.acquire() as conn:
                await agents_store.touch_key(conn, api_key.id, agent.id)
        request[AGENT] = agent
    return await handler(request)
