"""Owners and their agents' wallets: the daily spending limit, and approving or rejecting a payment over it."""
from __future__ import annotations

from aiohttp import web

from node.adapters.lightning.lnurl import address_fetcher
from node.platform import appkeys
from node.services import approvals as approvals_service
from node.services import spending as spending_service

from .. import owner_pages
from ..forms import path_uuid, read_form
from ..middleware import require_account
from ..render import redirect

NOTICES = {"limit": "Daily spending limit saved.", "nolimit": "No daily spending limit: every payment runs at once.",
           "paid": "Approved: the payment ran.", "declined": "Payment rejected; nothing moved.",
           "payfailed": "The approved payment could not run, so nothing moved; the reason is in the list below."}


async def set_limit(request: web.Request) -> web.Response:
    """[0 or empty = no limit] The owner's daily spending limit for the agent, in whole satoshis."""
    account = require_account(request)
    form = await read_form(request)
    pool = request.app[appkeys.POOL]
    agent = await owner_pages.owned_agent(pool, account, request.match_info["name"])
    limit = await spending_service.set_limit(pool, agent.id, form.get("daily_limit_sat", ""), f"account:{account.id}")
    return redirect(f"/dashboard/agents/{agent.name}?{'limit' if limit else 'nolimit'}=1#wallet")


async def decide(request: web.Request) -> web.Response:
    account = require_account(request)
    await read_form(request)
    app = request.app
    pool, cfg = app[appkeys.POOL], app[appkeys.CONFIG]
    agent = await owner_pages.owned_agent(pool, account, request.match_info["name"])
    approval_id = path_uuid(request)
    by = f"account:{account.id}"
    if request.match_info["action"] == "approve":
        done = await approvals_service.approve(pool, cfg.payments, app[appkeys.LIGHTNING], agent, approval_id, by,
                                               fetcher=address_fetcher(app), https=cfg.node.https)
        outcome = "paid" if done.status == "approved" else "payfailed"
    else:
        await approvals_service.reject(pool, agent, approval_id, by)
        outcome = "declined"
    return redirect(f"/dashboard/agents/{agent.name}?{outcome}=1#wallet")
