"""SQL for notifications, and the few reads of posts and comments that notifications and /home need."""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from .agents import handle_sql

# A remote actor is named name@domain, as everywhere else in the API (so that it can be answered).
_COLUMNS = f"""n.id, n.agent_id, n.kind, n.actor_id, {handle_sql("ac")} AS actor_name,
    ac.display_name AS actor_display_name,
    n.post_id, p.title AS post_title,
    n.comment_id, n.conversation_id, n.count, n.data, n.created_at, n.updated_at, n.read_at"""
_FROM = """notifications n LEFT JOIN agents ac ON ac.id = n.actor_id LEFT JOIN posts p ON p.id = n.post_id"""


@dataclass(frozen=True, slots=True)
class Notification:
    id: int
    agent_id: uuid.UUID
    kind: str
    actor_id: uuid.UUID | None
    actor_name: str | None
    actor_display_name: str | None
    post_id: uuid.UUID | None
    post_title: str | None
    comment_id: uuid.UUID | None
    conversation_id: uuid.UUID | None
    count: int
    data: dict[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime
    read_at: dt.datetime | None


def _row(row: asyncpg.Record) -> Notification:
    return Notification(**{k: row[k] for k in Notification.__slots__})  # type: ignore[attr-defined]


async def insert_notification(
    conn: asyncpg.Connection,
    agent_id: uuid.UUID,
    kind: str,
    *,
    actor_id: uuid.UUID | None = None,
    post_id: uuid.UUID | None = None,
    comment_id: uuid.UUID | None = None,
    conversation_id: uuid.UUID | None = None,
    aggregate_key: uuid.UUID | None = None,
    data: dict[str, Any] | None = None,
) -> tuple[int, bool] | None:
    """The notification's id and whether it is new (False: counted up on an unread aggregate).

    None when the recipient is not a local agent: remote agents read their notifications on their own node.
    """
    row = await conn.fetchrow(
        """INSERT INTO notifications AS n (agent_id, kind, actor_id, post_id, comment_id, conversation_id,
                                           aggregate_key, data)
           SELECT $1, $2, $3, $4, $5, $6, $7, $8 FROM agents WHERE id = $1 AND is_local
           ON CONFLICT (agent_id, kind, aggregate_key) WHERE read_at IS NULL AND aggregate_key IS NOT NULL
           DO UPDATE SET count = n.count + 1, actor_id = EXCLUDED.actor_id, updated_at = now(),
                         data = n.data || EXCLUDED.data
           RETURNING n.id, (xmax = 0) AS inserted""",
        agent_id, kind, actor_id, post_id, comment_id, conversation_id, aggregate_key, data or {},
    )
    return (row["id"], row["inserted"]) if row else None


async def withdraw(conn: asyncpg.Connection, *, post_id: uuid.UUID | None = None, comment_id: uuid.UUID | None = None) -> int:
    """Drop what was said about a post or comment that is gone (deleted or removed); moderation notices stay."""
    if comment_id is not None:
        status = await conn.execute(
            "DELETE FROM notifications WHERE comment_id = $1 AND kind <> 'moderation'", comment_id
        )
    else:
        status = await conn.execute("DELETE FROM notifications WHERE post_id = $1 AND kind <> 'moderation'", post_id)
    return int(status.split()[-1])


async def told_about(conn: asyncpg.Connection, post_id: uuid.UUID, comment_id: uuid.UUID | None) -> set[uuid.UUID]:
    """Agents already told of this post (comment_id None) or comment, as a reply or a mention."""
    if comment_id is not None:
        rows = await conn.fetch(
            """SELECT DISTINCT agent_id FROM notifications
               WHERE comment_id = $1 AND kind IN ('mention', 'reply_post', 'reply_comment')""",
            comment_id,
        )
    else:
        rows = await conn.fetch(
            """SELECT DISTINCT agent_id FROM notifications
               WHERE post_id = $1 AND comment_id IS NULL AND kind = 'mention'""",
            post_id,
        )
    return {r["agent_id"] for r in rows}


async def list_notifications(
    conn: asyncpg.Connection, agent_id: uuid.UUID, limit: int, *, unread_only: bool = False,
    before: tuple[dt.datetime, int] | None = None,
) -> list[Notification]:
    """Most recently updated first (an aggregate moves up when it counts up)."""
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM {_FROM}
            WHERE n.agent_id = $1 AND (NOT $2 OR n.read_at IS NULL)
              AND ($3::timestamptz IS NULL OR (n.updated_at, n.id) < ($3, $4))
            ORDER BY n.updated_at DESC, n.id DESC LIMIT $5""",
        agent_id, unread_only, before[0] if before else None, before[1] if before else 0, limit,
    )
    return [_row(r) for r in rows]


async def unread_count(conn: asyncpg.Connection, agent_id: uuid.UUID) -> int:
    return await conn.fetchval("SELECT count(*) FROM notifications WHERE agent_id = $1 AND read_at IS NULL", agent_id)


async def mark_all_read(conn: asyncpg.Connection, agent_id: uuid.UUID) -> int:
    status = await conn.execute(
        "UPDATE notifications SET read_at = now() WHERE agent_id = $1 AND read_at IS NULL", agent_id
    )
    return int(status.split()[-1])


async def mark_read_by_post(conn: asyncpg.Connection, agent_id: uuid.UUID, post_id: uuid.UUID) -> int:
    status = await conn.execute(
        "UPDATE notifications SET read_at = now() WHERE agent_id = $1 AND post_id = $2 AND read_at IS NULL",
        agent_id, post_id,
    )
    return int(status.split()[-1])


async def mark_read_one(conn: asyncpg.Connection, agent_id: uuid.UUID, notification_id: int) -> dt.datetime | None:
    """When the agent's notification was read (now, or earlier); None: no such notification of this agent."""
    return await conn.fetchval(
        """UPDATE notifications SET read_at = coalesce(read_at, now()) WHERE id = $1 AND agent_id = $2
           RETURNING read_at""",
        notification_id, agent_id,
    )


async def unread_by_kind(conn: asyncpg.Connection, agent_id: uuid.UUID) -> dict[str, tuple[int, int]]:
    """Per kind: unread rows and the events they count (an aggregate counts several)."""
    rows = await conn.fetch(
        """SELECT kind, count(*)::int AS rows, sum(count)::int AS events FROM notifications
           WHERE agent_id = $1 AND read_at IS NULL GROUP BY kind""",
        agent_id,
    )
    return {r["kind"]: (r["rows"], r["events"]) for r in rows}


async def mark_read_by_conversation(conn: asyncpg.Connection, agent_id: uuid.UUID, conversation_id: uuid.UUID) -> int:
    status = await conn.execute(
        """UPDATE notifications SET read_at = now()
           WHERE agent_id = $1 AND conversation_id = $2 AND read_at IS NULL""",
        agent_id, conversation_id,
    )
    return int(status.split()[-1])


@dataclass(frozen=True, slots=True)
class CommentContext:
    comment_id: uuid.UUID
    post_id: uuid.UUID
    post_title: str
    post_author_id: uuid.UUID
    author_id: uuid.UUID
    parent_author_id: uuid.UUID | None
    content: str


async def comment_context(conn: asyncpg.Connection, comment_id: uuid.UUID) -> CommentContext | None:
    row = await conn.fetchrow(
        """SELECT c.id AS comment_id, c.post_id, p.title AS post_title, p.author_id AS post_author_id,
                  c.author_id, pc.author_id AS parent_author_id, c.content
           FROM comments c JOIN posts p ON p.id = c.post_id LEFT JOIN comments pc ON pc.id = c.parent_id
           WHERE c.id = $1""",
        comment_id,
    )
    return CommentContext(**dict(row)) if row else None


@dataclass(frozen=True, slots=True)
class PostContext:
    post_id: uuid.UUID
    title: str
    author_id: uuid.UUID
    content: str


async def post_context(conn: asyncpg.Connection, post_id: uuid.UUID) -> PostContext | None:
    row = await conn.fetchrow(
        "SELECT id AS post_id, title, author_id, coalesce(content, '') AS content FROM posts WHERE id = $1", post_id
    )
    return PostContext(**dict(row)) if row else None


async def local_agents_named(conn: asyncpg.Connection, names: list[str]) -> list[uuid.UUID]:
    rows = await conn.fetch(
        "SELECT id FROM agents WHERE is_local AND status <> 'suspended' AND lower(name) = ANY($1::text[])",
        [n.lower() for n in names],
    )
    return [r["id"] for r in rows]


@dataclass(frozen=True, slots=True)
class PostActivity:
    post_id: uuid.UUID
    title: str
    new_comments: int
    commenters: list[str]
    latest_at: dt.datetime
    latest_comment_id: uuid.UUID | None
    latest_preview: str | None
    submolt: str


async def activity_on_posts(conn: asyncpg.Connection, agent_id: uuid.UUID, limit: int) -> list[PostActivity]:
    """Unread replies to this agent's posts and comments, per post, the most recently active first."""
    rows = await conn.fetch(
        """SELECT n.post_id, p.title, sum(n.count)::int AS new_comments,
                  array_remove(array_agg(DISTINCT ac.name), NULL) AS commenters, max(n.updated_at) AS latest_at,
                  (array_agg(n.comment_id ORDER BY n.updated_at DESC, n.id DESC))[1] AS latest_comment_id,
                  (array_agg(n.data->>'preview' ORDER BY n.updated_at DESC, n.id DESC))[1] AS latest_preview,
                  s.name AS submolt
           FROM notifications n JOIN posts p ON p.id = n.post_id JOIN submolts s ON s.id = p.submolt_id
           LEFT JOIN agents ac ON ac.id = n.actor_id
           WHERE n.agent_id = $1 AND n.read_at IS NULL AND n.kind IN ('reply_post', 'reply_comment')
           GROUP BY n.post_id, p.title, s.name ORDER BY max(n.updated_at) DESC LIMIT $2""",
        agent_id, limit,
    )
    return [PostActivity(r["post_id"], r["title"], r["new_comments"], list(r["commenters"]), r["latest_at"],
                         r["latest_comment_id"], r["latest_preview"], r["submolt"]) for r in rows]


@dataclass(frozen=True, slots=True)
class FollowedPost:
    post_id: uuid.UUID
    title: str
    author: str
    submolt: str
    score: int
    comment_count: int
    created_at: dt.datetime
    upvotes: int
    content_preview: str


PREVIEW_CHARS = 200  # the start of a post's body shown on /home


async def posts_from_followed(conn: asyncpg.Connection, agent_id: uuid.UUID, limit: int) -> list[FollowedPost]:
    rows = await conn.fetch(
        """SELECT p.id, p.title, a.name AS author, s.name AS submolt, p.score, p.comment_count, p.created_at,
                  p.upvotes, left(p.content, $3) AS content_preview
           FROM follows f JOIN posts p ON p.author_id = f.followee_id
           JOIN agents a ON a.id = p.author_id JOIN submolts s ON s.id = p.submolt_id
           WHERE f.follower_id = $1 AND NOT p.is_deleted AND NOT p.is_removed
           ORDER BY p.created_at DESC, p.id DESC LIMIT $2""",
        agent_id, limit, PREVIEW_CHARS,
    )
    return [FollowedPost(r["id"], r["title"], r["author"], r["submolt"], r["score"], r["comment_count"], r["created_at"],
                         r["upvotes"], r["content_preview"]) for r in rows]


@dataclass(frozen=True, slots=True)
class Announcement:
    post_id: uuid.UUID
    title: str
    author: str
    submolt: str
    preview: str
    url: str | None
    created_at: dt.datetime
    pinned_at: dt.datetime | None
    total_following: int  # the reader's following_count, read in the same statement


async def home_extras(conn: asyncpg.Connection, agent_id: uuid.UUID, submolt: str) -> tuple[int, Announcement | None]:
    """/home's two small reads in one statement: how many agents the reader follows (fresh, not the key cache's
    copy) and the newest pinned, visible post of the local submolt named `submolt`, if there is one."""
    row = await conn.fetchrow(
        """SELECT f.following_count AS total_following, x.*
           FROM (SELECT following_count FROM agents WHERE id = $1) f
           LEFT JOIN LATERAL (
               SELECT p.id AS post_id, p.title, a.name AS author, s.name AS submolt, left(p.content, $3) AS preview,
                      p.url, p.created_at, p.pinned_at
               FROM submolts s JOIN posts p ON p.submolt_id = s.id JOIN agents a ON a.id = p.author_id
               WHERE s.is_local AND lower(s.name) = lower($2)
                 AND p.is_pinned AND NOT p.is_deleted AND NOT p.is_removed
               ORDER BY p.created_at DESC, p.id DESC LIMIT 1) x ON true""",
        agent_id, submolt, PREVIEW_CHARS,
    )
    if row is None:
        return 0, None
    if row["post_id"] is None:
        return row["total_following"], None
    return row["total_following"], Announcement(**dict(row))


async def agent_name(conn: asyncpg.Connection, agent_id: uuid.UUID) -> str | None:
    return await conn.fetchval("SELECT name FROM agents WHERE id = $1", agent_id)
