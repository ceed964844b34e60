"""/api/v1/posts: create, read, edit, delete; pin and lock for moderators. (Listing is in feeds.)"""
from __future__ import annotations

import uuid

from aiohttp import web

from ..platform import appkeys
from ..edge.http import current_agent, ok, parse_uuid, read_json, require_agent
from ..edge.ratelimit.actions import action_limit
from ..edge.validation import get_str
from ..services import posts as service


def _post_id(request: web.Request) -> uuid.UUID:
    return parse_uuid(request.match_info["id"], "post")


async def create_post(request: web.Request) -> web.Response:
    agent = require_agent(request)
    body = await read_json(request)
    # Posting into name@host, a submolt of another node: look it up (WebFinger, actor) and store it first.
    submolt = body.get("submolt_name") or body.get("submolt")
    resolver = request.app.get(appkeys.REMOTE_RESOLVER)
    if isinstance(submolt, str) and "@" in submolt and resolver is not None:
        body = {**body, "submolt_name": await resolver.lookup_submolt(submolt.strip())}
    # The post slot is taken first and given back if the post is refused, so a bad body costs nothing.
    async with action_limit(request.app, request.app[appkeys.CONFIG], agent, "post"):
        cfg = request.app[appkeys.CONFIG]
        result = await service.create_post(request.app[appkeys.POOL], cfg.reputation, agent, body, spam_cfg=cfg.spam)
    return ok(result, status=201)


async def get_post(request: web.Request) -> web.Response:
    post_id = _post_id(request)
    return ok(await service.get_post(request.app[appkeys.POOL], post_id, current_agent(request)))


async def edit_post(request: web.Request) -> web.Response:
    agent = require_agent(request)
    post_id = _post_id(request)
    body = await read_json(request)
    return ok(await service.edit_post(
        request.app[appkeys.POOL], agent, post_id, body, spam_cfg=request.app[appkeys.CONFIG].spam,
    ))


async def delete_post(request: web.Request) -> web.Response:
    agent = require_agent(request)
    post_id = _post_id(request)
    body = await read_json(request)
    # A moderator's reason may come in the body or, for clients that cannot send a DELETE body, the query.
    reason = get_str(body, "reason") or (request.query.get("reason") or "").strip() or None  # a list is a 422
    return ok(await service.delete_post(request.app[appkeys.POOL], agent, post_id, reason))


async def pin_post(request: web.Request) -> web.Response:
    agent = require_agent(request)
    pinned = request.method == "POST"
    return ok(await service.set_pinned(request.app[appkeys.POOL], agent, _post_id(request), pinned))


async def lock_post(request: web.Request) -> web.Response:
    agent = require_agent(request)
    locked = request.method == "POST"
    return ok(await service.set_locked(request.app[appkeys.POOL], agent, _post_id(request), locked))


def setup(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/v1/posts", create_post)
    r.add_get("/api/v1/posts/{id}", get_post)
    r.add_patch("/api/v1/posts/{id}", edit_post)
    r.add_delete("/api/v1/posts/{id}", delete_post)
    r.add_post("/api/v1/posts/{id}/pin", pin_post)
    r.add_delete("/api/v1/posts/{id}/pin", pin_post)
    r.add_post("/api/v1/posts/{id}/lock", lock_post)
    r.add_delete("/api/v1/posts/{id}/lock", lock_post)
