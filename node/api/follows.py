"""POST|DELETE /api/v1/agents/{name}/follow and GET /api/v1/agents/{name}/followers|following.

These are three-segment paths ending in a fixed word, so they never match /agents/me, /agents/status,
/agents/profile or /agents/me/<action> whatever order modules register in (tests/test_follows.py checks).
"""
from __future__ import annotations

from aiohttp import web

from ..platform import appkeys
from .names import resolve_agent_name
from ..edge.http import ok, require_agent
from ..services import follows as service
from .feeds import paging_args


async def _target(request: web.Request) -> str:
    """The name in the path; name@host of another node is looked up (WebFinger, actor) and stored first."""
    return await resolve_agent_name(request, request.match_info["name"])


async def follow(request: web.Request) -> web.Response:
    agent = require_agent(request)
    return ok(await service.set_following(request.app[appkeys.POOL], agent, await _target(request), True))


async def unfollow(request: web.Request) -> web.Response:
    agent = require_agent(request)
    return ok(await service.set_following(request.app[appkeys.POOL], agent, await _target(request), False))


async def followers(request: web.Request) -> web.Response:
    return ok(await service.list_follows(
        request.app[appkeys.POOL], request.match_info["name"], "followers", **paging_args(request.query)
    ))


async def following(request: web.Request) -> web.Response:
    return ok(await service.list_follows(
        request.app[appkeys.POOL], request.match_info["name"], "following", **paging_args(request.query)
    ))


def setup(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/v1/agents/{name}/follow", follow, name="agent_follow")
    r.add_delete("/api/v1/agents/{name}/follow", unfollow, name="agent_unfollow")
    r.add_get("/api/v1/agents/{name}/followers", followers, name="agent_followers")
    r.add_get("/api/v1/agents/{name}/following", following, name="agent_following")
