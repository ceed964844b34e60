"""SQL for the admin's view of federation: each peer host's state and its delivery queue (migration 0020)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class PeerHost:
    host: str
    status: str                      # up | down
    consecutive_fails: int
    last_success_at: dt.datetime | None
    last_failure_at: dt.datetime | None
    next_probe_at: dt.datetime | None
    software: str | None
    queued: int                      # deliveries neither delivered nor given up
    failed: int                      # deliveries given up on
    oldest_queued_at: dt.datetime | None


async def list_peer_hosts(conn: asyncpg.Connection, limit: int = 500) -> list[PeerHost]:
    """Every host we know (from peer_hosts or from queued deliveries), down hosts and long queues first.

    One query: the queue lengths come from the partial index on undelivered rows (deliveries_host_idx)."""
    rows = await conn.fetch(
        """WITH q AS (
               SELECT host,
                      count(*) FILTER (WHERE delivered_at IS NULL AND failed_at IS NULL) AS queued,
                      count(*) FILTER (WHERE failed_at IS NOT NULL) AS failed,
                      min(created_at) FILTER (WHERE delivered_at IS NULL AND failed_at IS NULL) AS oldest_queued_at
               FROM deliveries WHERE delivered_at IS NULL
               GROUP BY host)
           SELECT coalesce(h.host, q.host) AS host, coalesce(h.status, 'up') AS status,
                  coalesce(h.consecutive_fails, 0) AS consecutive_fails, h.last_success_at, h.last_failure_at,
                  h.next_probe_at, h.software, coalesce(q.queued, 0) AS queued, coalesce(q.failed, 0) AS failed,
                  q.oldest_queued_at
           FROM peer_hosts h FULL JOIN q ON q.host = h.host
           ORDER BY (coalesce(h.status, 'up') = 'down') DESC, coalesce(q.queued, 0) DESC, 1
           LIMIT $1""",
        limit,
    )
    return [PeerHost(**dict(r)) for r in rows]
