"""SQL for outbox events, the activities this node published, and the retention of finished work."""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Iterable

import asyncpg

from .urls import host_of


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
