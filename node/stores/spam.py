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


async def lock_and_insert_fingerprint(
    conn: asyncpg.Connection, kind: str, item_id: uuid.UUID, author_id: uuid.UUID,
    exact_hash: bytes, signature: bytes, bands: Sequence[int],
) -> int:
    """Take transaction-scoped advisory locks on the bands (in one order), then store the fingerprint and its
    bands; its id. Two near-duplicates written at once are so checked one after the other: the second's
    next statement (find_candidates, a new snapshot) starts after the first committed."""
    return await conn.fetchval(
        """WITH l AS (SELECT count(pg_advisory_xact_lock(h)) AS n
                      FROM (SELECT DISTINCT unnest($6::bigint[]) AS h ORDER BY 1) s),
                f AS (INSERT INTO spam_fingerprints (kind, item_id, author_id, exact_hash, signature)
                      SELECT $1, $2, $3, $4, $5 FROM l RETURNING id, created_at),
                b AS (INSERT INTO spam_bands (band_hash, created_at, fingerprint_id)
                      SELECT DISTINCT h, f.created_at, f.id FROM f, unnest($6::bigint[]) AS h)
           SELECT id FROM f""",
        kind, item_id, author_id, exact_hash, signature, list(bands),
    )


async def find_candidates(
    conn: asyncpg.Connection, exact_hash: bytes, bands: Sequence[int], since: dt.datetime, limit: int, own_id: int,
) -> list[Candidate]:
    """Fingerprints in the window sharing a band or the exact hash, other than `own_id` (the text's own)."""
    rows = await conn.fetch(
        """SELECT f.kind, f.item_id, f.author_id, f.signature, f.exact_hash = $1 AS exact
           FROM spam_fingerprints f
           WHERE f.id IN (
               SELECT b.fingerprint_id FROM spam_bands b
               WHERE b.band_hash = ANY($2::bigint[]) AND b.created_at > $3 AND b.fingerprint_id <> $5
               UNION
               SELECT e.id FROM spam_fingerprints e WHERE e.exact_hash = $1 AND e.created_at > $3 AND e.id <> $5
               LIMIT $4)""",
        exact_hash, list(bands), since, limit, own_id,
    )
    return [Candidate(r["kind"], r["item_id"], r["author_id"], r["signature"], r["exact"]) for r in rows]


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
