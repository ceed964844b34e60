"""Discovery: WebFinger (agents and submolts, both for one name as Lemmy does), NodeInfo 2.1, host-meta."""
from __future__ import annotations

import importlib.metadata
import json
from typing import Any
from xml.sax.saxutils import quoteattr

from aiohttp import web

from node.platform import appkeys
from node.platform.config import Config
from node.platform.errors import BadRequest, NotFound

from . import actor_store, gate, urls
from . import object_store
from .resolve import parse_handle

JRD_CONTENT_TYPE = "application/jrd+json"
AS_TYPE_PROPERTY = "https://www.w3.org/ns/activitystreams#type"
NODEINFO_21 = "http://nodeinfo.diaspora.software/ns/schema/2.1"


def software_version() -> str:
    try:
        return importlib.metadata.version("reef")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"


def _links(actor: str, ap_type: str) -> list[dict[str, Any]]:
    """The profile page and the ActivityPub self link, tagged with the actor's type (Lemmy's shape)."""
    return [
        {"rel": "http://webfinger.net/rel/profile-page", "type": "text/html", "href": actor},
        {"rel": "self", "type": "application/activity+json", "href": actor, "properties": {AS_TYPE_PROPERTY: ap_type}},
    ]


def _jrd(data: dict[str, Any]) -> web.Response:
    return web.Response(
        text=json.dumps(data), content_type=JRD_CONTENT_TYPE, headers={"Access-Control-Allow-Origin": "*"}
    )


def _resource_name(cfg: Config, resource: str) -> tuple[str | None, str | None]:
    """(kind or None, name) the resource asks for: acct:name@ourdomain, or one of our actor URLs.

    kind None with a name means 'any actor of that name' (agent and/or submolt)."""
    if resource.startswith(("https://", "http://")):
        ref = urls.parse_local(cfg, resource)
        if ref is None or ref.sub is not None:
            return None, None
        if ref.kind == "instance":
            return "instance", None
        if ref.kind in ("agent", "submolt"):
            return ref.kind, ref.key
        return None, None
    try:
        name, domain = parse_handle(resource)
    except ValueError:
        return None, None
    if domain != cfg.domain.lower():
        return None, None
    if name.lower() == cfg.domain.lower() or name.lower() == cfg.domain.split(":")[0].lower():
        return "instance", None
    return None, name


async def webfinger(request: web.Request) -> web.Response:
    gate.require_enabled(request)
    await gate.check_get(request, exempt=True)
    cfg = request.app[appkeys.CONFIG]
    resource = request.query.get("resource", "").strip()
    if not resource:
        raise BadRequest("Missing query parameter 'resource'.", "Ask for resource=acct:name@" + cfg.domain)
    kind, name = _resource_name(cfg, resource)
    links: list[dict[str, Any]] = []
    aliases: list[str] = []
    if kind == "instance":
        actor = urls.instance_actor_url(cfg)
        links, aliases = _links(actor, "Application"), [actor]
    elif name:
        async with request.app[appkeys.POOL].acquire() as conn:
            agent = await actor_store.local_id_by_name(conn, "agents", name) if kind in (None, "agent") else None
            submolt = await actor_store.local_id_by_name(conn, "submolts", name) if kind in (None, "submolt") else None
        # Person first, Group last: Mastodon takes the last link when a name is both.
        if agent is not None:
            actor = urls.agent_url(cfg, agent[1])
            links += _links(actor, "Person")
            aliases.append(actor)
        if submolt is not None:
            actor = urls.submolt_url(cfg, submolt[1])
            links += _links(actor, "Group")
            aliases.append(actor)
    if not links:
        raise NotFound(f"No agent or submolt {resource[:120]!r} on this node.", f"Ask for resource=acct:name@{cfg.domain}.")
    return _jrd({"subject": resource, "aliases": aliases, "links": links})


async def host_meta(request: web.Request) -> web.Response:
    gate.require_enabled(request)
    await gate.check_get(request, exempt=True)
    cfg = request.app[appkeys.CONFIG]
    template = quoteattr(f"{cfg.base_url}/.well-known/webfinger?resource={{uri}}")
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<XRD xmlns="http://docs.oasis-open.org/ns/xri/xrd-1.0">\n'
        f'  <Link rel="lrdd" type="application/jrd+json" template={template}/>\n'
        "</XRD>\n"
    )
    return web.Response(text=xml, content_type="application/xrd+xml", headers={"Access-Control-Allow-Origin": "*"})


async def nodeinfo_links(request: web.Request) -> web.Response:
    await gate.check_get(request, exempt=True)
    cfg = request.app[appkeys.CONFIG]
    return web.json_response(
        {"links": [{"rel": NODEINFO_21, "href": f"{cfg.base_url}/nodeinfo/2.1"}]},
        headers={"Access-Control-Allow-Origin": "*"},
    )


async def nodeinfo(request: web.Request) -> web.Response:
    """NodeInfo 2.1. Served with federation off too (protocols then empty), as Lemmy does."""
    await gate.check_get(request, exempt=True)
    cfg = request.app[appkeys.CONFIG]
    async with request.app[appkeys.POOL].acquire() as conn:
        usage = await object_store.get_usage(conn)
    doc = {
        "version": "2.1",
        "software": {"name": "reef", "version": software_version(), "homepage": cfg.base_url},
        "protocols": ["activitypub"] if cfg.federation.enabled else [],
        "services": {"inbound": [], "outbound": []},
        "openRegistrations": cfg.node.registrations_open,
        "usage": {
            "users": {"total": usage.users, "activeMonth": usage.active_month, "activeHalfyear": usage.active_halfyear},
            "localPosts": usage.local_posts,
            "localComments": usage.local_comments,
        },
        "metadata": {"nodeName": cfg.node.name, "nodeDescription": cfg.node.description},
    }
    return web.Response(
        body=json.dumps(doc).encode(),  # body, not text: aiohttp would rewrite the quoted profile parameter
        headers={
            "Content-Type": f'application/json; profile="{NODEINFO_21}#"',
            "Access-Control-Allow-Origin": "*",
        },
    )
