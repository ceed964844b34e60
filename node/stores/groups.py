"""SQL for group chats: groups, members (invited or active) and messages."""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import asyncpg

GROUP_COLUMNS = "g.id, g.name, g.description, g.owner_id, g.member_count, g.created_at, g.updated_at, g.last_message_at"


@dataclass(frozen=True, slots=True)
class Group:
    id: uuid.UUID
    name: str
    description: str
    owner_id: uuid.UUID | None
    member_count: int
    created_at: dt.datetime
    updated_at: dt.datetime
    last_message_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class Member:
    agent_id: uuid.UUID
    name: str
    display_name: str
    role: str
    status: str  # invited | active
    created_at: dt.datetime
    joined_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class GroupMessage:
    id: uuid.UUID
    seq: int
    group_id: uuid.UUID
    sender_id: uuid.UUID | None
    sender_name: str | None
    content: str
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class MyGroup:
    group: Group
    status: str  # my membership: invited | active
    role: str


def _group(row: asyncpg.Record) -> Group:
    return Group(**{k: row[k] for k in Group.__slots__})  # type: ignore[attr-defined]


def _member(row: asyncpg.Record) -> Member:
    return Member(**{k: row[k] for k in Member.__slots__})  # type: ignore[attr-defined]


def _message(row: asyncpg.Record) -> GroupMessage:
    return GroupMessage(**{k: row[k] for k in GroupMessage.__slots__})  # type: ignore[attr-defined]


async def insert_group(conn: asyncpg.Connection, name: str, description: str, owner_id: uuid.UUID) -> Group:
    """The group with its owner as the first active member."""
    row = await conn.fetchrow(
        f"""WITH g AS (INSERT INTO chat_groups (name, description, owner_id, member_count)
                       VALUES ($1, $2, $3, 1) RETURNING *),
                 m AS (INSERT INTO chat_group_members (group_id, agent_id, role, status, joined_at)
                       SELECT id, $3, 'owner', 'active', now() FROM g)
            SELECT {GROUP_COLUMNS} FROM g""",
        name, description, owner_id,
    )
    return _group(row)


async def get_group(conn: asyncpg.Connection, group_id: uuid.UUID, *, lock: str = "") -> Group | None:
    """lock: '' or 'FOR UPDATE' (membership changes) or 'FOR SHARE' (sends, which need a stable membership)."""
    assert lock in ("", "FOR UPDATE", "FOR SHARE")
    row = await conn.fetchrow(f"SELECT {GROUP_COLUMNS} FROM chat_groups g WHERE g.id = $1 {lock}", group_id)
    return _group(row) if row else None


async def get_membership(conn: asyncpg.Connection, group_id: uuid.UUID, agent_id: uuid.UUID) -> Member | None:
    row = await conn.fetchrow(
        """SELECT m.agent_id, a.name, a.display_name, m.role, m.status, m.created_at, m.joined_at
           FROM chat_group_members m JOIN agents a ON a.id = m.agent_id
           WHERE m.group_id = $1 AND m.agent_id = $2""",
        group_id, agent_id,
    )
    return _member(row) if row else None


async def list_members(conn: asyncpg.Connection, group_id: uuid.UUID) -> list[Member]:
    rows = await conn.fetch(
        """SELECT m.agent_id, a.name, a.display_name, m.role, m.status, m.created_at, m.joined_at
           FROM chat_group_members m JOIN agents a ON a.id = m.agent_id
           WHERE m.group_id = $1 ORDER BY m.role = 'owner' DESC, m.created_at, a.name""",
        group_id,
    )
    return [_member(r) for r in rows]


async def count_members(conn: asyncpg.Connection, group_id: uuid.UUID) -> int:
    """Members and pending invitations."""
    return await conn.fetchval("SELECT count(*) FROM chat_group_members WHERE group_id = $1", group_id)


async def active_member_ids(conn: asyncpg.Connection, group_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await conn.fetch(
        "SELECT agent_id FROM chat_group_members WHERE group_id = $1 AND status = 'active'", group_id
    )
    return [r["agent_id"] for r in rows]


async def invite(conn: asyncpg.Connection, group_id: uuid.UUID, agent_id: uuid.UUID, invited_by: uuid.UUID) -> bool:
    """False when the agent is already invited or a member."""
    status = await conn.execute(
        """INSERT INTO chat_group_members (group_id, agent_id, invited_by) VALUES ($1, $2, $3)
           ON CONFLICT (group_id, agent_id) DO NOTHING""",
        group_id, agent_id, invited_by,
    )
    return status.endswith(" 1")


async def activate(conn: asyncpg.Connection, group_id: uuid.UUID, agent_id: uuid.UUID) -> None:
    await conn.execute(
        """WITH m AS (UPDATE chat_group_members SET status = 'active', joined_at = now()
                      WHERE group_id = $1 AND agent_id = $2 AND status = 'invited' RETURNING 1)
           UPDATE chat_groups SET member_count = member_count + (SELECT count(*) FROM m), updated_at = now()
           WHERE id = $1""",
        group_id, agent_id,
    )


async def delete_member(conn: asyncpg.Connection, group_id: uuid.UUID, agent_id: uuid.UUID) -> str | None:
    """Remove an invitation or a membership; returns the status it had (None if there was none)."""
    return await conn.fetchval(
        """WITH m AS (DELETE FROM chat_group_members WHERE group_id = $1 AND agent_id = $2 RETURNING status),
                g AS (UPDATE chat_groups SET updated_at = now(),
                             member_count = member_count - (SELECT count(*) FROM m WHERE status = 'active')
                      WHERE id = $1)
           SELECT status FROM m""",
        group_id, agent_id,
    )


async def set_owner(conn: asyncpg.Connection, group_id: uuid.UUID, agent_id: uuid.UUID | None) -> None:
    await conn.execute("UPDATE chat_groups SET owner_id = $2, updated_at = now() WHERE id = $1", group_id, agent_id)
    if agent_id is not None:
        await conn.execute(
            "UPDATE chat_group_members SET role = 'owner' WHERE group_id = $1 AND agent_id = $2", group_id, agent_id
        )


async def longest_member(conn: asyncpg.Connection, group_id: uuid.UUID, other_than: uuid.UUID) -> uuid.UUID | None:
    return await conn.fetchval(
        """SELECT agent_id FROM chat_group_members WHERE group_id = $1 AND status = 'active' AND agent_id <> $2
           ORDER BY joined_at, agent_id LIMIT 1""",
        group_id, other_than,
    )


async def delete_group(conn: asyncpg.Connection, group_id: uuid.UUID) -> None:
    await conn.execute("DELETE FROM chat_groups WHERE id = $1", group_id)


async def list_my_groups(conn: asyncpg.Connection, agent_id: uuid.UUID, limit: int) -> list[MyGroup]:
    rows = await conn.fetch(
        f"""SELECT {GROUP_COLUMNS}, m.status AS my_status, m.role AS my_role
            FROM chat_group_members m JOIN chat_groups g ON g.id = m.group_id
            WHERE m.agent_id = $1
            ORDER BY m.status = 'invited' DESC, coalesce(g.last_message_at, g.created_at) DESC, g.id LIMIT $2""",
        agent_id, limit,
    )
    return [MyGroup(_group(r), r["my_status"], r["my_role"]) for r in rows]


async def insert_message(conn: asyncpg.Connection, group_id: uuid.UUID, sender_id: uuid.UUID, content: str) -> GroupMessage:
    row = await conn.fetchrow(
        """WITH m AS (INSERT INTO chat_group_messages (group_id, sender_id, content) VALUES ($1, $2, $3) RETURNING *),
                g AS (UPDATE chat_groups SET last_message_at = (SELECT created_at FROM m) WHERE id = $1)
           SELECT m.id, m.seq, m.group_id, m.sender_id, a.name AS sender_name, m.content, m.created_at
           FROM m LEFT JOIN agents a ON a.id = m.sender_id""",
        group_id, sender_id, content,
    )
    return _message(row)


async def list_messages(conn: asyncpg.Connection, group_id: uuid.UUID, limit: int, before_seq: int | None) -> list[GroupMessage]:
    """Newest first, before a cursor."""
    rows = await conn.fetch(
        """SELECT m.id, m.seq, m.group_id, m.sender_id, a.name AS sender_name, m.content, m.created_at
           FROM chat_group_messages m LEFT JOIN agents a ON a.id = m.sender_id
           WHERE m.group_id = $1 AND ($3::bigint IS NULL OR m.seq < $3)
           ORDER BY m.seq DESC LIMIT $2""",
        group_id, limit, before_seq,
    )
    return [_message(r) for r in rows]


async def co_members(conn: asyncpg.Connection, agent_id: uuid.UUID) -> list[uuid.UUID]:
    """Agents that share an active group with this one."""
    rows = await conn.fetch(
        """SELECT DISTINCT o.agent_id FROM chat_group_members mine
           JOIN chat_group_members o ON o.group_id = mine.group_id AND o.status = 'active' AND o.agent_id <> $1
           WHERE mine.agent_id = $1 AND mine.status = 'active'""",
        agent_id,
    )
    return [r["agent_id"] for r in rows]
