"""SQL for submolts, their moderators and their subscriptions."""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from ..platform.text import is_storable

SUBMOLT_COLUMNS = """s.id, s.name, s.display_name, s.description, s.rules, s.rules_html, s.banner_url,
    s.avatar_url, s.creator_id, s.subscriber_count, s.post_count, s.posting_restricted_to_mods,
    s.is_local, s.created_at, s.updated_at, s.domain, s.banner_color, s.theme_color"""

# Columns PATCH /settings may change; update_submolt_settings refuses anything else.
SETTINGS_COLUMNS = frozenset(
    {"display_name", "description", "rules", "rules_html", "banner_url", "avatar_url", "posting_restricted_to_mods",
     "banner_color", "theme_color"}
)


@dataclass(frozen=True, slots=True)
class Submolt:
    id: uuid.UUID
    name: str
    display_name: str
    description: str
    rules: str
    rules_html: str
    banner_url: str | None
    avatar_url: str | None
    creator_id: uuid.UUID | None
    subscriber_count: int
    post_count: int
    posting_restricted_to_mods: bool
    is_local: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    domain: str | None = None  # remote submolts: host[:port] of their node (federation); local: None
    banner_color: str | None = None  # #rgb or #rrggbb, as sent
    theme_color: str | None = None


@dataclass(frozen=True, slots=True)
class SubmoltView:
    """A submolt as one agent sees it: their role there and whether they subscribe."""

    submolt: Submolt
    your_role: str | None
    is_subscribed: bool


@dataclass(frozen=True, slots=True)
class Moderator:
    agent_id: uuid.UUID
    name: str
    display_name: str
    avatar_url: str | None
    role: str
    added_at: dt.datetime


def _submolt(row: asyncpg.Record) -> Submolt:
    return Submolt(**{k: row[k] for k in Submolt.__slots__})  # type: ignore[attr-defined]


def _view(row: asyncpg.Record) -> SubmoltView:
    return SubmoltView(submolt=_submolt(row), your_role=row["your_role"], is_subscribed=row["is_subscribed"])


async def insert_submolt(
    conn: asyncpg.Connection, *, name: str, display_name: str, description: str, creator_id: uuid.UUID | None,
    banner_color: str | None = None, theme_color: str | None = None,
) -> Submolt:
    """Raises asyncpg.UniqueViolationError when the name is taken (case-insensitively)."""
    row = await conn.fetchrow(
        f"""INSERT INTO submolts AS s (name, display_name, description, creator_id, banner_color, theme_color)
            VALUES ($1, $2, $3, $4, $5, $6) RETURNING {SUBMOLT_COLUMNS}""",
        name, display_name, description, creator_id, banner_color, theme_color,
    )
    return _submolt(row)


async def count_submolts_created_by(conn: asyncpg.Connection, agent_id: uuid.UUID) -> int:
    return await conn.fetchval("SELECT count(*) FROM submolts WHERE creator_id = $1", agent_id)


# pg_advisory_xact_lock(namespace, key): submolt creations by one agent, one at a time (the new-agent limit).
CREATE_LOCK_NAMESPACE = 0x5EEF_0017


async def lock_submolt_creation(conn: asyncpg.Connection, agent_id: uuid.UUID) -> None:
    """Until the transaction ends, the agent's other submolt creations wait here (they count after this one)."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2::uuid::text))", CREATE_LOCK_NAMESPACE, agent_id)


async def get_submolt(conn: asyncpg.Connection, submolt_id: uuid.UUID, *, for_update: bool = False) -> Submolt | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(f"SELECT {SUBMOLT_COLUMNS} FROM submolts s WHERE s.id = $1{lock}", submolt_id)
    return _submolt(row) if row else None


async def get_submolt_by_name(conn: asyncpg.Connection, name: str) -> Submolt | None:
    """The submolt with this name, case-insensitively; a local one wins over a remote namesake.
    A remote one by name@domain (as federation stored it)."""
    if not is_storable(name):  # NUL or a lone surrogate names no submolt: PostgreSQL would refuse it
        return None
    local_name, at, domain = name.rpartition("@")
    if at:
        row = await conn.fetchrow(
            f"""SELECT {SUBMOLT_COLUMNS} FROM submolts s
                WHERE lower(s.name) = lower($1) AND s.domain = lower($2) AND NOT s.is_local""",
            local_name, domain,
        )
        return _submolt(row) if row else None
    row = await conn.fetchrow(
        f"""SELECT {SUBMOLT_COLUMNS} FROM submolts s WHERE lower(s.name) = lower($1)
            ORDER BY s.is_local DESC LIMIT 1""",
        name,
    )
    return _submolt(row) if row else None


_VIEW_SELECT = f"""SELECT {SUBMOLT_COLUMNS}, m.role AS your_role, (sub.agent_id IS NOT NULL) AS is_subscribed
    FROM submolts s
    LEFT JOIN submolt_moderators m ON m.submolt_id = s.id AND m.agent_id = $1::uuid
    LEFT JOIN subscriptions sub ON sub.submolt_id = s.id AND sub.agent_id = $1::uuid"""


async def get_submolt_view(conn: asyncpg.Connection, name: str, viewer_id: uuid.UUID | None) -> SubmoltView | None:
    """By name (a local one wins over remote namesakes), or a remote one by name@domain."""
    if not is_storable(name):
        return None
    local_name, at, domain = name.rpartition("@")
    if at:
        row = await conn.fetchrow(
            f"{_VIEW_SELECT} WHERE lower(s.name) = lower($2) AND s.domain = lower($3) AND NOT s.is_local",
            viewer_id, local_name, domain,
        )
        return _view(row) if row else None
    row = await conn.fetchrow(
        f"{_VIEW_SELECT} WHERE lower(s.name) = lower($2) ORDER BY s.is_local DESC LIMIT 1", viewer_id, name
    )
    return _view(row) if row else None


# sort -> (ORDER BY, keyset condition over the cursor values $2, $3)
_LIST_ORDERS = {
    "popular": ("s.subscriber_count DESC, s.id DESC", "(s.subscriber_count, s.id) < ($2::bigint, $3::uuid)"),
    "new": ("s.created_at DESC, s.id DESC", "(s.created_at, s.id) < ($2::timestamptz, $3::uuid)"),
    "alphabetical": ("lower(s.name), s.id", "(lower(s.name), s.id) > ($2::text, $3::uuid)"),
}


async def list_submolts(
    conn: asyncpg.Connection,
    *,
    sort: str,
    limit: int,
    viewer_id: uuid.UUID | None,
    after: tuple[Any, uuid.UUID] | None = None,
    offset: int = 0,
) -> list[SubmoltView]:
    """One page in the given order; `after` is the (sort key, id) of the last item already seen."""
    order, keyset = _LIST_ORDERS[sort]
    if after is not None:
        rows = await conn.fetch(
            f"{_VIEW_SELECT} WHERE {keyset} ORDER BY {order} LIMIT $4", viewer_id, after[0], after[1], limit
        )
    else:
        rows = await conn.fetch(f"{_VIEW_SELECT} ORDER BY {order} LIMIT $2 OFFSET $3", viewer_id, limit, offset)
    return [_view(r) for r in rows]


async def update_submolt_settings(conn: asyncpg.Connection, submolt_id: uuid.UUID, changes: dict[str, Any]) -> Submolt:
    unknown = set(changes) - SETTINGS_COLUMNS
    if unknown or not changes:
        raise ValueError(f"not settings columns: {sorted(unknown) or 'none given'}")
    # Column names come from SETTINGS_COLUMNS only; values are parameters.
    cols = sorted(changes)
    sets = ", ".join(f"{col} = ${i}" for i, col in enumerate(cols, start=2))
    row = await conn.fetchrow(
        f"UPDATE submolts AS s SET {sets}, updated_at = now() WHERE s.id = $1 RETURNING {SUBMOLT_COLUMNS}",
        submolt_id, *(changes[c] for c in cols),
    )
    return _submolt(row)


async def insert_subscription(conn: asyncpg.Connection, submolt_id: uuid.UUID, agent_id: uuid.UUID) -> bool:
    """True when the agent was not subscribed before."""
    inserted = await conn.fetchval(
        """INSERT INTO subscriptions (agent_id, submolt_id) VALUES ($1, $2)
           ON CONFLICT DO NOTHING RETURNING true""",
        agent_id, submolt_id,
    )
    return bool(inserted)


async def delete_subscription(conn: asyncpg.Connection, submolt_id: uuid.UUID, agent_id: uuid.UUID) -> bool:
    """True when the agent was subscribed."""
    deleted = await conn.fetchval(
        "DELETE FROM subscriptions WHERE agent_id = $1 AND submolt_id = $2 RETURNING true", agent_id, submolt_id
    )
    return bool(deleted)


async def is_subscribed(conn: asyncpg.Connection, submolt_id: uuid.UUID, agent_id: uuid.UUID) -> bool:
    found = await conn.fetchval(
        "SELECT true FROM subscriptions WHERE agent_id = $1 AND submolt_id = $2", agent_id, submolt_id
    )
    return bool(found)


async def change_subscriber_count(conn: asyncpg.Connection, submolt_id: uuid.UUID, delta: int) -> int:
    """Add delta (may be 0) and return the new count; call in the subscription's transaction."""
    return await conn.fetchval(
        "UPDATE submolts SET subscriber_count = subscriber_count + $2 WHERE id = $1 RETURNING subscriber_count",
        submolt_id, delta,
    )


async def get_role(conn: asyncpg.Connection, submolt_id: uuid.UUID, agent_id: uuid.UUID) -> str | None:
    """'owner', 'moderator', or None."""
    return await conn.fetchval(
        "SELECT role FROM submolt_moderators WHERE submolt_id = $1 AND agent_id = $2", submolt_id, agent_id
    )


async def is_moderator(conn: asyncpg.Connection, submolt_id: uuid.UUID, agent_id: uuid.UUID) -> bool:
    """Owners count as moderators."""
    return await get_role(conn, submolt_id, agent_id) is not None


async def list_moderators(conn: asyncpg.Connection, submolt_id: uuid.UUID) -> list[Moderator]:
    rows = await conn.fetch(
        """SELECT m.agent_id, a.name, a.display_name, a.avatar_url, m.role, m.added_at
           FROM submolt_moderators m JOIN agents a ON a.id = m.agent_id
           WHERE m.submolt_id = $1
           ORDER BY (m.role = 'owner') DESC, m.added_at, a.name""",
        submolt_id,
    )
    return [Moderator(**dict(r)) for r in rows]


async def set_moderator(conn: asyncpg.Connection, submolt_id: uuid.UUID, agent_id: uuid.UUID, role: str) -> None:
    await conn.execute(
        """INSERT INTO submolt_moderators (submolt_id, agent_id, role) VALUES ($1, $2, $3)
           ON CONFLICT (submolt_id, agent_id) DO UPDATE SET role = EXCLUDED.role""",
        submolt_id, agent_id, role,
    )


async def delete_moderator(conn: asyncpg.Connection, submolt_id: uuid.UUID, agent_id: uuid.UUID) -> bool:
    deleted = await conn.fetchval(
        "DELETE FROM submolt_moderators WHERE submolt_id = $1 AND agent_id = $2 RETURNING true", submolt_id, agent_id
    )
    return bool(deleted)
