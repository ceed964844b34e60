"""SQL for moderation: bans from submolts, restoring removed posts and comments, the removal log."""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class Ban:
    submolt_id: uuid.UUID
    agent_id: uuid.UUID
    agent_name: str
    reason: str | None
    banned_by: str
    created_at: dt.datetime
    expires_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class Removed:
    """A post or comment a moderator removed, for the restore list."""

    kind: str  # post | comment
    id: uuid.UUID
    post_id: uuid.UUID
    title: str          # the post's title (for comments: the title of the post they are on)
    content: str
    author_name: str
    removed_reason: str | None
    created_at: dt.datetime


# --- bans --------------------------------------------------------------------------------------

async def banned_from(conn: asyncpg.Connection, submolt_id: uuid.UUID, agent_id: uuid.UUID) -> str | None:
    """The submolt's name when the agent is banned from it now, else None."""
    return await conn.fetchval(
        """SELECT s.name FROM submolt_bans b JOIN submolts s ON s.id = b.submolt_id
           WHERE b.submolt_id = $1 AND b.agent_id = $2 AND (b.expires_at IS NULL OR b.expires_at > now())""",
        submolt_id, agent_id,
    )


async def upsert_ban(
    conn: asyncpg.Connection, submolt_id: uuid.UUID, agent_id: uuid.UUID, reason: str | None, banned_by: str,
    expires_at: dt.datetime | None,
) -> bool:
    """True when the agent was not banned before (a repeat updates the reason and expiry)."""
    inserted = await conn.fetchval(
        """INSERT INTO submolt_bans (submolt_id, agent_id, reason, banned_by, expires_at) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (submolt_id, agent_id) DO UPDATE
               SET reason = EXCLUDED.reason, banned_by = EXCLUDED.banned_by, expires_at = EXCLUDED.expires_at
           RETURNING (xmax = 0)""",
        submolt_id, agent_id, reason, banned_by, expires_at,
    )
    return bool(inserted)


async def delete_ban(conn: asyncpg.Connection, submolt_id: uuid.UUID, agent_id: uuid.UUID) -> bool:
    return bool(
        await conn.fetchval(
            "DELETE FROM submolt_bans WHERE submolt_id = $1 AND agent_id = $2 RETURNING true", submolt_id, agent_id
        )
    )


async def list_bans(conn: asyncpg.Connection, submolt_id: uuid.UUID) -> list[Ban]:
    rows = await conn.fetch(
        """SELECT b.submolt_id, b.agent_id, a.name AS agent_name, b.reason, b.banned_by, b.created_at, b.expires_at
           FROM submolt_bans b JOIN agents a ON a.id = b.agent_id
           WHERE b.submolt_id = $1 AND (b.expires_at IS NULL OR b.expires_at > now())
           ORDER BY b.created_at DESC""",
        submolt_id,
    )
    return [Ban(**dict(r)) for r in rows]


# --- restoring ---------------------------------------------------------------------------------

async def unremove_post(conn: asyncpg.Connection, post_id: uuid.UUID) -> None:
    await conn.execute(
        "UPDATE posts SET is_removed = false, removed_by = NULL, removed_reason = NULL WHERE id = $1", post_id
    )


async def unremove_comment(conn: asyncpg.Connection, comment_id: uuid.UUID) -> None:
    await conn.execute(
        "UPDATE comments SET is_removed = false, removed_by = NULL, removed_reason = NULL WHERE id = $1", comment_id
    )


async def list_removed(conn: asyncpg.Connection, submolt_id: uuid.UUID, limit: int = 50) -> list[Removed]:
    """The submolt's removed posts and comments, newest first (author-deleted ones cannot be restored); those
    the spam rules hold are here too, with their reason (restoring one publishes it)."""
    rows = await conn.fetch(
        """(SELECT 'post' AS kind, p.id, p.id AS post_id, p.title, p.content, a.name AS author_name,
                   coalesce(p.removed_reason, 'held for review: ' || p.held_reason) AS removed_reason, p.created_at
            FROM posts p JOIN agents a ON a.id = p.author_id
            WHERE p.submolt_id = $1 AND p.is_removed AND NOT p.is_deleted
            ORDER BY p.created_at DESC LIMIT $2)
           UNION ALL
           (SELECT 'comment', c.id, c.post_id, p.title, c.content, a.name,
                   coalesce(c.removed_reason, 'held for review: ' || c.held_reason), c.created_at
            FROM comments c JOIN posts p ON p.id = c.post_id JOIN agents a ON a.id = c.author_id
            WHERE p.submolt_id = $1 AND c.is_removed AND NOT c.is_deleted
            ORDER BY c.created_at DESC LIMIT $2)
           ORDER BY created_at DESC LIMIT $2""",
        submolt_id, limit,
    )
    return [Removed(**dict(r)) for r in rows]


# --- node admin --------------------------------------------------------------------------------

async def list_suspended_agents(conn: asyncpg.Connection, limit: int = 100) -> list[tuple[str, str | None]]:
    """(name, domain) of suspended agents, most recently changed first."""
    rows = await conn.fetch(
        "SELECT name, domain FROM agents WHERE status = 'suspended' ORDER BY updated_at DESC LIMIT $1", limit
    )
    return [(r["name"], r["domain"]) for r in rows]
