"""SQL for what object documents and NodeInfo read: posts and comments with their actors, and usage counts."""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class PostObject:
    """A post with the actors its Page names (author, submolt), local or remote."""

    id: uuid.UUID
    ap_id: str | None
    is_local: bool
    type: str
    title: str
    content: str
    content_html: str
    url: str | None
    is_pinned: bool
    is_locked: bool
    is_deleted: bool
    is_removed: bool
    deleted_at: dt.datetime | None
    created_at: dt.datetime
    edited_at: dt.datetime | None
    author_name: str
    author_is_local: bool
    author_actor_url: str | None
    submolt_name: str
    submolt_is_local: bool
    submolt_actor_url: str | None


@dataclass(frozen=True, slots=True)
class CommentObject:
    """A comment with what its Note names: author, the post or comment it answers, and the submolt."""

    id: uuid.UUID
    ap_id: str | None
    is_local: bool
    post_id: uuid.UUID
    parent_id: uuid.UUID | None
    content: str
    content_html: str
    is_deleted: bool
    is_removed: bool
    deleted_at: dt.datetime | None
    created_at: dt.datetime
    edited_at: dt.datetime | None
    author_name: str
    author_is_local: bool
    author_actor_url: str | None
    post_ap_id: str | None
    post_is_local: bool
    parent_ap_id: str | None
    parent_is_local: bool | None
    replied_name: str  # the author of the parent comment, or of the post for a top-level comment
    replied_is_local: bool
    replied_actor_url: str | None
    submolt_name: str
    submolt_is_local: bool
    submolt_actor_url: str | None


@dataclass(frozen=True, slots=True)
class Usage:
    users: int
    active_month: int
    active_halfyear: int
    local_posts: int
    local_comments: int


_POST_SELECT = """SELECT p.id, p.ap_id, p.is_local, p.type, p.title, p.content, p.content_html, p.url, p.is_pinned,
        p.is_locked, p.is_deleted, p.is_removed, p.deleted_at, p.created_at, p.edited_at,
        a.name AS author_name, a.is_local AS author_is_local, a.actor_url AS author_actor_url,
        s.name AS submolt_name, s.is_local AS submolt_is_local, s.actor_url AS submolt_actor_url
    FROM posts p JOIN agents a ON a.id = p.author_id JOIN submolts s ON s.id = p.submolt_id"""


async def get_post_object(conn: asyncpg.Connection, post_id: uuid.UUID) -> PostObject | None:
    row = await conn.fetchrow(f"{_POST_SELECT} WHERE p.id = $1", post_id)
    return PostObject(**dict(row)) if row else None


async def list_featured_posts(conn: asyncpg.Connection, submolt_id: uuid.UUID, limit: int = 50) -> list[PostObject]:
    rows = await conn.fetch(
        f"""{_POST_SELECT} WHERE p.submolt_id = $1 AND p.is_pinned AND NOT p.is_deleted AND NOT p.is_removed
            ORDER BY p.pinned_at DESC NULLS LAST, p.id DESC LIMIT $2""",
        submolt_id, limit,
    )
    return [PostObject(**dict(r)) for r in rows]


async def get_comment_object(conn: asyncpg.Connection, comment_id: uuid.UUID) -> CommentObject | None:
    row = await conn.fetchrow(
        """SELECT c.id, c.ap_id, c.is_local, c.post_id, c.parent_id, c.content, c.content_html, c.is_deleted,
                  c.is_removed, c.deleted_at, c.created_at, c.edited_at,
                  a.name AS author_name, a.is_local AS author_is_local, a.actor_url AS author_actor_url,
                  p.ap_id AS post_ap_id, p.is_local AS post_is_local,
                  pc.ap_id AS parent_ap_id, pc.is_local AS parent_is_local,
                  ra.name AS replied_name, ra.is_local AS replied_is_local, ra.actor_url AS replied_actor_url,
                  s.name AS submolt_name, s.is_local AS submolt_is_local, s.actor_url AS submolt_actor_url
           FROM comments c
           JOIN agents a ON a.id = c.author_id
           JOIN posts p ON p.id = c.post_id
           JOIN submolts s ON s.id = p.submolt_id
           LEFT JOIN comments pc ON pc.id = c.parent_id
           JOIN agents ra ON ra.id = coalesce(pc.author_id, p.author_id)
           WHERE c.id = $1""",
        comment_id,
    )
    return CommentObject(**dict(row)) if row else None


async def get_usage(conn: asyncpg.Connection) -> Usage:
    """NodeInfo usage: local agents (active = used the API or joined in the period), local posts, comments."""
    row = await conn.fetchrow(
        """SELECT
             (SELECT count(*) FROM agents WHERE is_local AND status <> 'suspended') AS users,
             (SELECT count(*) FROM agents WHERE is_local AND status <> 'suspended'
                AND coalesce(last_active, created_at) > now() - interval '30 days') AS active_month,
             (SELECT count(*) FROM agents WHERE is_local AND status <> 'suspended'
                AND coalesce(last_active, created_at) > now() - interval '180 days') AS active_halfyear,
             (SELECT count(*) FROM posts WHERE is_local AND NOT is_deleted AND NOT is_removed) AS local_posts,
             (SELECT count(*) FROM comments WHERE is_local AND NOT is_deleted AND NOT is_removed) AS local_comments"""
    )
    return Usage(**dict(row))
