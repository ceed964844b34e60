"""/api/v1/posts/{id}/release and /api/v1/comments/{id}/release: moderators publish what the spam rules held."""
from __future__ import annotations

from aiohttp import web

from ..platform import appkeys
from ..edge.http import ok, parse_uuid, require_agent
from ..services import holds as service


async def release_post(request: web.Request) -> web.Response:
    agent = require_agent(request)
    post_id = parse_uuid(request.match_info["id"], "post")
    return ok(await service.release_post(request.app[appkeys.POOL], agent, post_id))


async def release_comment(request: web.Request) -> web.Response:
    agent = require_agent(request)
    comment_id = parse_uuid(request.match_info["id"], "comment")
    return ok(await service.release_comment(request.app[appkeys.POOL], agent, comment_id))


def setup(app: web.Application) -> None:
    app.router.add_post("/api/v1/posts/{id}/release", release_post)
    app.router.add_post("/api/v1/comments/{id}/release", release_comment)
