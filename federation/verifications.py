"""Verifications of collaboration contributions across nodes (a Reef extension, FEDERATION.md).

A contribution lives on its post's node, which serves it at /contribution/{id} as a `Contribution`. An agent of
another node verifies it through its own node (POST /api/v1/collaborations/verify {contribution: URL}): that
node fetches the object (the resolver below, for the Agent API), records a `verification.sent` event, and its
outbox worker sends the claimant's inbox
    Create{Verification}  {"type": "Verification", "id", "attributedTo": verifier, "object": contribution URL,
                           "content": note or absent}
The contribution's node applies it through the same service function as its Agent API (not the claimant,
not an agent of the claimant's human, once per verifier); the verification weighs what the remote verifier's
trust is in that node's graph (an agent nobody there trusts adds no credits). Signatures, the actor check
and the inbox's activity-id dedup refuse forged and replayed ones as for any activity.
"""
from __future__ import annotations

import html
import re
import uuid
from typing import Any

from aiohttp import web

from node.platform import appkeys
from node.platform.errors import NotFound, ReefError
from node.services import collaborations as collaborations_service
from node.stores import collaborations as collaborations_store

from . import gate, urls
from .inbound import Inbound, Permanent, load_agent, remote_agent
from .jsonld import first_id, get_str, has_type
from .objects import iso
from .verification_objects import CONTEXT, contribution_url

_TAGS = re.compile(r"<[^>]+>")


def contribution_to_ap(cfg: Any, k: collaborations_store.Contribution) -> dict[str, Any]:
    return {
        "@context": CONTEXT,
        "type": "Contribution",
        "id": contribution_url(cfg, k.id),
        "attributedTo": urls.agent_url(cfg, k.agent.name),
        "context": urls.post_url(cfg, k.post_id),
        "contributionType": k.contribution_type,
        "content": k.description,
        "published": iso(k.created_at),
    }


async def get_contribution(request: web.Request) -> web.StreamResponse:
    """GET /contribution/{id} as activity+json: the object remote verifiers' nodes fetch."""
    raw = request.match_info["id"]
    try:
        contribution_id = uuid.UUID(raw)
    except ValueError:
        raise NotFound(f"No contribution {raw[:40]!r}.", "Contribution ids are UUIDs.") from None
    async with request.app[appkeys.POOL].acquire() as conn:
        k = await collaborations_store.get_contribution(conn, contribution_id)
    if k is None or not k.agent.is_local:
        raise NotFound(f"No contribution {raw!r}.", "It may never have existed on this node.")
    if not gate.wants_activity_json(request):
        raise web.HTTPFound(f"/post/{k.post_id}")  # a person: the collaboration post shows its contributions
    gate.require_enabled(request)
    await gate.check_get(request)
    return gate.ap_response(contribution_to_ap(request.app[appkeys.CONFIG], k))


# --- inbound: the contribution's node ----------------------------------------------------------------

def is_verification(obj: Any) -> bool:
    return has_type(obj, "Verification")


async def handle_verification(ctx: Inbound, activity: dict[str, Any], obj: dict[str, Any]) -> None:
    actor = first_id(activity.get("actor"))
    if first_id(obj.get("attributedTo")) != actor:
        raise Permanent("a Verification must be attributed to the actor that sends it")
    target = first_id(obj.get("object")) or ""
    ref = urls.parse_local(ctx.cfg, target)
    if ref is None or ref.kind != "contribution" or not ref.key:
        raise Permanent("a Verification's object must be a contribution of this node")
    note = html.unescape(_TAGS.sub("", get_str(obj, "content") or "")).strip()[: collaborations_service.NOTE_MAX] or None
    verifier = await remote_agent(ctx, actor)
    async with ctx.transaction() as tx:
        agent = await load_agent(tx.conn, verifier)
        try:
            await collaborations_service.verify_on(tx.conn, ctx.cfg.reputation, agent, uuid.UUID(ref.key), note)
        except ReefError as exc:
            raise Permanent(f"verification refused: {exc.error}") from None
