"""SQL for the admin's status page: per-process minute samples (node_samples, migration 0046), the database's
size, and the admin's retry/skip of one host's waiting deliveries."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Sequence

import asyncpg


@dataclass(frozen=True, slots=True)
class NodeSample:
    minute: dt.datetime
    instance: str
    requests: int
    errors_4xx: int
    errors_5xx: int
    latency_buckets: list[int]
    open_sockets: int


async def add_samples(conn: asyncpg.Connection, samples: Sequence[NodeSample]) -> None:
    """Write minutes of one process; a minute it wrote before (a flush mid-minute, then the rest) adds up, and its
    open sockets are the latest figure."""
    await conn.executemany(
        """INSERT INTO node_samples AS s (minute, instance, requests, errors_4xx, errors_5xx, latency_buckets,
                                          open_sockets)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (minute, instance) DO UPDATE SET
               requests = s.requests + excluded.requests, errors_4xx = s.errors_4xx + excluded.errors_4xx,
               errors_5xx = s.errors_5xx + excluded.errors_5xx, open_sockets = excluded.open_sockets,
               latency_buckets = ARRAY(SELECT coalesce(a, 0) + coalesce(b, 0)
                                       FROM unnest(s.latency_buckets, excluded.latency_buckets) AS t(a, b))""",
        [(s.minute, s.instance, s.requests, s.errors_4xx, s.errors_5xx, list(s.latency_buckets), s.open_sockets)
         for s in samples],
    )


async def list_samples_since(conn: asyncpg.Connection, since: dt.datetime) -> list[NodeSample]:
    rows = await conn.fetch(
        """SELECT minute, instance, requests, errors_4xx, errors_5xx, latency_buckets, open_sockets
           FROM node_samples WHERE minute >= $1 ORDER BY minute, instance""",
        since,
    )
    return [NodeSample(**dict(r)) for r in rows]


async def delete_samples_before(conn: asyncpg.Connection, before: dt.datetime) -> int:
    result = await conn.execute("DELETE FROM node_samples WHERE minute < $1", before)
    return int(result.rsplit(" ", 1)[1])


async def database_size(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT pg_database_size(current_database())"))


async def make_host_due(conn: asyncpg.Connection, host: str) -> int:
    """Every waiting delivery to `host` is due now, and a host marked down is probed at once (its first answer
    releases the rest, as when it comes back by itself). Returns how many were waiting for a later time."""
    await conn.execute("UPDATE peer_hosts SET next_probe_at = now() WHERE host = $1 AND status = 'down'", host)
    result = await conn.execute(
        """UPDATE deliveries SET next_attempt_at = now()
           WHERE host = $1 AND delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at > now()""",
        host,
    )
    return int(result.rsplit(" ", 1)[1])


async def give_up_host(conn: asyncpg.Connection, host: str, error: str) -> int:
    """Give up every waiting delivery to `host`, as the delivery worker gives up a delivery for good (failed_at,
    last_error). A delivery in flight keeps its outcome off: the worker only records on rows still waiting."""
    result = await conn.execute(
        """UPDATE deliveries SET failed_at = now(), last_error = $2
           WHERE host = $1 AND delivered_at IS NULL AND failed_at IS NULL""",
        host, error,
    )
    return int(result.rsplit(" ", 1)[1])


async def wake_delivery(conn: asyncpg.Connection) -> None:
    """The delivery workers of every process look for work (delivered at the caller's commit)."""
    await conn.execute("SELECT pg_notify('reef_delivery', '')")


async def count_waiting(conn: asyncpg.Connection, host: str, lock: bool = False) -> int:
    """Deliveries to `host` neither delivered nor given up (lock: hold them until the caller's commit)."""
    if lock:
        rows = await conn.fetch(
            """SELECT id FROM deliveries WHERE host = $1 AND delivered_at IS NULL AND failed_at IS NULL
               FOR UPDATE""",
            host,
        )
        return len(rows)
    return int(await conn.fetchval(
        "SELECT count(*) FROM deliveries WHERE host = $1 AND delivered_at IS NULL AND failed_at IS NULL", host))
