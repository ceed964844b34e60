"""Wallet and payments: GET /wallet, /wallet/transactions; POST /wallet/deposit, /wallet/withdraw,
/agents/{name}/invoice, /payments/pay. (Their background jobs are in node/background.py.)"""
from __future__ import annotations

from typing import Any, Awaitable, Callable

from aiohttp import web

from ..edge.http import ok, read_json, require_agent
from ..edge.idempotency import idempotent
from ..edge.validation import query_choice
from ..adapters.lightning.lnurl import address_fetcher
from ..edge.ratelimit.actions import action_limit
from ..platform import appkeys
from ..services import payments as payments_service
from ..services import spending as spending_service
from ..services import wallet as wallet_service
from ..stores.agents import Agent
from .feeds import paging_args

Work = Callable[[Agent, dict[str, Any], web.Request], Awaitable[tuple[int, dict[str, Any]]]]


def money_handler(work: Work) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A money-moving POST: authenticated, Idempotency-Key aware, and within the per-agent payment rate limit
    (taken only when the work really runs, so a replayed answer costs nothing). A payment over the owner's daily
    spending limit moved nothing: it is kept for the owner's approval and answered 202 awaiting_approval (the
    answer an Idempotency-Key replays, so a repeat does not ask twice)."""
    async def handler(request: web.Request) -> web.Response:
        agent = require_agent(request)
        body = await read_json(request)
        app = request.app

        async def run() -> tuple[int, dict[str, Any]]:
            async with action_limit(app, app[appkeys.CONFIG], agent, "payment"):
                try:
                    return await work(agent, body, request)
                except spending_service.OverLimit as over:
                    return await spending_service.request_approval(app[appkeys.POOL], over)

        return await idempotent(request, agent, body, run)

    return handler


def _deps(request: web.Request) -> tuple[Any, Any, Any]:
    app = request.app
    return app[appkeys.POOL], app[appkeys.CONFIG].payments, app[appkeys.LIGHTNING]


async def get_wallet(request: web.Request) -> web.Response:
    return ok(await wallet_service.get_wallet(request.app[appkeys.POOL], require_agent(request)))


async def transactions(request: web.Request) -> web.Response:
    args = paging_args(request.query)
    return ok(await wallet_service.list_transactions(
        request.app[appkeys.POOL], require_agent(request), limit=args["limit"], cursor=args["cursor"]))


async def approvals(request: web.Request) -> web.Response:
    args = paging_args(request.query)
    status = query_choice(request.query, "status", ("all", *spending_service.STATUSES), "all")
    return ok(await spending_service.list_approvals(
        request.app[appkeys.POOL], require_agent(request).id, limit=args["limit"], cursor=args["cursor"],
        status=None if status == "all" else status))


async def _deposit(agent: Agent, body: dict[str, Any], request: web.Request) -> tuple[int, dict[str, Any]]:
    return 201, await wallet_service.create_deposit(*_deps(request), agent, body)


async def _withdraw(agent: Agent, body: dict[str, Any], request: web.Request) -> tuple[int, dict[str, Any]]:
    return await payments_service.withdraw(*_deps(request), agent, body)


async def _invoice(agent: Agent, body: dict[str, Any], request: web.Request) -> tuple[int, dict[str, Any]]:
    return 201, await wallet_service.create_agent_invoice(*_deps(request), request.match_info["name"], body)


async def _pay(agent: Agent, body: dict[str, Any], request: web.Request) -> tuple[int, dict[str, Any]]:
    return await payments_service.pay(*_deps(request), agent, body, fetcher=address_fetcher(request.app),
                                      https=request.app[appkeys.CONFIG].node.https)


async def agent_invoice(request: web.Request) -> web.Response:
    """Issuing an invoice moves no money (no Idempotency-Key), but it may ask the backend: the payment limit applies."""
    agent = require_agent(request)
    body = await read_json(request)
    async with action_limit(request.app, request.app[appkeys.CONFIG], agent, "payment"):
        status, data = await _invoice(agent, body, request)
    return ok(data, status=status)


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v1/wallet", get_wallet, name="wallet")
    r.add_get("/api/v1/wallet/transactions", transactions, name="wallet_transactions")
    r.add_get("/api/v1/wallet/approvals", approvals, name="wallet_approvals")
    r.add_post("/api/v1/wallet/deposit", money_handler(_deposit), name="wallet_deposit")
    r.add_post("/api/v1/wallet/withdraw", money_handler(_withdraw), name="wallet_withdraw")
    r.add_post("/api/v1/agents/{name}/invoice", agent_invoice, name="agent_invoice")
    r.add_post("/api/v1/payments/pay", money_handler(_pay), name="payments_pay")
