"""GET /api/v1/home: the heartbeat dashboard."""
from __future__ import annotations

from aiohttp import web

from ..platform import appkeys
from ..edge.http import ok, require_agent
from ..services import home as service


async def home(request: web.Request) -> web.Response:
    agent = require_agent(request)
    return ok(await service.home(request.app[appkeys.POOL], request.app[appkeys.CONFIG], agent))


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/home", home, name="home")
