"""SQL for federation's durable queues: received activities, outbox events, published activities,
deliveries and the state of peer hosts."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any, Iterable

import asyncpg

from .urls import host_of


class LoopWorker:
    """A worker whose `_run` loop lives in one task: start() it, wake() it before its poll interval is up,
    stop() it (the loop sees `_stopping`, finishes its round and returns)."""

    task_name = "reef-worker"

    def __init__(self) -> None:
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.task_name)

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        raise NotImplementedError

# --- the inbox queue ----------------------------------------------------------------------------


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


# --- outbox events ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    id: int
    kind: str
    actor_id: uuid.UUID | None
    object_id: uuid.UUID | None
    data: dict[str, Any]
    created_at: dt.datetime


async def take_outbox_events(conn: asyncpg.Connection, limit: int) -> list[OutboxEvent]:
    """Pending events in order, locked for this transaction (other workers skip them)."""
    rows = await conn.fetch(
        """SELECT id, kind, actor_id, object_id, data, created_at FROM outbox_events
           WHERE processed_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED""",
        limit,
    )
    return [OutboxEvent(**dict(r)) for r in rows]


async def mark_event_processed(conn: asyncpg.Connection, event_id: int, error: str | None = None) -> None:
    if error is None:
        await conn.execute("UPDATE outbox_events SET processed_at = now() WHERE id = $1", event_id)
    else:
        await conn.execute(
            """UPDATE outbox_events SET processed_at = now(), data = data || jsonb_build_object('error', $2::text)
               WHERE id = $1""",
            event_id, error,
        )


# --- published activities and their deliveries ----------------------------------------------------


async def insert_activity(
    conn: asyncpg.Connection, ap_id: str, actor_url: str, type_: str, body: dict[str, Any], public: bool
) -> int:
    return await conn.fetchval(
        """INSERT INTO activities (ap_id, actor_url, type, body, public) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (ap_id) DO UPDATE SET ap_id = EXCLUDED.ap_id RETURNING id""",
        ap_id, actor_url, type_, body, public,
    )


async def insert_deliveries(conn: asyncpg.Connection, activity_id: int, inboxes: Iterable[str]) -> int:
    """One row per inbox (the caller collapsed shared inboxes); returns how many were added."""
    targets = sorted(set(inboxes))
    if not targets:
        return 0
    status = await conn.execute(
        """INSERT INTO deliveries (activity_id, inbox_url, host)
           SELECT $1, t.inbox, t.host FROM unnest($2::text[], $3::text[]) AS t(inbox, host)
           ON CONFLICT (activity_id, inbox_url) DO NOTHING""",
        activity_id, targets, [host_of(t) for t in targets],
    )
    await conn.execute("SELECT pg_notify('reef_delivery', '')")
    return int(status.rsplit(" ", 1)[1])


async def latest_activity(
    conn: asyncpg.Connection, actor_url: str, types: tuple[str, ...], object_url: str
) -> dict[str, Any] | None:
    """The last activity of these types this actor published about an object (what an Undo undoes)."""
    return await conn.fetchval(
        """SELECT body FROM activities WHERE actor_url = $1 AND type = ANY($2::text[])
             AND (body->>'object' = $3 OR body->'object'->>'id' = $3)
           ORDER BY id DESC LIMIT 1""",
        actor_url, list(types), object_url,
    )


@dataclass(frozen=True, slots=True)
class SentCopy:
    """One stored activity that carried a removal: the Delete itself, or a Group's Announce of it."""

    type: str
    public: bool
    inboxes: list[str]


async def sent_removal(
    conn: asyncpg.Connection, remover_url: str, group_url: str, object_url: str
) -> tuple[dict[str, Any], list[SentCopy]] | None:
    """The last Delete of an object a local moderator published (stored as itself, or only inside its Group's
    Announce), with every stored copy of it and the inboxes each was delivered to; None if it never went out."""
    delete = await conn.fetchval(
        """SELECT body FROM (
             (SELECT id, body FROM activities WHERE actor_url = $1 AND type = 'Delete' AND body->>'object' = $3)
             UNION ALL
             (SELECT id, body->'object' FROM activities WHERE actor_url = $2 AND type = 'Announce'
                AND body->'object'->>'type' = 'Delete' AND body->'object'->>'actor' = $1
                AND body->'object'->>'object' = $3)
           ) AS sent ORDER BY id DESC LIMIT 1""",
        remover_url, group_url, object_url,
    )
    if delete is None:
        return None
    rows = await conn.fetch(
        """SELECT a.type, a.public, array_remove(array_agg(d.inbox_url), NULL) AS inboxes
           FROM activities a LEFT JOIN deliveries d ON d.activity_id = a.id
           WHERE (a.actor_url = $1 AND a.ap_id = $3)
              OR (a.actor_url = $2 AND a.type = 'Announce' AND a.body->'object'->>'id' = $3)
           GROUP BY a.id, a.type, a.public ORDER BY a.id""",
        remover_url, group_url, delete["id"],
    )
    return delete, [SentCopy(r["type"], r["public"], list(r["inboxes"])) for r in rows]


@dataclass(frozen=True, slots=True)
class PublishedActivity:
    id: int
    ap_id: str
    type: str
    body: dict[str, Any]
    created_at: dt.datetime


async def list_public_activities(
    conn: asyncpg.Connection, actor_url: str, limit: int, before_id: int | None = None
) -> list[PublishedActivity]:
    rows = await conn.fetch(
        """SELECT id, ap_id, type, body, created_at FROM activities
           WHERE actor_url = $1 AND public AND ($3::bigint IS NULL OR id < $3)
           ORDER BY id DESC LIMIT $2""",
        actor_url, limit, before_id,
    )
    return [PublishedActivity(**dict(r)) for r in rows]


async def count_public_activities(conn: asyncpg.Connection, actor_url: str) -> int:
    return await conn.fetchval("SELECT count(*) FROM activities WHERE actor_url = $1 AND public", actor_url)


async def get_activity_by_ap_id(conn: asyncpg.Connection, ap_id: str) -> PublishedActivity | None:
    row = await conn.fetchrow(
        "SELECT id, ap_id, type, body, created_at FROM activities WHERE ap_id = $1 AND public", ap_id
    )
    return PublishedActivity(**dict(row)) if row else None


# --- delivery -------------------------------------------------------------------------------------


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


# --- retention ------------------------------------------------------------------------------------


async def prune(conn: asyncpg.Connection, *, events_days: int = 7, inbox_days: int = 30, deliveries_days: int = 14) -> int:
    """Forget finished work: processed events, old received activities (ids older than any redelivery a
    peer would still attempt), and delivered or abandoned deliveries. Published activities stay (outboxes)."""
    total = 0
    for sql, days in (
        ("DELETE FROM outbox_events WHERE processed_at < now() - make_interval(days => $1)", events_days),
        ("DELETE FROM inbox_activities WHERE processed_at < now() - make_interval(days => $1)", inbox_days),
        ("""DELETE FROM deliveries WHERE coalesce(delivered_at, failed_at) < now() - make_interval(days => $1)""",
         deliveries_days),
    ):
        status = await conn.execute(sql, days)
        total += int(status.rsplit(" ", 1)[1])
    return total


def dumps(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
