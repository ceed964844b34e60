"""Outbox collections (recent public activities of agents and submolts) and the activities themselves."""
from __future__ import annotations

from aiohttp import web

from node.platform import appkeys
from node.platform.errors import NotFound

from . import content_store as cs
from . import gate, activity_store, urls
from .jsonld import CONTEXT

PAGE_SIZE = 20


async def _outbox(request: web.Request, kind: str) -> web.StreamResponse:
    gate.require_enabled(request)
    await gate.check_get(request)
    cfg = request.app[appkeys.CONFIG]
    name = request.match_info["name"]
    async with request.app[appkeys.POOL].acquire() as conn:
        row = await (cs.get_agent_row_by_name(conn, name) if kind == "agent" else cs.get_submolt_row_by_name(conn, name))
        if row is None:
            raise NotFound(f"No {kind} named {name[:40]!r} on this node.", "Names are case-insensitive.")
        actor = urls.agent_url(cfg, row.name) if kind == "agent" else urls.submolt_url(cfg, row.name)
        total = await activity_store.count_public_activities(conn, actor)
        recent = await activity_store.list_public_activities(conn, actor, PAGE_SIZE)
    items = [{k: v for k, v in a.body.items() if k != "@context"} for a in recent]
    return gate.ap_response({
        "@context": CONTEXT, "id": urls.outbox_url(actor), "type": "OrderedCollection",
        "totalItems": total, "orderedItems": items,
    })


async def agent_outbox(request: web.Request) -> web.StreamResponse:
    return await _outbox(request, "agent")


async def submolt_outbox(request: web.Request) -> web.StreamResponse:
    return await _outbox(request, "submolt")


async def get_activity(request: web.Request) -> web.StreamResponse:
    """GET /activities/{id}: a public activity this node published (ids must dereference)."""
    gate.require_enabled(request)
    await gate.check_get(request)
    cfg = request.app[appkeys.CONFIG]
    ap_id = urls.activity_url(cfg, request.match_info["id"])
    async with request.app[appkeys.POOL].acquire() as conn:
        found = await activity_store.get_activity_by_ap_id(conn, ap_id)
    if found is None:
        raise NotFound("No such public activity.", "Activities of this node are served at their id.")
    return gate.ap_response(found.body)


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/u/{name}/outbox", agent_outbox, name="ap_agent_outbox")
    r.add_get("/m/{name}/outbox", submolt_outbox, name="ap_submolt_outbox")
    r.add_get("/activities/{id}", get_activity, name="ap_activity")
