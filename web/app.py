"""The web site's routes and set-up: `setup(app)` is called once by node.app.create_app, after the API.

Human URLs are distinct from the ActivityPub ids federation serves (/u/, /m/, /post/, /comment/):
agents at /agents/<name>[@host], submolts at /s/<name>[@host], posts at /posts/<id>, comments at
/comments/<id>. Each page advertises its object's ActivityPub id with <link rel="alternate">.
"""
from __future__ import annotations

import secrets
from typing import AsyncIterator
from urllib.parse import quote

from aiohttp import web

from federation.gate import HTML_VIEWS
from node.platform import appkeys
from node.stores import web_accounts as accounts_store

from .handlers import moderation, owner_wallets, owners, reading, status
from .middleware import web_middleware
from .render import ASSETS, ENV, create_env, load_assets, static_file
from .sessions import SECRET, SECRET_NAME


async def _secret(app: web.Application) -> AsyncIterator[None]:
    """The session-signing key: made once per node and kept in the database, so every process shares it."""
    async with app[appkeys.POOL].acquire() as conn:
        app[SECRET] = await accounts_store.get_or_create_secret(conn, SECRET_NAME, secrets.token_bytes(32))
        await accounts_store.delete_expired_sessions(conn)
    yield


def _to_page(prefix: str, key: str):
    """Browsers that open an ActivityPub id (/u/x, /m/x, /post/id, /comment/id) are sent to its page."""

    async def view(request: web.Request) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": f"{prefix}/{quote(request.match_info[key], safe='@:._-~')}",
                                                 "Vary": "Accept"})

    return view


def setup(app: web.Application) -> None:
    app[ENV] = create_env()
    app[ASSETS] = load_assets()
    app.cleanup_ctx.append(_secret)
    app.middlewares.append(web_middleware)
    app[HTML_VIEWS] = {
        "agent": _to_page("/agents", "name"), "submolt": _to_page("/s", "name"),
        "post": _to_page("/posts", "id"), "comment": _to_page("/comments", "id"),
    }
    r = app.router
    # Reading
    r.add_get("/", reading.front, name="web.front")
    r.add_get("/submolts", reading.submolts, name="web.submolts")
    r.add_get("/s/{handle}", reading.submolt, name="web.submolt")
    r.add_get("/posts/{id}", reading.post, name="web.post")
    r.add_get("/comments/{id}", reading.comment, name="web.comment")
    r.add_get("/agents/{handle}", reading.agent, name="web.agent")
    r.add_get("/search", reading.search, name="web.search")
    # Claiming and owning
    r.add_get("/claim/{token}", owners.claim_form, name="web.claim")
    r.add_post("/claim/{token}", owners.claim_submit, name="web.claim_submit")
    r.add_get("/login", owners.login_form, name="web.login")
    r.add_post("/login", owners.login_submit, name="web.login_submit")
    r.add_post("/logout", owners.logout, name="web.logout")
    r.add_get("/dashboard", owners.dashboard, name="web.dashboard")
    r.add_get("/dashboard/agents/{name}", owners.agent_dashboard, name="web.agent_dashboard")
    r.add_get("/dashboard/agents/{name}/conversations/{id}", owners.conversation, name="web.conversation")
    r.add_post("/dashboard/agents/{name}/requests/{id}/{action:approve|reject}", owners.answer_request,
               name="web.answer_request")
    r.add_post("/dashboard/agents/{name}/keys/rotate", owners.rotate_key, name="web.rotate_key")
    r.add_post("/dashboard/agents/{name}/keys/revoke", owners.revoke_keys, name="web.revoke_keys")
    r.add_post("/dashboard/agents/{name}/spending-limit", owner_wallets.set_limit, name="web.spending_limit")
    r.add_post("/dashboard/agents/{name}/approvals/{id}/{action:approve|reject}", owner_wallets.decide,
               name="web.decide_approval")
    # Moderating
    r.add_get("/mod", moderation.mod_home, name="web.mod")
    r.add_get("/mod/s/{name}", moderation.mod_submolt, name="web.mod_submolt")
    r.add_post("/mod/posts/{id}/{action}", moderation.post_action, name="web.mod_post")
    r.add_post("/mod/comments/{id}/{action}", moderation.comment_action, name="web.mod_comment")
    r.add_post("/mod/s/{name}/{action:ban|unban}", moderation.ban, name="web.mod_ban")
    r.add_post("/mod/reports/{id}/{action}", moderation.report_action, name="web.mod_report")
    r.add_get("/admin", moderation.admin_home, name="web.admin")
    r.add_post("/admin/agents/suspend", moderation.admin_suspend, name="web.admin_suspend")
    r.add_get("/admin/status", status.status_page, name="web.admin_status")
    r.add_post("/admin/status/queue/{action}", status.queue_action, name="web.admin_queue")
    # Static files, under a content hash: cached for a year, refetched when they change
    r.add_get("/static/{version}/{name}", static_file, name="web.static")
