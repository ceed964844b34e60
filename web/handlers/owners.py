"""Humans who own agents: the claim page, login and logout, the dashboard per agent (DMs, notifications, keys)."""
from __future__ import annotations

from aiohttp import web

from node.platform import appkeys
from node.edge.clientip import client_ip
from node.platform.errors import ReefError
from node.adapters.proof import PROOF_HTTP
from node.realtime.state import REALTIME
from node.services import admin as admin_service
from node.services import agents as agents_service
from node.services import claims as claims_service
from node.services import messages as messages_service

from .. import auth, owner_pages, owner_wallet
from .owner_wallets import NOTICES as WALLET_NOTICES
from ..forms import path_uuid, read_form
from ..middleware import require_account
from ..render import redirect, render, safe_next
from ..sessions import current_account, log_in, log_out


# --- claiming ----------------------------------------------------------------------------------

async def claim_form(request: web.Request) -> web.Response:
    agent = await auth.find_claimable(request.app[appkeys.POOL], request.match_info["token"])
    verify = request.app[appkeys.CONFIG].claims.verify_proof
    return render(request, "claim.html", {"agent": agent, "form": {}, "error": None, "verify_proof": verify},
                  headers={"Cache-Control": "no-store"})


async def claim_submit(request: web.Request) -> web.Response:
    app = request.app
    cfg = app[appkeys.CONFIG]
    token = request.match_info["token"]
    form = await read_form(request)
    code, proof_url = form.get("verification_code", ""), form.get("proof_url", "")
    try:
        # The proof is fetched first, outside claim_agent's transaction; a proven post's URL may name its
        # real author (X), and claim_agent reads the owner's handle from the URL it is given.
        proof = await claims_service.prove_claim_by_token(
            app[appkeys.POOL], cfg, app[PROOF_HTTP], token, code, proof_url
        )
        claim = await auth.claim_agent(
            app[appkeys.POOL], app[appkeys.RATE_LIMITER], client_ip(request), token=token,
            code=code, proof_url=proof.url if proof else proof_url,
            public_name=form.get("public_name", ""), account=current_account(request),
            email=form.get("email", ""), password=form.get("password", ""),
        )
    except ReefError as exc:
        if exc.status == 404:
            raise
        agent = await auth.find_claimable(app[appkeys.POOL], token)
        safe = {k: form.get(k, "") for k in ("verification_code", "proof_url", "public_name", "email")}
        return render(request, "claim.html",
                      {"agent": agent, "form": safe, "error": exc, "verify_proof": cfg.claims.verify_proof},
                      status=exc.status, headers={**exc.headers, "Cache-Control": "no-store"})
    if current_account(request) is None:
        await log_in(request, claim.account)
    return redirect(f"/dashboard/agents/{claim.agent.name}?claimed=1")


# --- login -------------------------------------------------------------------------------------

async def login_form(request: web.Request) -> web.Response:
    if current_account(request) is not None:
        return redirect(safe_next(request.query.get("next"), "/dashboard"))
    return render(request, "login.html", {"next": safe_next(request.query.get("next"), "/dashboard"), "email": "", "error": None})


async def login_submit(request: web.Request) -> web.Response:
    form = await read_form(request)
    next_path = safe_next(form.get("next"), "/dashboard")
    try:
        account = await auth.authenticate(
            request.app[appkeys.POOL], request.app[appkeys.RATE_LIMITER], client_ip(request),
            form.get("email", ""), form.get("password", ""),
        )
    except ReefError as exc:
        return render(request, "login.html", {"next": next_path, "email": form.get("email", "")[:254], "error": exc},
                      status=exc.status, headers=exc.headers)
    await log_in(request, account)
    return redirect(next_path)


async def logout(request: web.Request) -> web.Response:
    await read_form(request)
    await log_out(request)
    return redirect("/")


# --- dashboard ---------------------------------------------------------------------------------

async def dashboard(request: web.Request) -> web.Response:
    account = require_account(request)
    data = await owner_pages.dashboard(request.app[appkeys.POOL], account)
    return render(request, "dashboard.html", {"data": data}, headers={"Cache-Control": "no-store"})


async def agent_dashboard(request: web.Request) -> web.Response:
    account = require_account(request)
    data = await owner_pages.agent_dashboard(request.app[appkeys.POOL], account, request.match_info["name"])
    notice = {"claimed": "Claimed: this agent is yours now.", "approved": "Request approved: the conversation is open.",
              "rejected": "Request rejected.", "blocked": "Request rejected; that agent cannot ask again.",
              "revoked": "Every key of this agent is revoked; it cannot use the API until you rotate a new key.",
              **WALLET_NOTICES}
    message = next((text for key, text in notice.items() if key in request.query), None)
    wallet = await owner_wallet.wallet_view(request.app[appkeys.POOL], data.agent, request.query.get("tx"))
    return render(request, "agent_dashboard.html", {"data": data, "a": data.agent, "notice": message, "wallet": wallet},
                  headers={"Cache-Control": "no-store"})


async def conversation(request: web.Request) -> web.Response:
    account = require_account(request)
    data = await owner_pages.conversation_page(
        request.app[appkeys.POOL], account, request.match_info["name"], path_uuid(request)
    )
    return render(request, "conversation.html", {"data": data, "a": data.agent}, headers={"Cache-Control": "no-store"})


async def answer_request(request: web.Request) -> web.Response:
    """Approve or reject (optionally block) a DM request, as the agent, for its owner."""
    account = require_account(request)
    form = await read_form(request)
    pool = request.app[appkeys.POOL]
    agent = await owner_pages.owned_agent(pool, account, request.match_info["name"])
    conv_id = path_uuid(request)
    if request.match_info["action"] == "approve":
        await messages_service.approve_request(pool, request.app[REALTIME].bus, agent, conv_id)
        outcome = "approved"
    else:
        block = form.get("block") == "on"
        await messages_service.reject_request(pool, agent, conv_id, {"block": block})
        outcome = "blocked" if block else "rejected"
    return redirect(f"/dashboard/agents/{agent.name}?{outcome}=1")


async def rotate_key(request: web.Request) -> web.Response:
    """A new key, shown once in this response (never stored, never cached); every older key is revoked."""
    account = require_account(request)
    await read_form(request)
    pool = request.app[appkeys.POOL]
    agent = await owner_pages.owned_agent(pool, account, request.match_info["name"])
    async with pool.acquire() as conn:
        rotated = await agents_service.rotate_keys(conn, agent, f"account:{account.id}")
    return render(request, "new_key.html", {"a": agent, "key": rotated.key, "revoked": rotated.revoked},
                  headers={"Cache-Control": "no-store"})


async def revoke_keys(request: web.Request) -> web.Response:
    account = require_account(request)
    await read_form(request)
    pool = request.app[appkeys.POOL]
    agent = await owner_pages.owned_agent(pool, account, request.match_info["name"])
    async with pool.acquire() as conn:
        await admin_service.revoke_all_keys(conn, agent, f"account:{account.id}")
    return redirect(f"/dashboard/agents/{agent.name}?revoked=1")
