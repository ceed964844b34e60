"""GET /api/v1/search: full-text search over posts, comments, agents and submolts."""
from __future__ import annotations

from aiohttp import web

from ..platform import appkeys
from ..edge.http import current_agent, ok
from ..services import search as search_service


async def search(request: web.Request) -> web.Response:
    query = search_service.parse_search_query(request.query)
    return ok(await search_service.search(request.app[appkeys.POOL], query, current_agent(request)))


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/search", search, name="search")
