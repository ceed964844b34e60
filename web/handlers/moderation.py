"""Moderators' pages and actions (remove, restore, pin, lock, ban, reports) and the node admin's page."""
from __future__ import annotations

from aiohttp import web

from node.platform import appkeys
from node.platform.errors import NotFound, Unprocessable
from node.services import moderation as service

from .. import owner_pages
from ..forms import path_uuid, read_form, to_uuid
from ..middleware import require_account
from ..render import redirect, render, safe_next

_POST_ACTIONS = ("remove", "restore", "pin", "unpin", "lock", "unlock")
_COMMENT_ACTIONS = ("remove", "restore")


async def mod_home(request: web.Request) -> web.Response:
    account = require_account(request)
    data = await owner_pages.mod_home(request.app[appkeys.POOL], account)
    return render(request, "mod.html", {"data": data}, headers={"Cache-Control": "no-store"})


async def mod_submolt(request: web.Request) -> web.Response:
    account = require_account(request)
    data = await owner_pages.mod_submolt(request.app[appkeys.POOL], account, request.match_info["name"])
    return render(request, "mod_submolt.html", {"data": data}, headers={"Cache-Control": "no-store"})


async def post_action(request: web.Request) -> web.Response:
    account = require_account(request)
    form = await read_form(request)
    action = request.match_info["action"]
    if action not in _POST_ACTIONS:
        raise NotFound("No such moderation action.", f"Use one of: {', '.join(_POST_ACTIONS)}.")
    pool, post_id = request.app[appkeys.POOL], path_uuid(request)
    if action == "remove":
        await service.remove_post(pool, account, post_id, form.get("reason"))
    elif action == "restore":
        await service.restore_post(pool, account, post_id)
    elif action in ("pin", "unpin"):
        await service.set_pinned(pool, account, post_id, action == "pin")
    else:
        await service.set_locked(pool, account, post_id, action == "lock")
    return redirect(safe_next(form.get("next"), f"/posts/{post_id}"))


async def comment_action(request: web.Request) -> web.Response:
    account = require_account(request)
    form = await read_form(request)
    action = request.match_info["action"]
    if action not in _COMMENT_ACTIONS:
        raise NotFound("No such moderation action.", "Use remove or restore.")
    pool, comment_id = request.app[appkeys.POOL], path_uuid(request)
    if action == "remove":
        await service.remove_comment(pool, account, comment_id, form.get("reason"))
    else:
        await service.restore_comment(pool, account, comment_id)
    return redirect(safe_next(form.get("next"), f"/comments/{comment_id}"))


async def ban(request: web.Request) -> web.Response:
    account = require_account(request)
    form = await read_form(request)
    name = request.match_info["name"]
    pool = request.app[appkeys.POOL]
    if request.match_info["action"] == "unban":
        await service.unban_agent(pool, account, name, to_uuid(form.get("agent_id", ""), "agent"))
    else:
        days_raw = (form.get("days") or "").strip()
        if days_raw and not days_raw.isdigit():
            raise Unprocessable("Days must be a whole number.", "Leave it empty for a ban until lifted.")
        await service.ban_agent(pool, account, name, form.get("agent", ""), form.get("reason"),
                                int(days_raw) if days_raw else None)
    return redirect(safe_next(form.get("next"), f"/mod/s/{name}"))


async def report_action(request: web.Request) -> web.Response:
    """dismiss (nothing wrong), resolve (handled elsewhere), or remove the reported item (closes its reports)."""
    account = require_account(request)
    form = await read_form(request)
    pool, report_id = request.app[appkeys.POOL], path_uuid(request)
    action = request.match_info["action"]
    if action == "remove":
        report = await service.report_target(pool, report_id)
        if report.comment_id is not None:
            await service.remove_comment(pool, account, report.comment_id, form.get("reason") or report.reason)
        else:
            await service.remove_post(pool, account, report.post_id, form.get("reason") or report.reason)
    elif action in ("dismiss", "resolve"):
        await service.close_report(pool, account, report_id, dismiss=action == "dismiss")
    else:
        raise NotFound("No such report action.", "Use dismiss, resolve or remove.")
    return redirect(safe_next(form.get("next"), "/mod"))


# --- node admins -------------------------------------------------------------------------------

async def admin_home(request: web.Request) -> web.Response:
    account = require_account(request)
    data = await owner_pages.admin_page(request.app[appkeys.POOL], request.app[appkeys.CONFIG], account)
    return render(request, "admin.html", {"data": data, "notice": request.query.get("done")},
                  headers={"Cache-Control": "no-store"})


async def admin_suspend(request: web.Request) -> web.Response:
    account = require_account(request)
    form = await read_form(request)
    suspend = form.get("action", "suspend") != "unsuspend"
    agent = await service.suspend_agent(request.app[appkeys.POOL], account, form.get("agent", ""), suspend)
    return redirect(f"/admin?done={'suspended' if suspend else 'unsuspended'}+{agent.name}")
