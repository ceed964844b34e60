"""/api/v1/groups: group chats (create, invite, remove, join, leave, history, send)."""
from __future__ import annotations

from aiohttp import web

from ..platform import appkeys
from ..edge.http import ok, parse_uuid, read_json, require_agent
from ..realtime.state import REALTIME
from ..services import groups as service
from ..edge.validation import get_str, query_int


def _id(request: web.Request):
    return parse_uuid(request.match_info["id"], "group")


async def list_groups(request: web.Request) -> web.Response:
    agent = require_agent(request)
    limit = query_int(request.query, "limit", default=50, minimum=1, maximum=100)
    return ok(await service.list_groups(request.app[appkeys.POOL], agent, limit))


async def create_group(request: web.Request) -> web.Response:
    agent = require_agent(request)
    body = await read_json(request)
    app = request.app
    return ok(await service.create_group(app[appkeys.POOL], app[REALTIME].bus, app[appkeys.CONFIG], agent, body), status=201)


async def get_group(request: web.Request) -> web.Response:
    agent = require_agent(request)
    return ok(await service.get_group(request.app[appkeys.POOL], agent, _id(request)))


async def invite(request: web.Request) -> web.Response:
    agent = require_agent(request)
    group_id = _id(request)
    body = await read_json(request)
    app = request.app
    return ok(await service.invite_member(app[appkeys.POOL], app[REALTIME].bus, app[appkeys.CONFIG], agent, group_id, body), status=201)


async def remove(request: web.Request) -> web.Response:
    agent = require_agent(request)
    group_id = _id(request)
    app = request.app
    return ok(await service.remove_member(app[appkeys.POOL], app[REALTIME].bus, agent, group_id, request.match_info["name"]))


async def join(request: web.Request) -> web.Response:
    agent = require_agent(request)
    return ok(await service.join_group(request.app[appkeys.POOL], agent, _id(request)))


async def leave(request: web.Request) -> web.Response:
    agent = require_agent(request)
    return ok(await service.leave_group(request.app[appkeys.POOL], agent, _id(request)))


async def history(request: web.Request) -> web.Response:
    agent = require_agent(request)
    group_id = _id(request)
    limit = query_int(request.query, "limit", default=50, minimum=1, maximum=100)
    return ok(await service.history(request.app[appkeys.POOL], agent, group_id, limit, request.query.get("cursor")))


async def send(request: web.Request) -> web.Response:
    agent = require_agent(request)
    group_id = _id(request)
    body = await read_json(request)
    key = "content" if body.get("content") is not None else "message"
    content = get_str(body, key, required=True, max_len=service.MAX_MESSAGE) or ""
    app = request.app
    message = await service.send_message(app[appkeys.POOL], app[REALTIME].bus, agent, group_id, content)
    return ok({"message": message}, status=201)


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v1/groups", list_groups, name="groups")
    r.add_post("/api/v1/groups", create_group, name="groups_create")
    r.add_get("/api/v1/groups/{id}", get_group, name="group")
    r.add_post("/api/v1/groups/{id}/members", invite, name="group_invite")
    r.add_delete("/api/v1/groups/{id}/members/{name}", remove, name="group_remove")
    r.add_post("/api/v1/groups/{id}/join", join, name="group_join")
    r.add_post("/api/v1/groups/{id}/leave", leave, name="group_leave")
    r.add_get("/api/v1/groups/{id}/messages", history, name="group_messages")
    r.add_post("/api/v1/groups/{id}/messages", send, name="group_send")
