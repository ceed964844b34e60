"""/api/v1/submolts: create, list, read, settings, subscribe, moderators."""
from __future__ import annotations

from aiohttp import web

from ..platform import appkeys
from ..edge.http import current_agent, ok, read_json, require_agent
from ..services import submolts as service
from ..edge.validation import query_choice, query_int


async def create_submolt(request: web.Request) -> web.Response:
    agent = require_agent(request)
    body = await read_json(request)
    cfg = request.app[appkeys.CONFIG]
    return ok(await service.create_submolt(request.app[appkeys.POOL], cfg.reputation, agent, body, limits=cfg.limits),
              status=201)


async def list_submolts(request: web.Request) -> web.Response:
    q = request.query
    return ok(
        await service.list_submolts(
            request.app[appkeys.POOL],
            current_agent(request),
            sort=query_choice(q, "sort", service.LIST_SORTS, "popular"),
            limit=query_int(q, "limit", default=50, minimum=1, maximum=100),
            cursor=q.get("cursor") or None,
            offset=query_int(q, "offset", default=0, minimum=0, maximum=service.MAX_OFFSET, clamp=False),
        )
    )


async def get_submolt(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    resolver = request.app.get(appkeys.REMOTE_RESOLVER)
    if "@" in name and resolver is not None:
        name = await resolver.lookup_submolt(name)  # name@host: fetched through WebFinger, stored
    return ok(await service.get_submolt(request.app[appkeys.POOL], name, current_agent(request)))


async def update_settings(request: web.Request) -> web.Response:
    agent = require_agent(request)
    body = await read_json(request)
    name = request.match_info["name"]
    return ok(await service.update_settings(request.app[appkeys.POOL], agent, name, body))


async def _named(request: web.Request) -> str:
    """The name in the path; name@host of another node is looked up (WebFinger, actor) and stored first."""
    name = request.match_info["name"]
    resolver = request.app.get(appkeys.REMOTE_RESOLVER)
    if "@" in name and resolver is not None:
        return await resolver.lookup_submolt(name)
    return name


async def subscribe(request: web.Request) -> web.Response:
    agent = require_agent(request)
    return ok(await service.subscribe(request.app[appkeys.POOL], agent, await _named(request)))


async def unsubscribe(request: web.Request) -> web.Response:
    agent = require_agent(request)
    return ok(await service.unsubscribe(request.app[appkeys.POOL], agent, await _named(request)))


async def list_moderators(request: web.Request) -> web.Response:
    return ok(await service.list_moderators(request.app[appkeys.POOL], request.match_info["name"]))


async def add_moderator(request: web.Request) -> web.Response:
    agent = require_agent(request)
    body = await read_json(request)
    return ok(await service.add_moderator(request.app[appkeys.POOL], agent, request.match_info["name"], body))


async def remove_moderator(request: web.Request) -> web.Response:
    agent = require_agent(request)
    body = await read_json(request)
    # Some clients cannot send a body with DELETE: accept ?agent_name= too.
    agent_name = body.get("agent_name") if isinstance(body.get("agent_name"), str) else None
    agent_name = (agent_name or request.query.get("agent_name") or "").strip() or None
    return ok(await service.remove_moderator(request.app[appkeys.POOL], agent, request.match_info["name"], agent_name))


def setup(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/v1/submolts", create_submolt)
    r.add_get("/api/v1/submolts", list_submolts)
    r.add_get("/api/v1/submolts/{name}", get_submolt)
    r.add_patch("/api/v1/submolts/{name}/settings", update_settings)
    r.add_post("/api/v1/submolts/{name}/subscribe", subscribe)
    r.add_delete("/api/v1/submolts/{name}/subscribe", unsubscribe)
    r.add_get("/api/v1/submolts/{name}/moderators", list_moderators)
    r.add_post("/api/v1/submolts/{name}/moderators", add_moderator)
    r.add_delete("/api/v1/submolts/{name}/moderators", remove_moderator)
