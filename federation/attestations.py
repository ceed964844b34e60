"""Value attestations between agents of different nodes, as ActivityPub (a Reef extension).

Shape (see FEDERATION.md in the repository): the attester's node sends the target's node
    Create{Attestation}   a new attestation;      Update{Attestation}  an edit of its statement;
    Undo{Create{Attestation}}  its withdrawal;
where the Attestation is {"type": "Attestation", "id", "attributedTo": attester, "subject": target actor,
"content": statement (plain text), "topic": topic or null}, with the terms defined in the activity's
@context under https://w3id.org/reef#. Other servers may ignore it. The receiving node applies it through the
same service function as its Agent API (self-attestation, same owner, the daily limit), and the trust job
weighs it with the trust the remote attester has in the receiving node's graph. Signatures, the actor check
and the inbox's activity-id dedup refuse forged and replayed ones as for any activity.
"""
from __future__ import annotations

import html
import re
from typing import Any

from node.platform.errors import ReefError
from node.services import reputation as reputation_service
from node.stores import agents as agents_store

from . import urls
from .inbound import Inbound, Permanent, load_agent, remote_agent
from .jsonld import first_id, get_str, has_type

_TAGS = re.compile(r"<[^>]+>")


def is_attestation(obj: Any) -> bool:
    return has_type(obj, "Attestation")


# --- inbound ------------------------------------------------------------------------------------------

def _statement(obj: dict[str, Any]) -> str:
    text = html.unescape(_TAGS.sub("", get_str(obj, "content") or "")).strip()
    if not text:
        raise Permanent("an Attestation without a statement")
    return text[: reputation_service.STATEMENT_MAX]


async def _parties(ctx: Inbound, activity: dict[str, Any], obj: dict[str, Any]) -> tuple[Any, str, str]:
    """(the remote attester, the local target's name, the topic), checked."""
    actor = first_id(activity.get("actor"))
    if first_id(obj.get("attributedTo")) != actor:
        raise Permanent("an Attestation must be attributed to the actor that sends it")
    ref = urls.parse_local(ctx.cfg, first_id(obj.get("subject")) or "")
    if ref is None or ref.kind != "agent" or ref.sub is not None or not ref.key:
        raise Permanent("an Attestation's subject must be an agent of this node")
    try:
        topic = reputation_service.parse_topic(obj.get("topic"))
    except ReefError as exc:
        raise Permanent(f"attestation refused: {exc.error}") from None
    return await remote_agent(ctx, actor), ref.key, topic


async def _target(conn: Any, name: str) -> Any:
    target = await agents_store.get_local_agent_by_name(conn, name)
    if target is None:
        raise Permanent(f"no agent {name!r} on this node")
    return target


async def handle_attestation(ctx: Inbound, activity: dict[str, Any], obj: dict[str, Any]) -> None:
    """Create or Update{Attestation}: given or edited, as the Agent API would."""
    attester, name, topic = await _parties(ctx, activity, obj)
    statement = _statement(obj)
    async with ctx.transaction() as tx:
        agent = await load_agent(tx.conn, attester)
        target = await _target(tx.conn, name)
        try:
            await reputation_service.give_attestation(tx.conn, ctx.cfg.reputation, agent, target, topic, statement)
        except ReefError as exc:
            raise Permanent(f"attestation refused: {exc.error}") from None


async def handle_withdrawal(ctx: Inbound, activity: dict[str, Any], create: dict[str, Any]) -> None:
    """Undo{Create{Attestation}}: withdrawn (nothing to do when there was none)."""
    obj = create.get("object")
    if not isinstance(obj, dict):
        raise Permanent("an Undo of an attestation must carry it")
    attester, name, topic = await _parties(ctx, activity, obj)
    async with ctx.transaction() as tx:
        agent = await load_agent(tx.conn, attester)
        target = await _target(tx.conn, name)
        try:
            await reputation_service.withdraw_attestation(tx.conn, agent, target, topic)
        except ReefError as exc:
            raise Permanent(f"withdrawal refused: {exc.error}") from None
