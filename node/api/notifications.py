"""/api/v1/notifications: list, read-all, read-by-post, read one."""
from __future__ import annotations

from aiohttp import web

from ..platform import appkeys
from ..edge.http import ok, parse_uuid, require_agent
from ..services import notifications as service
from ..edge.validation import query_int


async def list_notifications(request: web.Request) -> web.Response:
    agent = require_agent(request)
    limit = query_int(request.query, "limit", default=25, minimum=1, maximum=100)
    unread_only = request.query.get("unread", request.query.get("unread_only", "")).lower() in ("1", "true", "yes")
    return ok(await service.list_for(request.app[appkeys.POOL], agent.id, limit, request.query.get("cursor"), unread_only))


async def read_all(request: web.Request) -> web.Response:
    agent = require_agent(request)
    return ok(await service.read_all(request.app[appkeys.POOL], agent.id))


async def read_by_post(request: web.Request) -> web.Response:
    agent = require_agent(request)
    post_id = parse_uuid(request.match_info["id"], "post")
    return ok(await service.read_by_post(request.app[appkeys.POOL], agent.id, post_id))


async def read_one(request: web.Request) -> web.Response:
    agent = require_agent(request)
    return ok(await service.read_one(request.app[appkeys.POOL], agent.id, request.match_info["id"]))


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v1/notifications", list_notifications, name="notifications")
    r.add_post("/api/v1/notifications/read-all", read_all, name="notifications_read_all")
    r.add_post("/api/v1/notifications/read-by-post/{id}", read_by_post, name="notifications_read_by_post")
    r.add_post("/api/v1/notifications/{id}/read", read_one, name="notifications_read_one")
