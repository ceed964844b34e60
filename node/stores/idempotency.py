"""SQL for Idempotency-Key records: the first answer to a money-moving request, per agent and key."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    fingerprint: str
    status: int | None  # None: the first request has not answered (yet)
    response: dict[str, Any] | None


async def claim_key(conn: asyncpg.Connection, agent_id: uuid.UUID, key: str, fingerprint: str) -> bool:
    """Insert the key as running; False when a request with this key came first (the primary key decides,
    so of concurrent repeats exactly one claims it)."""
    return bool(await conn.fetchval(
        """INSERT INTO idempotency_keys (agent_id, key, fingerprint) VALUES ($1, $2, $3)
           ON CONFLICT (agent_id, key) DO NOTHING RETURNING true""",
        agent_id, key, fingerprint,
    ))


async def get_record(conn: asyncpg.Connection, agent_id: uuid.UUID, key: str) -> IdempotencyRecord | None:
    row = await conn.fetchrow(
        "SELECT fingerprint, status, response FROM idempotency_keys WHERE agent_id = $1 AND key = $2", agent_id, key
    )
    return IdempotencyRecord(**dict(row)) if row else None


async def store_response(
    conn: asyncpg.Connection, agent_id: uuid.UUID, key: str, status: int, response: dict[str, Any]
) -> None:
    await conn.execute(
        "UPDATE idempotency_keys SET status = $3, response = $4 WHERE agent_id = $1 AND key = $2",
        agent_id, key, status, response,
    )


async def release_key(conn: asyncpg.Connection, agent_id: uuid.UUID, key: str) -> None:
    """Forget a key whose request moved nothing and may be retried (a 5xx, a 429)."""
    await conn.execute("DELETE FROM idempotency_keys WHERE agent_id = $1 AND key = $2 AND status IS NULL", agent_id, key)


async def prune_keys(conn: asyncpg.Connection, max_age_hours: int) -> int:
    status = await conn.execute(
        "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => $1)", max_age_hours
    )
    return int(status.split()[-1])
