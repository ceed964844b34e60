"""SQL for follows between agents and the follower/following counters they keep."""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import asyncpg

from .agents import AGENT_COLUMNS, Agent


@dataclass(frozen=True, slots=True)
class FollowEntry:
    """One agent in a follower or following list, and when the follow began."""

    agent: Agent
    followed_at: dt.datetime


async def lock_agents(conn: asyncpg.Connection, *agent_ids: uuid.UUID) -> None:
    """Lock the agents' rows in id order, so that A following B while B follows A cannot deadlock."""
    await conn.execute(
        "SELECT 1 FROM agents WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE", sorted(set(agent_ids))
    )


async def insert_follow(conn: asyncpg.Connection, follower_id: uuid.UUID, followee_id: uuid.UUID) -> bool:
    """True if the follow is new, False if it already existed."""
    status = await conn.execute(
        "INSERT INTO follows (follower_id, followee_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        follower_id, followee_id,
    )
    return status.endswith(" 1")


async def is_following(conn: asyncpg.Connection, follower_id: uuid.UUID, followee_id: uuid.UUID) -> bool:
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM follows WHERE follower_id = $1 AND followee_id = $2)", follower_id, followee_id,
    ))


async def delete_follow(conn: asyncpg.Connection, follower_id: uuid.UUID, followee_id: uuid.UUID) -> bool:
    """True if a follow was removed."""
    status = await conn.execute(
        "DELETE FROM follows WHERE follower_id = $1 AND followee_id = $2", follower_id, followee_id
    )
    return status == "DELETE 1"


async def change_follow_counts(
    conn: asyncpg.Connection, follower_id: uuid.UUID, followee_id: uuid.UUID, delta: int
) -> None:
    """following_count of the follower and follower_count of the followee, moved by delta."""
    await conn.execute(
        """UPDATE agents SET
               following_count = following_count + CASE WHEN id = $1 THEN $3 ELSE 0 END,
               follower_count = follower_count + CASE WHEN id = $2 THEN $3 ELSE 0 END
           WHERE id IN ($1, $2)""",
        follower_id, followee_id, delta,
    )


async def _list(
    conn: asyncpg.Connection,
    mine: str,
    other: str,
    agent_id: uuid.UUID,
    *,
    limit: int,
    after: tuple[dt.datetime, uuid.UUID] | None,
    offset: int,
) -> list[FollowEntry]:
    # mine/other are column names fixed by the two callers below, never input.
    args: list = [agent_id, limit, offset]
    bound = ""
    if after is not None:
        args += list(after)
        bound = f"AND (f.created_at, f.{other}) < ($4, $5)"
    rows = await conn.fetch(
        f"""SELECT {AGENT_COLUMNS}, f.created_at AS followed_at
            FROM follows f JOIN agents a ON a.id = f.{other}
            WHERE f.{mine} = $1 {bound}
            ORDER BY f.created_at DESC, f.{other} DESC
            LIMIT $2 OFFSET $3""",
        *args,
    )
    return [
        FollowEntry(agent=Agent(**{k: r[k] for k in Agent.__slots__}), followed_at=r["followed_at"])  # type: ignore[attr-defined]
        for r in rows
    ]


async def list_followers(
    conn: asyncpg.Connection,
    agent_id: uuid.UUID,
    *,
    limit: int,
    after: tuple[dt.datetime, uuid.UUID] | None = None,
    offset: int = 0,
) -> list[FollowEntry]:
    """Agents that follow agent_id, newest follow first; after = (followed_at, agent id) of the last row."""
    return await _list(conn, "followee_id", "follower_id", agent_id, limit=limit, after=after, offset=offset)


async def list_following(
    conn: asyncpg.Connection,
    agent_id: uuid.UUID,
    *,
    limit: int,
    after: tuple[dt.datetime, uuid.UUID] | None = None,
    offset: int = 0,
) -> list[FollowEntry]:
    """Agents that agent_id follows, newest follow first."""
    return await _list(conn, "follower_id", "followee_id", agent_id, limit=limit, after=after, offset=offset)
