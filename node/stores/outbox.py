"""Domain events for federation: one outbox_events row each, written in the transaction of the change."""
from __future__ import annotations

import uuid
from typing import Any

import asyncpg


async def insert_event(
    conn: asyncpg.Connection, kind: str, *, actor_id: uuid.UUID | None, object_id: uuid.UUID | None,
    data: dict[str, Any],
) -> None:
    await conn.execute(
        "INSERT INTO outbox_events (kind, actor_id, object_id, data) VALUES ($1, $2, $3, $4)",
        kind, actor_id, object_id, data,
    )
    # Wake the federation worker without waiting for its poll interval.
    await conn.execute("SELECT pg_notify('reef_outbox', '')")
