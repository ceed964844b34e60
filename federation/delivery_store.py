"""SQL for deliveries (one row per activity and target inbox) and the state of peer hosts."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class DueDelivery:
    id: int
    activity_id: int
    inbox_url: str
    host: str
    attempts: int  # before this one
    created_at: dt.datetime
    actor_url: str
    body_text: str
    host_down: bool


async def claim_due_deliveries(
    conn: asyncpg.Connection, limit: int, per_host: int, lease_seconds: float, probe_seconds: float
) -> list[DueDelivery]:
    """Lease due deliveries: rows are picked with FOR UPDATE SKIP LOCKED (concurrent workers never take the
    same row) and pushed lease_seconds into the future, so nobody else sends them while this worker does.
    A worker that stops gives its unfinished leases back (release_leases); one that dies loses them only
    until they run out. At most per_host rows per host; a host marked down gives one (the probe) when its
    next_probe_at has come, and the probe after it waits probe_seconds."""
    async with conn.transaction():
        rows = await conn.fetch(
            """WITH due AS (
                   SELECT d.id, coalesce(h.status = 'down', false) AS down,
                          row_number() OVER (PARTITION BY d.host ORDER BY d.next_attempt_at, d.id) AS rn
                   FROM deliveries d LEFT JOIN peer_hosts h ON h.host = d.host
                   WHERE d.delivered_at IS NULL AND d.failed_at IS NULL AND d.next_attempt_at <= now()
                     AND (h.host IS NULL OR h.status = 'up' OR h.next_probe_at IS NULL OR h.next_probe_at <= now())),
               picked AS (
                   -- ARRAY(...) is computed once (an InitPlan). Joined instead, a planner misled by stale
                   -- statistics (a burst fills the table faster than autovacuum analyzes it) reran the window
                   -- for every candidate row: 35 s per claim with 5,000 deliveries waiting.
                   SELECT d.id FROM deliveries d
                   WHERE d.id = ANY (ARRAY(SELECT id FROM due WHERE rn <= CASE WHEN down THEN 1 ELSE $2 END))
                     AND num_nulls(d.delivered_at, d.failed_at) = 2 AND d.next_attempt_at <= now()
                   ORDER BY d.next_attempt_at, d.id LIMIT $1
                   FOR UPDATE OF d SKIP LOCKED)
               UPDATE deliveries d SET next_attempt_at = now() + make_interval(secs => $3)
               FROM picked, activities a
               WHERE d.id = picked.id AND a.id = d.activity_id
               RETURNING d.id, d.activity_id, d.inbox_url, d.host, d.attempts, d.created_at,
                         a.actor_url, a.body::text AS body_text,
                         coalesce((SELECT h.status = 'down' FROM peer_hosts h WHERE h.host = d.host), false) AS host_down""",
            limit, per_host, lease_seconds,
        )
        probes = sorted({r["host"] for r in rows if r["host_down"]})
        if probes:
            await push_probe(conn, probes, probe_seconds)
    return sorted((DueDelivery(**dict(r)) for r in rows), key=lambda d: d.id)


# Rows picked by id say "still pending" as num_nulls(delivered_at, failed_at) = 2, not as the two IS NULL
# tests: those match the partial indexes' predicate, and a planner with stale statistics (a burst fills the
# table between two autovacuum runs) then scanned a partial index for one id: 6 ms per row at 20,000 pending.


async def release_leases(conn: asyncpg.Connection, delivery_ids: list[int]) -> None:
    """Unfinished deliveries of a stopping worker are due again at once (attempts unchanged)."""
    await conn.execute(
        """UPDATE deliveries SET next_attempt_at = now()
           WHERE id = ANY($1::bigint[]) AND num_nulls(delivered_at, failed_at) = 2""",
        delivery_ids,
    )


async def push_probe(conn: asyncpg.Connection, hosts: list[str], probe_seconds: float) -> None:
    """A probe of a down host was taken: the next one waits a full interval."""
    await conn.execute(
        """UPDATE peer_hosts SET next_probe_at = now() + make_interval(secs => $2)
           WHERE host = ANY($1::text[]) AND status = 'down'""",
        hosts, probe_seconds,
    )


async def mark_delivered(conn: asyncpg.Connection, delivery_id: int, status: int) -> None:
    await conn.execute(
        """UPDATE deliveries SET delivered_at = now(), attempts = attempts + 1, last_status = $2, last_error = NULL
           WHERE id = $1 AND num_nulls(delivered_at, failed_at) = 2""",
        delivery_id, status,
    )


async def schedule_delivery_retry(
    conn: asyncpg.Connection, delivery_id: int, delay_seconds: float, status: int | None, error: str
) -> None:
    await conn.execute(
        """UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = now() + make_interval(secs => $2),
                  last_status = $3, last_error = $4
           WHERE id = $1 AND num_nulls(delivered_at, failed_at) = 2""",
        delivery_id, delay_seconds, status, error,
    )


async def mark_delivery_failed(conn: asyncpg.Connection, delivery_id: int, status: int | None, error: str) -> None:
    await conn.execute(
        """UPDATE deliveries SET attempts = attempts + 1, failed_at = now(), last_status = $2, last_error = $3
           WHERE id = $1 AND num_nulls(delivered_at, failed_at) = 2""",
        delivery_id, status, error,
    )


async def fail_pending_to_inbox(conn: asyncpg.Connection, inbox_url: str, status: int, error: str) -> int:
    """Give up every pending delivery to one inbox (it answered 410 Gone)."""
    result = await conn.execute(
        """UPDATE deliveries SET failed_at = now(), last_status = $2, last_error = $3
           WHERE inbox_url = $1 AND delivered_at IS NULL AND failed_at IS NULL""",
        inbox_url, status, error,
    )
    return int(result.rsplit(" ", 1)[1])


async def mark_inbox_owner_gone(conn: asyncpg.Connection, inbox_url: str) -> None:
    """The remote actor whose own inbox this is was deleted: stop addressing it."""
    await conn.execute("UPDATE agents SET gone_at = now() WHERE inbox_url = $1 AND NOT is_local AND gone_at IS NULL", inbox_url)
    await conn.execute("UPDATE submolts SET gone_at = now() WHERE inbox_url = $1 AND NOT is_local AND gone_at IS NULL", inbox_url)


async def record_host_success(conn: asyncpg.Connection, host: str) -> bool:
    """The host answered; True when it had been marked down (its waiting deliveries may go now)."""
    was = await conn.fetchval("SELECT status FROM peer_hosts WHERE host = $1 FOR UPDATE", host)
    await conn.execute(
        """INSERT INTO peer_hosts AS h (host, status, consecutive_fails, last_success_at) VALUES ($1, 'up', 0, now())
           ON CONFLICT (host) DO UPDATE SET status = 'up', consecutive_fails = 0, last_success_at = now(),
                  next_probe_at = NULL""",
        host,
    )
    return was == "down"


async def record_host_failures(
    conn: asyncpg.Connection, host: str, count: int, down_after: int, probe_seconds: float
) -> bool:
    """count more consecutive failures; the host goes down at down_after. True when it just went down."""
    row = await conn.fetchrow(
        """INSERT INTO peer_hosts AS h (host, consecutive_fails, last_failure_at) VALUES ($1, $2, now())
           ON CONFLICT (host) DO UPDATE SET consecutive_fails = h.consecutive_fails + $2, last_failure_at = now()
           RETURNING consecutive_fails, status""",
        host, count,
    )
    if row["status"] == "up" and row["consecutive_fails"] >= down_after:
        await conn.execute(
            """UPDATE peer_hosts SET status = 'down', next_probe_at = now() + make_interval(secs => $2)
               WHERE host = $1""",
            host, probe_seconds,
        )
        return True
    return False


@dataclass(frozen=True, slots=True)
class PeerHost:
    host: str
    status: str
    consecutive_fails: int
    last_success_at: dt.datetime | None
    last_failure_at: dt.datetime | None
    next_probe_at: dt.datetime | None


async def get_peer_host(conn: asyncpg.Connection, host: str) -> PeerHost | None:
    row = await conn.fetchrow(
        """SELECT host, status, consecutive_fails, last_success_at, last_failure_at, next_probe_at
           FROM peer_hosts WHERE host = $1""",
        host,
    )
    return PeerHost(**dict(row)) if row else None


async def release_host_backlog(conn: asyncpg.Connection, host: str) -> int:
    """A host is back: its backed-off deliveries are due now (leased ones, in flight, are left alone)."""
    result = await conn.execute(
        """UPDATE deliveries SET next_attempt_at = now()
           WHERE host = $1 AND delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at > now()
             AND attempts > 0""",
        host,
    )
    return int(result.rsplit(" ", 1)[1])


async def seconds_until_delivery_due(conn: asyncpg.Connection) -> float | None:
    """When the next delivery is due (down hosts count from their next probe)."""
    value = await conn.fetchval(
        """SELECT extract(epoch FROM min(greatest(d.next_attempt_at,
                  CASE WHEN h.status = 'down' THEN coalesce(h.next_probe_at, now()) ELSE d.next_attempt_at END)) - now())
           FROM deliveries d LEFT JOIN peer_hosts h ON h.host = d.host
           WHERE d.delivered_at IS NULL AND d.failed_at IS NULL"""
    )
    return None if value is None else max(0.0, float(value))


async def pending_by_host(conn: asyncpg.Connection) -> dict[str, tuple[int, float]]:
    """Waiting deliveries per host: (how many, age in seconds of the oldest), for /metrics."""
    rows = await conn.fetch(
        """SELECT host, count(*) AS n, extract(epoch FROM now() - min(created_at))::float8 AS age
           FROM deliveries WHERE delivered_at IS NULL AND failed_at IS NULL GROUP BY host"""
    )
    return {r["host"]: (r["n"], max(0.0, r["age"] or 0.0)) for r in rows}
