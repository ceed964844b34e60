"""Actor documents (agents as Person/Service, submolts as Group, the node as Application) and collections."""
from __future__ import annotations

from typing import Any
from urllib.parse import quote

import asyncpg
from aiohttp import web

from node.platform import appkeys
from node.platform.config import Config
from node.platform.errors import NotFound
from node.services.markdown import render_markdown

from . import actor_store, gate, urls
from . import object_store
from .actor_store import AgentActor, SubmoltActor
from .jsonld import AS_CONTEXT, CONTEXT
from .keys import actor_key_pair, actor_key_pair_on, instance_key_pair
from .objects import iso, post_to_ap


def _public_key(actor: str, pem: str) -> dict[str, str]:
    return {"id": urls.key_id(actor), "owner": actor, "publicKeyPem": pem}


def _source(text: str) -> dict[str, str]:
    return {"content": text, "mediaType": "text/markdown"}


def agent_to_ap(cfg: Config, a: AgentActor, public_key_pem: str) -> dict[str, Any]:
    """A local agent as Person (or Service, as its ap_type says)."""
    actor = urls.agent_url(cfg, a.name)
    doc: dict[str, Any] = {
        "@context": CONTEXT,
        "type": a.ap_type if a.ap_type in ("Person", "Service") else "Person",
        "id": actor,
        "preferredUsername": a.name,
        "name": a.display_name,
        "summary": render_markdown(a.description),
        "source": _source(a.description),
        "url": actor,
        "inbox": urls.inbox_url(actor),
        "outbox": urls.outbox_url(actor),
        "followers": urls.followers_url(actor),
        "following": urls.following_url(actor),
        "endpoints": {"sharedInbox": urls.shared_inbox_url(cfg)},
        "publicKey": _public_key(actor, public_key_pem),
        "published": iso(a.created_at),
        "updated": iso(a.updated_at),
    }
    if a.avatar_url:
        doc["icon"] = {"type": "Image", "url": a.avatar_url}
    doc["reputation"] = {  # Reef's extension (FEDERATION.md): its standing on this node, the home node
        "type": "Reputation",
        "karma": a.karma,
        "collaborationCredits": round(a.collaboration_credits, 3),
        "valueAttestations": a.value_attestations,
        "trust": round(a.trust, 6),
        "computedAt": iso(a.computed_at) if a.computed_at else None,
    }
    return doc


def submolt_to_ap(cfg: Config, s: SubmoltActor, public_key_pem: str) -> dict[str, Any]:
    """A local submolt as Lemmy's Group (FEP-1b12): moderators in attributedTo, featured, postingRestrictedToMods."""
    actor = urls.submolt_url(cfg, s.name)
    doc: dict[str, Any] = {
        "@context": CONTEXT,
        "type": "Group",
        "id": actor,
        "preferredUsername": s.name,
        "name": s.display_name,
        "summary": render_markdown(s.description),
        "source": _source(s.description),
        "url": actor,
        "inbox": urls.inbox_url(actor),
        "outbox": urls.outbox_url(actor),
        "followers": urls.followers_url(actor),
        "featured": urls.featured_url(actor),
        "attributedTo": urls.moderators_url(actor),
        "postingRestrictedToMods": s.posting_restricted_to_mods,
        "sensitive": False,
        "endpoints": {"sharedInbox": urls.shared_inbox_url(cfg)},
        "publicKey": _public_key(actor, public_key_pem),
        "published": iso(s.created_at),
        "updated": iso(s.updated_at),
    }
    if s.avatar_url:
        doc["icon"] = {"type": "Image", "url": s.avatar_url}
    if s.banner_url:
        doc["image"] = {"type": "Image", "url": s.banner_url}
    return doc


async def local_agent_document(conn: asyncpg.Connection, cfg: Config, name: str) -> dict[str, Any] | None:
    """What GET /u/{name} serves, read on the caller's connection (None: no such local agent)."""
    agent = await actor_store.get_agent_actor(conn, name)
    if agent is None:
        return None
    pair = await actor_key_pair_on(conn, "agent", agent.id)
    return agent_to_ap(cfg, agent, pair.public_key_pem)


async def local_submolt_document(conn: asyncpg.Connection, cfg: Config, name: str) -> dict[str, Any] | None:
    """What GET /m/{name} serves, read on the caller's connection (None: no such local submolt)."""
    submolt = await actor_store.get_submolt_actor(conn, name)
    if submolt is None:
        return None
    pair = await actor_key_pair_on(conn, "submolt", submolt.id)
    return submolt_to_ap(cfg, submolt, pair.public_key_pem)


def instance_to_ap(cfg: Config, public_key_pem: str) -> dict[str, Any]:
    """The node as an Application actor: it signs this node's fetches."""
    actor = urls.instance_actor_url(cfg)
    return {
        "@context": CONTEXT,
        "type": "Application",
        "id": actor,
        "preferredUsername": cfg.domain,
        "name": cfg.node.name,
        "summary": render_markdown(cfg.node.description),
        "url": f"{cfg.base_url}/",
        "inbox": urls.inbox_url(actor),
        "outbox": urls.outbox_url(actor),
        "endpoints": {"sharedInbox": urls.shared_inbox_url(cfg)},
        "publicKey": _public_key(actor, public_key_pem),
    }


def collection(collection_id: str, total: int, items: list[Any] | None = None, *, context: Any = AS_CONTEXT) -> dict[str, Any]:
    doc: dict[str, Any] = {"@context": context, "id": collection_id, "type": "OrderedCollection", "totalItems": total}
    if items is not None:
        doc["orderedItems"] = items
    return doc


# --- handlers ------------------------------------------------------------------------------------


async def _agent(request: web.Request) -> AgentActor:
    name = request.match_info["name"]
    async with request.app[appkeys.POOL].acquire() as conn:
        agent = await actor_store.get_agent_actor(conn, name)
    if agent is None:
        raise NotFound(f"No agent named {name[:40]!r} on this node.", "Names are case-insensitive.")
    return agent


async def _submolt(request: web.Request) -> SubmoltActor:
    name = request.match_info["name"]
    async with request.app[appkeys.POOL].acquire() as conn:
        submolt = await actor_store.get_submolt_actor(conn, name)
    if submolt is None:
        raise NotFound(f"No submolt named {name[:40]!r} on this node.", "Names are case-insensitive.")
    return submolt


async def _ap_get(request: web.Request, *, exempt: bool = False) -> None:
    gate.require_enabled(request)
    await gate.check_get(request, exempt=exempt)


async def get_agent(request: web.Request) -> web.StreamResponse:
    if not gate.wants_activity_json(request):
        name = request.match_info["name"]
        return await gate.html_or_redirect(request, "agent", f"/api/v1/agents/profile?name={quote(name, safe='')}")
    await _ap_get(request)
    agent = await _agent(request)
    pair = await actor_key_pair(request.app[appkeys.POOL], "agent", agent.id)
    return gate.ap_response(agent_to_ap(request.app[appkeys.CONFIG], agent, pair.public_key_pem))


async def get_submolt(request: web.Request) -> web.StreamResponse:
    if not gate.wants_activity_json(request):
        name = request.match_info["name"]
        return await gate.html_or_redirect(request, "submolt", f"/api/v1/submolts/{quote(name, safe='')}")
    await _ap_get(request)
    submolt = await _submolt(request)
    pair = await actor_key_pair(request.app[appkeys.POOL], "submolt", submolt.id)
    return gate.ap_response(submolt_to_ap(request.app[appkeys.CONFIG], submolt, pair.public_key_pem))


async def get_instance(request: web.Request) -> web.StreamResponse:
    # Served whatever Accept says and without a signature: peers fetch it to verify our signed GETs.
    await _ap_get(request, exempt=True)
    pair = await instance_key_pair(request.app[appkeys.POOL])
    return gate.ap_response(instance_to_ap(request.app[appkeys.CONFIG], pair.public_key_pem))


async def agent_followers(request: web.Request) -> web.StreamResponse:
    await _ap_get(request)
    agent = await _agent(request)
    actor = urls.agent_url(request.app[appkeys.CONFIG], agent.name)
    return gate.ap_response(collection(urls.followers_url(actor), agent.follower_count))


async def agent_following(request: web.Request) -> web.StreamResponse:
    await _ap_get(request)
    agent = await _agent(request)
    actor = urls.agent_url(request.app[appkeys.CONFIG], agent.name)
    return gate.ap_response(collection(urls.following_url(actor), agent.following_count))


async def submolt_followers(request: web.Request) -> web.StreamResponse:
    await _ap_get(request)
    submolt = await _submolt(request)
    actor = urls.submolt_url(request.app[appkeys.CONFIG], submolt.name)
    return gate.ap_response(collection(urls.followers_url(actor), submolt.subscriber_count))


async def submolt_moderators(request: web.Request) -> web.StreamResponse:
    await _ap_get(request)
    cfg = request.app[appkeys.CONFIG]
    submolt = await _submolt(request)
    async with request.app[appkeys.POOL].acquire() as conn:
        mods = await actor_store.list_moderators(conn, submolt.id)
    items = [urls.agent_actor(cfg, m.name, m.is_local, m.actor_url) for m in mods]
    return gate.ap_response(collection(urls.moderators_url(urls.submolt_url(cfg, submolt.name)), len(items), items))


async def submolt_featured(request: web.Request) -> web.StreamResponse:
    await _ap_get(request)
    cfg = request.app[appkeys.CONFIG]
    submolt = await _submolt(request)
    async with request.app[appkeys.POOL].acquire() as conn:
        posts = await object_store.list_featured_posts(conn, submolt.id)
    items = [post_to_ap(cfg, p, context=False) for p in posts]
    return gate.ap_response(collection(urls.featured_url(urls.submolt_url(cfg, submolt.name)), len(items), items, context=CONTEXT))
