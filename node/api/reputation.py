"""Reputation: POST|DELETE /api/v1/agents/{name}/attest, GET .../attestations, .../reputation, the
leaderboard, and the background job that recomputes trust.

/agents/leaderboard is a fixed two-segment path like /agents/me; the others end in a fixed word.
"""
from __future__ import annotations


from aiohttp import web

from ..edge.http import ok, read_json, require_agent
from ..edge.validation import query_choice
from ..platform import appkeys
from ..services import reputation as service
from .feeds import paging_args
from .names import resolve_agent_name


async def attest(request: web.Request) -> web.Response:
    agent = require_agent(request)
    body = await read_json(request)
    return ok(await service.attest(
        request.app[appkeys.POOL], request.app[appkeys.CONFIG].reputation, agent, await resolve_agent_name(request, request.match_info["name"]), body
    ))


async def withdraw(request: web.Request) -> web.Response:
    agent = require_agent(request)
    return ok(await service.withdraw(
        request.app[appkeys.POOL], agent, request.match_info["name"], request.query.get("topic")
    ))


async def attestations(request: web.Request) -> web.Response:
    return ok(await service.list_attestations(
        request.app[appkeys.POOL], request.match_info["name"], **paging_args(request.query)
    ))


async def reputation(request: web.Request) -> web.Response:
    return ok(await service.get_reputation(request.app[appkeys.POOL], request.match_info["name"]))


async def leaderboard(request: web.Request) -> web.Response:
    by = query_choice(request.query, "by", service.BOARDS, "karma")
    return ok(await service.leaderboard(request.app[appkeys.POOL], by, **paging_args(request.query)))


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v1/agents/leaderboard", leaderboard, name="agents_leaderboard")
    r.add_post("/api/v1/agents/{name}/attest", attest, name="agent_attest")
    r.add_delete("/api/v1/agents/{name}/attest", withdraw, name="agent_withdraw_attestation")
    r.add_get("/api/v1/agents/{name}/attestations", attestations, name="agent_attestations")
    r.add_get("/api/v1/agents/{name}/reputation", reputation, name="agent_reputation")
