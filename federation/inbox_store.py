"""SQL for the inbox queue: received activities, leased in batches, processed once, retried with backoff."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import asyncpg


@dataclass(frozen=True, slots=True)
class InboxItem:
    id: int
    ap_id: str
    actor_url: str
    type: str
    body: dict[str, Any]
    attempts: int
    received_at: dt.datetime


_INBOX_COLUMNS = "id, ap_id, actor_url, type, body, attempts, received_at"


async def insert_inbox_activity(
    conn: asyncpg.Connection, ap_id: str, actor_url: str, type_: str, body: dict[str, Any], *, processed: bool = False
) -> bool:
    """Store a received activity; False when its id was seen before (nothing changes then)."""
    status = await conn.execute(
        """INSERT INTO inbox_activities (ap_id, actor_url, type, body, processed_at)
           VALUES ($1, $2, $3, $4, CASE WHEN $5 THEN now() END) ON CONFLICT (ap_id) DO NOTHING""",
        ap_id, actor_url, type_, body, processed,
    )
    return status.endswith(" 1")


async def wake_processors(conn: asyncpg.Connection) -> None:
    """Tell the inbox processors (every process listens on reef_inbox) that work is waiting."""
    await conn.execute("SELECT pg_notify('reef_inbox', '')")


async def claim_inbox_batch(conn: asyncpg.Connection, limit: int, lease_seconds: float) -> list[InboxItem]:
    """Due, unprocessed activities, oldest first, leased: another worker skips them until the lease ends
    (a worker that dies mid-way leaves them to be taken again when it runs out)."""
    rows = await conn.fetch(
        f"""UPDATE inbox_activities SET attempts = attempts + 1,
                   next_attempt_at = now() + make_interval(secs => $2)
            WHERE id IN (SELECT id FROM inbox_activities
                         WHERE processed_at IS NULL AND next_attempt_at <= now()
                         ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
            RETURNING {_INBOX_COLUMNS}""",
        limit, lease_seconds,
    )
    return sorted((InboxItem(**dict(r)) for r in rows), key=lambda i: i.id)


async def lock_unprocessed_inbox_item(conn: asyncpg.Connection, item_id: int) -> bool:
    """Lock the row for the processing transaction; False when it was processed meanwhile."""
    found = await conn.fetchval(
        "SELECT true FROM inbox_activities WHERE id = $1 AND processed_at IS NULL FOR UPDATE", item_id
    )
    return bool(found)


async def mark_inbox_processed(conn: asyncpg.Connection, item_id: int, error: str | None = None) -> None:
    await conn.execute(
        "UPDATE inbox_activities SET processed_at = now(), error = $2 WHERE id = $1 AND processed_at IS NULL", item_id, error
    )


async def schedule_inbox_retry(conn: asyncpg.Connection, item_id: int, delay_seconds: float, error: str) -> None:
    await conn.execute(
        """UPDATE inbox_activities SET next_attempt_at = now() + make_interval(secs => $2), error = $3
           WHERE id = $1 AND processed_at IS NULL""",
        item_id, delay_seconds, error,
    )


async def release_inbox_leases(conn: asyncpg.Connection, item_ids: list[int]) -> None:
    """Items a stopping processor did not get to are due again at once."""
    await conn.execute(
        "UPDATE inbox_activities SET next_attempt_at = now() WHERE id = ANY($1::bigint[]) AND processed_at IS NULL",
        item_ids,
    )


async def seconds_until_inbox_due(conn: asyncpg.Connection) -> float | None:
    value = await conn.fetchval(
        """SELECT extract(epoch FROM min(next_attempt_at) - now()) FROM inbox_activities
           WHERE processed_at IS NULL"""
    )
    return None if value is None else max(0.0, float(value))


async def inbox_backlog(conn: asyncpg.Connection) -> tuple[int, float]:
    """Unprocessed activities: (how many, age in seconds of the oldest), for /metrics."""
    row = await conn.fetchrow(
        """SELECT count(*) AS n, extract(epoch FROM now() - min(received_at))::float8 AS age
           FROM inbox_activities WHERE processed_at IS NULL"""
    )
    return row["n"], max(0.0, row["age"] or 0.0)
