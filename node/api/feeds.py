"""GET /api/v1/posts, /submolts/{name}/feed and /feed; the background task that refreshes rising ranks."""
from __future__ import annotations

from typing import Any, Mapping

from aiohttp import web

from ..platform import appkeys
from ..edge.feedcache import cached_answer
from ..edge.http import current_agent, dumps_bytes, ok, require_agent
from ..services import feeds as service
from ..edge.validation import query_choice, query_int



def paging_args(query: Mapping[str, str]) -> dict[str, Any]:
    """limit (1..100, clamped), cursor, and offset (0..10000) from a query string."""
    return {
        "limit": query_int(query, "limit", default=service.DEFAULT_LIMIT, minimum=1, maximum=service.MAX_LIMIT),
        "cursor": query.get("cursor") or None,
        "offset": query_int(query, "offset", default=0, minimum=0, maximum=service.MAX_OFFSET, clamp=False),
    }


def _feed_args(query: Mapping[str, str]) -> dict[str, Any]:
    return {
        "sort": query_choice(query, "sort", service.SORTS, "hot"),
        "t": query_choice(query, "t", tuple(service.WINDOWS), "all"),
        **paging_args(query),
    }


async def list_posts(request: web.Request) -> web.Response:
    q = request.query
    agent, submolt, args = current_agent(request), q.get("submolt") or None, _feed_args(q)

    async def answer() -> bytes:
        data = await service.list_posts(request.app[appkeys.POOL], agent, submolt=submolt, encoded=True, **args)
        return dumps_bytes({"success": True, **data})

    return await cached_answer(request, ("posts", submolt, *sorted(args.items())), agent is None, answer)


async def submolt_feed(request: web.Request) -> web.Response:
    agent, name, args = current_agent(request), request.match_info["name"], _feed_args(request.query)

    async def answer() -> bytes:
        data = await service.list_submolt_feed(request.app[appkeys.POOL], agent, name, encoded=True, **args)
        return dumps_bytes({"success": True, **data})

    return await cached_answer(request, ("submolt", name, *sorted(args.items())), agent is None, answer)


async def personal_feed(request: web.Request) -> web.Response:
    agent = require_agent(request)
    q = request.query
    return ok(await service.list_personal_feed(
        request.app[appkeys.POOL], agent, feed_filter=query_choice(q, "filter", service.FILTERS, "all"),
        encoded=True, **_feed_args(q),
    ))


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v1/posts", list_posts, name="posts_list")
    r.add_get("/api/v1/submolts/{name}/feed", submolt_feed, name="submolt_feed")
    r.add_get("/api/v1/feed", personal_feed, name="personal_feed")
