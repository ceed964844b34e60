"""/api/v1/agents: register, status, me, profile, claim (verify), owner email, key rotation and revocation."""
from __future__ import annotations

from aiohttp import web

from ..platform import appkeys
from ..edge.auth import presented_key
from ..edge.clientip import client_ip
from ..edge.http import current_agent, ok, read_json, require_agent
from ..adapters.proof import PROOF_HTTP, proof_http_ctx
from ..edge.ratelimit.actions import action_limit
from ..services import agents as agents_service
from ..services import claims as claims_service
from ..services import profiles as profiles_service


async def register(request: web.Request) -> web.Response:
    cfg = request.app[appkeys.CONFIG]
    agents_service.check_registrations_open(cfg)
    reg = agents_service.parse_registration(await read_json(request))
    # [limits] registrations_per_hour per address; a failed registration (name taken) is refunded.
    async with action_limit(request.app, cfg, None, "register", ip=client_ip(request)):
        data = await agents_service.register_agent(request.app[appkeys.POOL], cfg, reg)
    return ok(data, status=201)


async def status(request: web.Request) -> web.Response:
    return ok(claims_service.claim_status(request.app[appkeys.CONFIG], require_agent(request)))


async def get_me(request: web.Request) -> web.Response:
    agent = require_agent(request)
    return ok(await agents_service.get_me(request.app[appkeys.POOL], request.app[appkeys.CONFIG], agent))


async def patch_me(request: web.Request) -> web.Response:
    agent = require_agent(request)
    body = await read_json(request)
    return ok(await profiles_service.update_me(request.app[appkeys.POOL], request.app[appkeys.CONFIG], agent, body))


async def profile(request: web.Request) -> web.Response:
    name = request.query.get("name")
    resolver = request.app.get(appkeys.REMOTE_RESOLVER)
    if name and "@" in name.strip() and resolver is not None:
        name = await resolver.lookup_agent(name.strip())  # name@host: fetched through WebFinger, stored
    return ok(await agents_service.get_profile(request.app[appkeys.POOL], name, current_agent(request)))


async def verify(request: web.Request) -> web.Response:
    body = await read_json(request)
    app = request.app
    return ok(await claims_service.verify_claim(
        app[appkeys.POOL], app[appkeys.CONFIG], app[PROOF_HTTP], current_agent(request), body
    ))


async def setup_owner_email(request: web.Request) -> web.Response:
    agent = require_agent(request)
    body = await read_json(request)
    return ok(await agents_service.setup_owner_email(request.app[appkeys.POOL], agent, body))


async def rotate_key(request: web.Request) -> web.Response:
    agent = require_agent(request)
    body = await read_json(request)
    return ok(await agents_service.rotate_my_key(request.app[appkeys.POOL], agent, body))


async def revoke_key(request: web.Request) -> web.Response:
    agent = require_agent(request)
    return ok(await agents_service.revoke_my_key(request.app[appkeys.POOL], agent, presented_key(request)))


def setup(app: web.Application) -> None:
    # The SSRF-safe session that fetches claim proofs (here and on the web claim page).
    app.cleanup_ctx.append(proof_http_ctx)
    r = app.router
    r.add_post("/api/v1/agents/register", register, name="agents_register")
    r.add_get("/api/v1/agents/status", status, name="agents_status")
    r.add_get("/api/v1/agents/me", get_me, name="agents_me")
    r.add_patch("/api/v1/agents/me", patch_me, name="agents_me_patch")
    r.add_get("/api/v1/agents/profile", profile, name="agents_profile")
    r.add_post("/api/v1/agents/verify", verify, name="agents_verify")
    r.add_post("/api/v1/agents/me/setup-owner-email", setup_owner_email, name="agents_owner_email")
    r.add_post("/api/v1/agents/me/rotate-key", rotate_key, name="agents_rotate_key")
    r.add_post("/api/v1/agents/me/revoke-key", revoke_key, name="agents_revoke_key")
