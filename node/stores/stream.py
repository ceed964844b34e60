"""SQL for the stream's per-recipient event log, delivery acks, presence timestamps and node secrets."""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Iterable

import asyncpg


@dataclass(frozen=True, slots=True)
class Event:
    agent_id: uuid.UUID
    id: int
    type: str
    payload: dict[str, Any]
    created_at: dt.datetime
    visible: bool = True  # False: a group message of a group the agent has left since (skipped on replay)


async def insert_events(
    conn: asyncpg.Connection, agent_ids: Iterable[uuid.UUID], type_: str, payload: dict[str, Any]
) -> list[tuple[uuid.UUID, int]]:
    """One event per recipient, numbered per recipient. Call inside the transaction that made the change.

    Bumping stream_sequences locks each recipient's row until commit, so a recipient's ids commit in
    order and without gaps. Recipients are locked in a fixed (sorted) order to avoid deadlocks.
    """
    ids = sorted(set(agent_ids))
    if not ids:
        return []
    rows = await conn.fetch(
        """WITH s AS (
               INSERT INTO stream_sequences (agent_id, last_id) SELECT a, 1 FROM unnest($1::uuid[]) AS a
               ON CONFLICT (agent_id) DO UPDATE SET last_id = stream_sequences.last_id + 1
               RETURNING agent_id, last_id)
           INSERT INTO stream_events (agent_id, id, type, payload)
           SELECT agent_id, last_id, $2, $3 FROM s RETURNING agent_id, id""",
        ids, type_, payload,
    )
    return [(r["agent_id"], r["id"]) for r in rows]


async def list_events(conn: asyncpg.Connection, agent_id: uuid.UUID, after_id: int, limit: int) -> list[Event]:
    """Events after after_id in order; group messages of groups the agent is no longer in are marked invisible."""
    rows = await conn.fetch(
        """SELECT e.agent_id, e.id, e.type, e.payload, e.created_at,
                  e.type <> 'group_msg' OR EXISTS (
                      SELECT 1 FROM chat_group_members m
                      WHERE m.group_id = (e.payload->>'group_id')::uuid AND m.agent_id = e.agent_id
                        AND m.status = 'active') AS visible
           FROM stream_events e
           WHERE e.agent_id = $1 AND e.id > $2 ORDER BY e.id LIMIT $3""",
        agent_id, after_id, limit,
    )
    return [Event(r["agent_id"], r["id"], r["type"], r["payload"], r["created_at"], r["visible"]) for r in rows]


async def last_event_ids(conn: asyncpg.Connection, agent_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """The newest committed event id of each agent (agents without events are left out)."""
    rows = await conn.fetch(
        "SELECT agent_id, last_id FROM stream_sequences WHERE agent_id = ANY($1::uuid[])", agent_ids
    )
    return {r["agent_id"]: r["last_id"] for r in rows}


PRUNE_BATCH = 5000


async def prune_events(conn: asyncpg.Connection, max_age: dt.timedelta, batch: int = PRUNE_BATCH) -> int:
    """Delete events older than max_age (by the database's clock), batch rows per statement; returns how many.

    Call outside a transaction: each statement commits on its own, so locks are held briefly. SKIP LOCKED
    lets processes pruning at once take different rows instead of waiting on each other. stream_sequences
    is left alone: it holds each agent's last id, and ids must keep increasing after their events are gone.
    """
    total = 0
    while True:
        status = await conn.execute(
            """DELETE FROM stream_events WHERE (agent_id, id) IN (
                   SELECT agent_id, id FROM stream_events WHERE created_at < now() - $1::interval
                   LIMIT $2 FOR UPDATE SKIP LOCKED)""",
            max_age, batch,
        )
        removed = int(status.rpartition(" ")[2])
        total += removed
        if removed < batch:
            return total


async def record_ack(conn: asyncpg.Connection, agent_id: uuid.UUID, event_id: int) -> None:
    """The client confirmed delivery up to event_id (never moves backwards, never past the last id)."""
    await conn.execute(
        """UPDATE stream_sequences SET acked_id = least(last_id, greatest(acked_id, $2))
           WHERE agent_id = $1""",
        agent_id, event_id,
    )


async def get_acked_id(conn: asyncpg.Connection, agent_id: uuid.UUID) -> int:
    return await conn.fetchval("SELECT acked_id FROM stream_sequences WHERE agent_id = $1", agent_id) or 0


async def touch_last_active(conn: asyncpg.Connection, agent_ids: list[uuid.UUID]) -> None:
    await conn.execute("UPDATE agents SET last_active = now() WHERE id = ANY($1::uuid[])", agent_ids)


async def get_last_active(conn: asyncpg.Connection, agent_ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple[str, dt.datetime | None]]:
    """name and last_active of each agent."""
    rows = await conn.fetch("SELECT id, name, last_active FROM agents WHERE id = ANY($1::uuid[])", agent_ids)
    return {r["id"]: (r["name"], r["last_active"]) for r in rows}


async def get_or_create_secret(conn: asyncpg.Connection, name: str, candidate: bytes) -> bytes:
    """The node secret called name; the first process to ask stores its candidate, later ones read it."""
    await conn.execute(
        "INSERT INTO node_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", name, candidate
    )
    return await conn.fetchval("SELECT value FROM node_secrets WHERE name = $1", name)


async def notify(conn: asyncpg.Connection, channel: str, message: str) -> None:
    """pg_notify on the caller's connection: delivered to every listener when its transaction commits."""
    await conn.execute("SELECT pg_notify($1, $2)", channel, message)
