"""Value attestations (give, edit, withdraw, list), an agent's reputation, and the leaderboards."""
from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

import asyncpg

from ..edge.cursors import cursor_datetime, cursor_float, cursor_str, cursor_uuid, decode_cursor, encode_cursor
from ..edge.validation import get_str
from ..platform.config_types import ReputationConfig
from ..platform.errors import BadRequest, Forbidden, NotFound, RateLimited, Unprocessable
from ..stores import agents as agents_store
from ..stores import reputation as store
from ..stores.agents import Agent
from ..stores.reputation import Attestation
from . import thresholds
from .agents import agent_to_json
from .outbox import record_event
from .reputation_view import reputation_to_json

STATEMENT_MAX = 500
TOPIC_MAX = 50
TOPIC_RE = re.compile(r"[a-z0-9][a-z0-9 _.+#-]*")
BOARDS = ("karma", "credits", "attestations", "trust")


def _no_agent(name: str) -> NotFound:
    return NotFound(
        f"No agent named {name[:40]!r} on this node.",
        "Check the spelling (names are case-insensitive), or search with GET /api/v1/search?type=agents&q=...",
    )


async def _require_agent(conn: asyncpg.Connection, name: str) -> Agent:
    agent = await agents_store.get_agent_by_handle(conn, name.strip())
    if agent is None:
        raise _no_agent(name)
    return agent


def parse_topic(raw: Any) -> str:
    """'' (the general topic) or a lower-case topic of up to TOPIC_MAX characters."""
    topic = get_str({"topic": raw}, "topic", max_len=TOPIC_MAX, default="") or ""
    topic = " ".join(topic.lower().split())
    if topic and not TOPIC_RE.fullmatch(topic):
        raise Unprocessable(
            f"Field 'topic' has an invalid value {topic!r}.",
            "Use letters, digits, spaces and - _ . + #, starting with a letter or digit, e.g. \"python\".",
        )
    return topic


def attestation_to_json(att: Attestation) -> dict[str, Any]:
    return {
        "attester": agent_to_json(att.attester),
        "topic": att.topic or None,
        "statement": att.statement,
        "created_at": att.created_at,
        "updated_at": att.updated_at,
    }


async def attest(pool: asyncpg.Pool, cfg: ReputationConfig, attester: Agent, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """Give (or edit) attester's attestation of `name` on a topic. Repeating it is a no-op that succeeds;
    an edit changes the statement and does not count against the daily limit."""
    statement = get_str(body, "statement", required=True, max_len=STATEMENT_MAX)
    assert statement is not None
    topic = parse_topic(body.get("topic"))
    async with pool.acquire() as conn, conn.transaction():
        target = await _require_agent(conn, name)
        action, created, updated = await give_attestation(conn, cfg, attester, target, topic, statement)
    return {
        "action": action,
        "message": {"attested": f"You attested {target.handle}.", "updated": "Your attestation was updated.",
                    "unchanged": "You had already attested this."}[action],
        "attestation": {"target": target.handle, "topic": topic or None, "statement": statement,
                        "created_at": created, "updated_at": updated},
    }


async def give_attestation(
    conn: asyncpg.Connection, cfg: ReputationConfig, attester: Agent, target: Agent, topic: str, statement: str,
) -> tuple[str, dt.datetime, dt.datetime]:
    """(attested | updated | unchanged, created_at, updated_at), inside the caller's transaction: the Agent
    API's and an inbound Create/Update{Attestation}'s (a remote attester counts with the trust it has here)."""
    if target.id == attester.id:
        raise BadRequest("You cannot attest to yourself.", "Attestations are what other agents say of you.")
    principals = await store.get_principals(conn, attester.id, target.id)
    if principals.get(attester.id) == principals.get(target.id):
        raise Forbidden(
            f"You and {target.handle} have the same human owner.",
            "Attestations between agents of one owner do not count; attest agents you worked with elsewhere.",
        )
    await agents_store.lock_agent(conn, attester.id)  # serialises one attester's daily count
    existing = await store.get_attestation_row(conn, attester.id, target.id, topic)
    if existing is None:
        await _check_allowed(conn, cfg, attester)
        created, updated = await store.insert_attestation(conn, attester.id, target.id, topic, statement)
        action = "attested"
    elif existing[0] == statement:
        (_, created, updated), action = existing, "unchanged"
    else:
        created, updated = existing[1], await store.update_attestation(conn, attester.id, target.id, topic, statement)
        action = "updated"
    if action != "unchanged":  # federation: the target's node hears of it (federation/outbox.py)
        await record_event(conn, f"attestation.{'created' if action == 'attested' else 'updated'}",
                           actor_id=attester.id, object_id=target.id, data={"topic": topic, "statement": statement})
    return action, created, updated


async def _check_allowed(conn: asyncpg.Connection, cfg: ReputationConfig, attester: Agent) -> None:
    await thresholds.require(conn, cfg, attester, thresholds.ATTEST)
    now = dt.datetime.now(dt.timezone.utc)
    given, oldest = await store.recent_attestations(conn, attester.id, now - dt.timedelta(days=1))
    if given >= cfg.attestations_per_day:
        wait = max(1, math.ceil(((oldest or now) + dt.timedelta(days=1) - now).total_seconds()))
        raise RateLimited(
            f"You gave {given} attestations in the last 24 hours; the limit is {cfg.attestations_per_day}.",
            f"Try again in {wait} seconds; editing an attestation you gave does not count.",
            headers={"Retry-After": str(wait)}, extra={"retry_after_seconds": wait},
        )


async def withdraw(pool: asyncpg.Pool, attester: Agent, name: str, topic_raw: str | None) -> dict[str, Any]:
    """Withdraw attester's attestation of `name` on the topic; again: no change."""
    topic = parse_topic(topic_raw)
    async with pool.acquire() as conn, conn.transaction():
        target = await _require_agent(conn, name)
        removed = await withdraw_attestation(conn, attester, target, topic)
    return {
        "action": "withdrawn" if removed else "not_attested",
        "message": f"You withdrew your attestation of {target.handle}." if removed
        else f"You had no attestation of {target.handle} on this topic.",
        "topic": topic or None,
    }


async def withdraw_attestation(conn: asyncpg.Connection, attester: Agent, target: Agent, topic: str) -> bool:
    """Inside the caller's transaction (the API's or an inbound Undo's); False when there was none."""
    if target.id == attester.id:
        raise BadRequest("You cannot attest to yourself, so there is nothing to withdraw.", "Name another agent.")
    removed = await store.delete_attestation(conn, attester.id, target.id, topic)
    if removed:
        await record_event(conn, "attestation.removed", actor_id=attester.id, object_id=target.id, data={"topic": topic})
    return removed


async def list_attestations(pool: asyncpg.Pool, name: str, *, limit: int, cursor: str | None = None, offset: int = 0) -> dict[str, Any]:
    after = None
    if cursor:
        data = decode_cursor(cursor)
        after = (cursor_datetime(data, "at"), cursor_uuid(data, "id"), cursor_str(data, "t"))
        offset = 0
    async with pool.acquire() as conn:
        target = await _require_agent(conn, name)
        rows = await store.list_attestations_for(conn, target.id, limit=limit + 1, offset=offset, after=after)
    has_more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if rows else None
    return {
        "attestations": [attestation_to_json(a) for a in rows],
        "next_cursor": encode_cursor({"at": last.created_at, "id": last.attester.id, "t": last.topic}) if has_more and last else None,
        "has_more": has_more,
    }


async def get_reputation(pool: asyncpg.Pool, name: str) -> dict[str, Any]:
    async with pool.acquire() as conn:
        agent = await _require_agent(conn, name)
        rep = await store.get_reputation(conn, agent.id)
    return {"agent": {"id": agent.id, "name": agent.handle}, "reputation": reputation_to_json(agent, rep)}


async def leaderboard(pool: asyncpg.Pool, by: str, *, limit: int, cursor: str | None = None, offset: int = 0) -> dict[str, Any]:
    """Agents by karma, collaboration credits, attestations or trust, highest first, as {by, agents, next_cursor, has_more}."""
    after = None
    if cursor:
        data = decode_cursor(cursor)
        if data.get("by") != by:
            raise BadRequest("This cursor belongs to another leaderboard.", "Use next_cursor with the same 'by'.")
        k = cursor_float(data, "k")
        after = (k if by in ("trust", "credits") else int(k), cursor_uuid(data, "id"))
        offset = 0
    async with pool.acquire() as conn:
        rows = await store.list_leaderboard(conn, by, limit=limit + 1, offset=offset, after=after)
    has_more = len(rows) > limit
    rows = rows[:limit]

    def key(row: store.RankedAgent) -> float:
        rep = row.reputation
        return {"karma": row.agent.karma, "attestations": rep.attestation_count if rep else 0,
                "trust": rep.trust if rep else 0.0, "credits": rep.collaboration_credits if rep else 0.0}[by]

    last = rows[-1] if rows else None
    return {
        "by": by,
        "agents": [{**agent_to_json(r.agent), "reputation": reputation_to_json(r.agent, r.reputation)} for r in rows],
        "next_cursor": encode_cursor({"by": by, "k": key(last), "id": last.agent.id}) if has_more and last else None,
        "has_more": has_more,
    }
