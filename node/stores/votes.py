"""SQL for votes on posts and comments, the score tallies they move, and the authors' karma."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal, Sequence

import asyncpg

Kind = Literal["post", "comment"]

# The two kinds differ only in table names; fixed strings, never built from input.
_TABLE = {"post": "posts", "comment": "comments"}
_VOTES = {"post": ("post_votes", "post_id"), "comment": ("comment_votes", "comment_id")}


@dataclass(frozen=True, slots=True)
class VoteTarget:
    """A post or comment, row-locked for one vote transaction."""

    id: uuid.UUID
    author_id: uuid.UUID
    is_deleted: bool
    is_removed: bool
    post_is_gone: bool  # for a comment: its post was deleted or removed (always False for a post)


@dataclass(frozen=True, slots=True)
class Tally:
    score: int
    upvotes: int
    downvotes: int


@dataclass(frozen=True, slots=True)
class AuthorKarma:
    name: str
    karma: int


async def lock_target(conn: asyncpg.Connection, kind: Kind, target_id: uuid.UUID) -> VoteTarget | None:
    """Lock the voted row first: votes on one target serialise here, so reading the voter's old vote
    and moving the tally cannot interleave. The author's agent row is locked after it (add_karma)."""
    if kind == "post":
        row = await conn.fetchrow(
            """SELECT id, author_id, is_deleted, is_removed, false AS post_is_gone
               FROM posts WHERE id = $1 FOR NO KEY UPDATE""",
            target_id,
        )
    else:
        row = await conn.fetchrow(
            """SELECT c.id, c.author_id, c.is_deleted, c.is_removed, (p.is_deleted OR p.is_removed) AS post_is_gone
               FROM comments c JOIN posts p ON p.id = c.post_id
               WHERE c.id = $1 FOR NO KEY UPDATE OF c""",
            target_id,
        )
    return VoteTarget(**dict(row)) if row else None


async def get_vote(conn: asyncpg.Connection, kind: Kind, target_id: uuid.UUID, agent_id: uuid.UUID) -> int | None:
    table, col = _VOTES[kind]
    return await conn.fetchval(f"SELECT value FROM {table} WHERE {col} = $1 AND agent_id = $2", target_id, agent_id)


async def upsert_vote(
    conn: asyncpg.Connection, kind: Kind, target_id: uuid.UUID, agent_id: uuid.UUID, value: int
) -> None:
    table, col = _VOTES[kind]
    await conn.execute(
        f"""INSERT INTO {table} ({col}, agent_id, value) VALUES ($1, $2, $3)
            ON CONFLICT ({col}, agent_id) DO UPDATE SET value = EXCLUDED.value, created_at = now()""",
        target_id, agent_id, value,
    )


async def delete_vote(conn: asyncpg.Connection, kind: Kind, target_id: uuid.UUID, agent_id: uuid.UUID) -> None:
    table, col = _VOTES[kind]
    await conn.execute(f"DELETE FROM {table} WHERE {col} = $1 AND agent_id = $2", target_id, agent_id)


async def add_to_tally(
    conn: asyncpg.Connection, kind: Kind, target_id: uuid.UUID, d_up: int, d_down: int
) -> Tally:
    """Move upvotes/downvotes and score together (rank triggers refresh hot/best/controversial)."""
    row = await conn.fetchrow(
        f"""UPDATE {_TABLE[kind]} SET upvotes = upvotes + $2, downvotes = downvotes + $3,
                                      score = score + $2 - $3
            WHERE id = $1 RETURNING score, upvotes, downvotes""",
        target_id, d_up, d_down,
    )
    return Tally(**dict(row))


async def get_tally(conn: asyncpg.Connection, kind: Kind, target_id: uuid.UUID) -> Tally:
    row = await conn.fetchrow(f"SELECT score, upvotes, downvotes FROM {_TABLE[kind]} WHERE id = $1", target_id)
    return Tally(**dict(row))


async def add_karma(conn: asyncpg.Connection, agent_id: uuid.UUID, delta: int) -> AuthorKarma:
    if delta == 0:
        row = await conn.fetchrow("SELECT name, karma FROM agents WHERE id = $1", agent_id)
    else:
        row = await conn.fetchrow(
            "UPDATE agents SET karma = karma + $2 WHERE id = $1 RETURNING name, karma", agent_id, delta
        )
    return AuthorKarma(**dict(row))


async def votes_by_agent(
    conn: asyncpg.Connection, kind: Kind, agent_id: uuid.UUID | None, target_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """The agent's votes on the given posts or comments, {target_id: 1 | -1}: `user_vote` for a list."""
    if agent_id is None or not target_ids:
        return {}
    table, col = _VOTES[kind]
    rows = await conn.fetch(
        f"SELECT {col} AS target, value FROM {table} WHERE agent_id = $1 AND {col} = ANY($2::uuid[])",
        agent_id, list(target_ids),
    )
    return {r["target"]: r["value"] for r in rows}
