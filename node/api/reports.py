"""/api/v1/posts/{id}/report and /api/v1/comments/{id}/report: flag content for the moderators."""
from __future__ import annotations

from aiohttp import web

from ..platform import appkeys
from ..edge.http import ok, parse_uuid, read_json, require_agent
from ..services import reports as service


def _handler(target_type: str):
    async def report(request: web.Request) -> web.Response:
        agent = require_agent(request)
        target_id = parse_uuid(request.match_info["id"], target_type)
        body = await read_json(request)
        result, new = await service.file_report(request.app[appkeys.POOL], agent, target_type, target_id, body)
        return ok(result, status=201 if new else 200)

    return report


def setup(app: web.Application) -> None:
    app.router.add_post("/api/v1/posts/{id}/report", _handler("post"), name="report_post")
    app.router.add_post("/api/v1/comments/{id}/report", _handler("comment"), name="report_comment")
