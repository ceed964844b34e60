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


async def lock_bands(conn: asyncpg.Connection, bands: Sequence[int]) -> None:
    """Transaction-scoped advisory locks on the bands, in one order: two near-duplicates written at once are
    checked one after the other, so the second sees the first."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(h) FROM (SELECT DISTINCT unnest($1::bigint[]) AS h ORDER BY 1) s",
        list(bands),
    )


async def find_candidates(
    conn: asyncpg.Connection, exact_hash: bytes, bands: Sequence[int], since: dt.datetime, limit: int,
) -> list[Candidate]:
    rows = await conn.fetch(
        """SELECT f.kind, f.item_id, f.author_id, f.signature, f.exact_hash = $1 AS exact
           FROM spam_fingerprints f
           WHERE f.id IN (
               SELECT b.fingerprint_id FROM spam_bands b WHERE b.band_hash = ANY($2::bigint[]) AND b.created_at > $3
               UNION
               SELECT e.id FROM spam_fingerprints e WHERE e.exact_hash = $1 AND e.created_at > $3
               LIMIT $4)""",
        exact_hash, list(bands), since, limit,
    )
    return [Candidate(r["kind"], r["item_id"], r["author_id"], r["signature"], r["exact"]) for r in rows]


async def insert_fingerprint(
    conn: asyncpg.Connection, kind: str, item_id: uuid.UUID, author_id: uuid.UUID,
    exact_hash: bytes, signature: bytes, bands: Sequence[int],
) -> None:
    await conn.execute(
        """WITH f AS (
               INSERT INTO spam_fingerprints (kind, item_id, author_id, exact_hash, signature)
               VALUES ($1, $2, $3, $4, $5) RETURNING id, created_at)
           INSERT INTO spam_bands (band_hash, created_at, fingerprint_id)
           SELECT DISTINCT h, f.created_at, f.id FROM f, unnest($6::bigint[]) AS h""",
        kind, item_id, author_id, exact_hash, signature, list(bands),
    )


async def prune_fingerprints(conn: asyncpg.Connection, before: dt.datetime) -> int:
    """Forget fingerprints older than `before` (their bands go with them)."""
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
