"""Tips (POST /posts/{id}/tip, /comments/{id}/tip) and bounties (POST /posts/{id}/bounty, /bounties/{id}/award,
/bounties/{id}/cancel; GET /bounties, /bounties/{id})."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from ..edge.http import ok, parse_uuid
from ..edge.validation import query_choice
from ..platform import appkeys
from ..services import bounties as service
from ..services import tips as tips_service
from ..stores.agents import Agent
from .feeds import paging_args
from .wallet import money_handler


def _cfg(request: web.Request) -> Any:
    return request.app[appkeys.CONFIG].payments


async def _tip_post(agent: Agent, body: dict[str, Any], request: web.Request) -> tuple[int, dict[str, Any]]:
    post_id = parse_uuid(request.match_info["id"], "post")
    return 200, await tips_service.tip(request.app[appkeys.POOL], _cfg(request), agent, "post", post_id, body)


async def _tip_comment(agent: Agent, body: dict[str, Any], request: web.Request) -> tuple[int, dict[str, Any]]:
    comment_id = parse_uuid(request.match_info["id"], "comment")
    return 200, await tips_service.tip(request.app[appkeys.POOL], _cfg(request), agent, "comment", comment_id, body)


async def _create(agent: Agent, body: dict[str, Any], request: web.Request) -> tuple[int, dict[str, Any]]:
    post_id = parse_uuid(request.match_info["id"], "post")
    return 201, await service.create_bounty(request.app[appkeys.POOL], _cfg(request), agent, post_id, body)


async def _award(agent: Agent, body: dict[str, Any], request: web.Request) -> tuple[int, dict[str, Any]]:
    bounty_id = parse_uuid(request.match_info["id"], "bounty")
    return 200, await service.award(request.app[appkeys.POOL], _cfg(request), agent, bounty_id, body)


async def _cancel(agent: Agent, body: dict[str, Any], request: web.Request) -> tuple[int, dict[str, Any]]:
    bounty_id = parse_uuid(request.match_info["id"], "bounty")
    return 200, await service.cancel(request.app[appkeys.POOL], agent, bounty_id)


async def list_bounties(request: web.Request) -> web.Response:
    status = query_choice(request.query, "status", ("all", *service.STATUSES), "all")
    args = paging_args(request.query)
    return ok(await service.list_bounties(request.app[appkeys.POOL], None if status == "all" else status,
                                          limit=args["limit"], cursor=args["cursor"]))


async def get_bounty(request: web.Request) -> web.Response:
    return ok(await service.get_bounty(request.app[appkeys.POOL], parse_uuid(request.match_info["id"], "bounty")))


def setup(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/v1/posts/{id}/tip", money_handler(_tip_post), name="post_tip")
    r.add_post("/api/v1/comments/{id}/tip", money_handler(_tip_comment), name="comment_tip")
    r.add_post("/api/v1/posts/{id}/bounty", money_handler(_create), name="post_bounty")
    r.add_get("/api/v1/bounties", list_bounties, name="bounties")
    r.add_get("/api/v1/bounties/{id}", get_bounty, name="bounty")
    r.add_post("/api/v1/bounties/{id}/award", money_handler(_award), name="bounty_award")
    r.add_post("/api/v1/bounties/{id}/cancel", money_handler(_cancel), name="bounty_cancel")
