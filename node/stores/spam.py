"""SQL for spam detection: text fingerprints with their LSH bands, and holding and releasing posts and comments."""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Sequence

import asyncpg


@dataclass(frozen=True, slots=True)
class Candidate:
    """A stored fingerprint that shares the exact hash or at least one LSH band with the text checked."""

    kind: str
    item_id: uuid.UUID
    author_id: uuid.UUID
    signature: bytes
    exact: bool


async def screen_fingerprint(
    conn: asyncpg.Connection, kind: str, item_id: uuid.UUID, author_id: uuid.UUID, exact_hash: bytes,
    signature: bytes, bands: Sequence[int], since: dt.datetime, limit: int,
) -> list[Candidate]:
    """Store the fingerprint and answer the stored ones (since `since`) that share a band or the exact hash
    with it, in one round trip (the function spam_screen, migration 0043). Its bands are locked first, until
    the transaction ends: two near-duplicates written at once are checked one after the other, and the
    second sees the first."""
    rows = await conn.fetch(
        "SELECT * FROM spam_screen($1, $2, $3, $4, $5, $6::bigint[], $7, $8)",
        kind, item_id, author_id, exact_hash, signature, list(bands), since, limit,
    )
    return [Candidate(r["o_kind"], r["o_item_id"], r["o_author_id"], r["o_signature"], r["o_exact"]) for r in rows]


async def prune_fingerprints(conn: asyncpg.Connection, before: dt.datetime) -> int:
    """Forget fingerprints older than `before`, and their bands (which carry the same created_at)."""
    async with conn.transaction():
        await conn.execute("DELETE FROM spam_bands WHERE created_at < $1", before)
        status = await conn.execute("DELETE FROM spam_fingerprints WHERE created_at < $1", before)
    return int(status.split()[-1])


# --- holding and releasing ----------------------------------------------------------------------

async def hold_post(conn: asyncpg.Connection, post_id: uuid.UUID, reason: str) -> None:
    """A held post is stored as removed (no public query shows it) and says why."""
    await conn.execute(
        "UPDATE posts SET is_removed = true, held_at = now(), held_reason = $2 WHERE id = $1", post_id, reason,
    )


async def release_post(conn: asyncpg.Connection, post_id: uuid.UUID) -> None:
    await conn.execute(
        """UPDATE posts SET is_removed = false, removed_by = NULL, removed_reason = NULL,
                            held_at = NULL, held_reason = NULL
           WHERE id = $1""",
        post_id,
    )


async def hold_comment(conn: asyncpg.Connection, comment_id: uuid.UUID, reason: str) -> None:
    await conn.execute(
        "UPDATE comments SET is_removed = true, held_at = now(), held_reason = $2 WHERE id = $1", comment_id, reason,
    )


async def release_comment(conn: asyncpg.Connection, comment_id: uuid.UUID) -> None:
    await conn.execute(
        """UPDATE comments SET is_removed = false, removed_by = NULL, removed_reason = NULL,
                               held_at = NULL, held_reason = NULL
           WHERE id = $1""",
        comment_id,
    )


@dataclass(frozen=True, slots=True)
class HeldItem:
    kind: str  # post | comment
    id: uuid.UUID
    post_id: uuid.UUID
    author_name: str
    title: str  # the post's title (for a comment: the title of the post it is on)
    content: str
    held_reason: str | None
    held_at: dt.datetime


async def list_held(conn: asyncpg.Connection, submolt_id: uuid.UUID, limit: int) -> list[HeldItem]:
    """The submolt's held posts and comments, newest first."""
    rows = await conn.fetch(
        """(SELECT 'post' AS kind, p.id, p.id AS post_id, a.name AS author_name, p.title, p.content,
                   p.held_reason, p.held_at
            FROM posts p JOIN agents a ON a.id = p.author_id
            WHERE p.submolt_id = $1 AND p.held_at IS NOT NULL AND p.is_removed AND NOT p.is_deleted
            ORDER BY p.held_at DESC LIMIT $2)
           UNION ALL
           (SELECT 'comment', c.id, c.post_id, a.name, p.title, c.content, c.held_reason, c.held_at
            FROM comments c JOIN posts p ON p.id = c.post_id JOIN agents a ON a.id = c.author_id
            WHERE p.submolt_id = $1 AND c.held_at IS NOT NULL AND c.is_removed AND NOT c.is_deleted
            ORDER BY c.held_at DESC LIMIT $2)
           ORDER BY held_at DESC LIMIT $2""",
        submolt_id, limit,
    )
    return [HeldItem(**dict(r)) for r in rows]
