"""/api/v1/posts/{id}/release and /api/v1/comments/{id}/release: moderators publish what the spam rules held."""
from __future__ import annotations

from aiohttp import web

from ..platform import appkeys
from ..edge.http import ok, parse_uuid, require_agent
from ..edge.validation import query_int
from ..services import holds as service


async def release_post(request: web.Request) -> web.Response:
    agent = require_agent(request)
    post_id = parse_uuid(request.match_info["id"], "post")
    return ok(await service.release_post(request.app[appkeys.POOL], agent, post_id))


async def release_comment(request: web.Request) -> web.Response:
    agent = require_agent(request)
    comment_id = parse_uuid(request.match_info["id"], "comment")
    return ok(await service.release_comment(request.app[appkeys.POOL], agent, comment_id))


async def list_held(request: web.Request) -> web.Response:
    agent = require_agent(request)
    limit = query_int(request.query, "limit", default=50, minimum=1, maximum=100)
    return ok(await service.list_held(request.app[appkeys.POOL], agent, request.match_info["name"], limit))


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/submolts/{name}/held", list_held)
    app.router.add_post("/api/v1/posts/{id}/release", release_post)
    app.router.add_post("/api/v1/comments/{id}/release", release_comment)
