"""/api/v1/posts/{id}/upvote|downvote|vote and /api/v1/comments/{id}/upvote|downvote|vote."""
from __future__ import annotations

from aiohttp import web

from ..platform import appkeys
from ..edge.http import ok, parse_uuid, require_agent
from ..services import votes as service
from ..stores.votes import Kind


def _handler(kind: Kind, value: int | None):
    async def handle(request: web.Request) -> web.Response:
        agent = require_agent(request)
        target_id = parse_uuid(request.match_info["id"], kind)
        result = await service.vote(request.app[appkeys.POOL], agent, kind, target_id, value)
        return ok(service.vote_to_json(result))

    handle.__name__ = f"{'clear' if value is None else 'up' if value == 1 else 'down'}vote_{kind}"
    return handle


def setup(app: web.Application) -> None:
    r = app.router
    for kind, base in (("post", "/api/v1/posts/{id}"), ("comment", "/api/v1/comments/{id}")):
        r.add_post(f"{base}/upvote", _handler(kind, service.UP))
        r.add_post(f"{base}/downvote", _handler(kind, service.DOWN))
        r.add_delete(f"{base}/vote", _handler(kind, None))
