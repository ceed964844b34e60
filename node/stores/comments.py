"""SQL for comments: threads, their counters, and the post/agent counters a comment moves."""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Sequence

import asyncpg

from .posts import AuthorRef

COMMENT_COLUMNS = """c.id, c.post_id, c.parent_id, c.root_id, c.author_id, c.content, c.content_html, c.depth,
    c.score, c.upvotes, c.downvotes, c.reply_count, c.best_rank, c.controversy_rank, c.is_deleted,
    c.deleted_at, c.is_removed, c.removed_reason, c.removed_by, c.created_at, c.edited_at, c.held_at, c.held_reason"""


@dataclass(frozen=True, slots=True)
class Comment:
    id: uuid.UUID
    post_id: uuid.UUID
    parent_id: uuid.UUID | None
    root_id: uuid.UUID
    author_id: uuid.UUID
    content: str
    content_html: str
    depth: int
    score: int
    upvotes: int
    downvotes: int
    reply_count: int
    best_rank: float
    controversy_rank: float
    is_deleted: bool
    deleted_at: dt.datetime | None
    is_removed: bool
    removed_reason: str | None
    removed_by: uuid.UUID | None
    created_at: dt.datetime
    edited_at: dt.datetime | None
    held_at: dt.datetime | None = None  # held for review (spam rules): stored as removed until released
    held_reason: str | None = None

    @property
    def is_live(self) -> bool:
        """Neither deleted by its author nor removed by a moderator: what the counters count."""
        return not (self.is_deleted or self.is_removed)

    @property
    def is_held(self) -> bool:
        return self.held_at is not None and self.is_removed and not self.is_deleted


# A comment's author is shown exactly as a post's: one record type for both.
CommentAuthor = AuthorRef


@dataclass(frozen=True, slots=True)
class CommentView:
    """A comment as one viewer sees it: with its author and the viewer's own vote (1, -1 or None)."""

    comment: Comment
    author: CommentAuthor
    user_vote: int | None


@dataclass(frozen=True, slots=True)
class PostState:
    """What the comment rules need to know about a post."""

    id: uuid.UUID
    submolt_id: uuid.UUID
    author_id: uuid.UUID
    is_locked: bool
    is_deleted: bool
    is_removed: bool


# Each sort is a key of columns, all ascending or all descending, ending in the unique id, so that a
# row comparison against the last key of a page continues exactly where the page ended.
SORT_KEYS: dict[str, tuple[tuple[str, ...], str]] = {
    "best": (("best_rank", "created_at", "id"), "DESC"),
    "top": (("score", "created_at", "id"), "DESC"),
    "controversial": (("controversy_rank", "created_at", "id"), "DESC"),
    "new": (("created_at", "id"), "DESC"),
    "old": (("created_at", "id"), "ASC"),
}


def sort_key(comment: Comment, sort: str) -> tuple[Any, ...]:
    """The values of `sort`'s key for one comment (the cursor, and the order of replies)."""
    return tuple(getattr(comment, col) for col in SORT_KEYS[sort][0])


def _comment(row: asyncpg.Record) -> Comment:
    return Comment(**{k: row[k] for k in Comment.__slots__})  # type: ignore[attr-defined]


def _view(row: asyncpg.Record) -> CommentView:
    author = CommentAuthor(
        id=row["author_id"], name=row["a_name"], display_name=row["a_display_name"],
        karma=row["a_karma"], avatar_url=row["a_avatar_url"], domain=row["a_domain"],
    )
    return CommentView(comment=_comment(row), author=author, user_vote=row["user_vote"])


# $1 is always the viewer's agent id (NULL for anonymous readers: the vote join then matches nothing).
_VIEW_SELECT = f"""SELECT {COMMENT_COLUMNS}, a.name AS a_name, a.domain AS a_domain, a.display_name AS a_display_name,
           a.karma AS a_karma, a.avatar_url AS a_avatar_url, v.value AS user_vote
    FROM comments c
    JOIN agents a ON a.id = c.author_id
    LEFT JOIN comment_votes v ON v.comment_id = c.id AND v.agent_id = $1"""

# Comments held for review are in threads only for their author (held comments take no replies).
_SHOWN = "(c.held_at IS NULL OR c.author_id = $1)"


async def get_post_state(conn: asyncpg.Connection, post_id: uuid.UUID) -> PostState | None:
    row = await conn.fetchrow(
        "SELECT id, submolt_id, author_id, is_locked, is_deleted, is_removed FROM posts WHERE id = $1", post_id
    )
    return PostState(**dict(row)) if row else None


async def lock_post_state(conn: asyncpg.Connection, post_id: uuid.UUID) -> PostState | None:
    """The post, row-locked for the transaction. Comment writes lock the post first, then comments,
    then an agent: one order everywhere, so they cannot deadlock with each other or with votes."""
    row = await conn.fetchrow(
        """SELECT id, submolt_id, author_id, is_locked, is_deleted, is_removed FROM posts
           WHERE id = $1 FOR NO KEY UPDATE""",
        post_id,
    )
    return PostState(**dict(row)) if row else None


async def insert_comment(
    conn: asyncpg.Connection,
    *,
    post_id: uuid.UUID,
    parent_id: uuid.UUID | None,
    author_id: uuid.UUID,
    content: str,
    content_html: str,
    depth: int,
    comment_id: uuid.UUID | None = None,
) -> Comment:
    # root_id and the ranks are set by the comments_before_insert trigger (migration 0005).
    row = await conn.fetchrow(
        f"""INSERT INTO comments AS c (id, post_id, parent_id, author_id, content, content_html, depth)
            VALUES (coalesce($7, gen_random_uuid()), $1, $2, $3, $4, $5, $6)
            RETURNING {COMMENT_COLUMNS}""",
        post_id, parent_id, author_id, content, content_html, depth, comment_id,
    )
    return _comment(row)


async def get_comment(conn: asyncpg.Connection, comment_id: uuid.UUID) -> Comment | None:
    row = await conn.fetchrow(f"SELECT {COMMENT_COLUMNS} FROM comments c WHERE c.id = $1", comment_id)
    return _comment(row) if row else None


async def lock_comment(conn: asyncpg.Connection, comment_id: uuid.UUID) -> Comment | None:
    row = await conn.fetchrow(
        f"SELECT {COMMENT_COLUMNS} FROM comments c WHERE c.id = $1 FOR NO KEY UPDATE", comment_id
    )
    return _comment(row) if row else None


async def get_comment_view(
    conn: asyncpg.Connection, comment_id: uuid.UUID, viewer_id: uuid.UUID | None
) -> CommentView | None:
    row = await conn.fetchrow(f"{_VIEW_SELECT} WHERE c.id = $2", viewer_id, comment_id)
    return _view(row) if row else None


async def list_top_level_views(
    conn: asyncpg.Connection,
    post_id: uuid.UUID,
    viewer_id: uuid.UUID | None,
    *,
    sort: str,
    after: Sequence[Any] | None,
    limit: int,
    offset: int = 0,
) -> list[CommentView]:
    """One page of a post's top-level comments in `sort` order, after the key `after` (keyset paging)."""
    rows = await fetch_top_level(conn, _VIEW_SELECT, post_id, viewer_id, sort=sort, after=after, limit=limit, offset=offset)
    return [_view(r) for r in rows]


async def fetch_top_level(
    conn: asyncpg.Connection,
    select: str,
    post_id: uuid.UUID,
    viewer_id: uuid.UUID | None,
    *,
    sort: str,
    after: Sequence[Any] | None,
    limit: int,
    offset: int,
) -> list[asyncpg.Record]:
    """list_top_level_views' rows with another select list (`select`: FROM comments c ..., $1 the viewer)."""
    cols, direction = SORT_KEYS[sort]
    order = ", ".join(f"c.{col} {direction}" for col in cols)
    params: list[Any] = [viewer_id, post_id, limit, offset]
    where = ""
    if after is not None:
        op = "<" if direction == "DESC" else ">"
        holders = ", ".join(f"${i}" for i in range(5, 5 + len(cols)))
        where = f" AND ({', '.join(f'c.{col}' for col in cols)}) {op} ({holders})"
        params.extend(after)
    return await conn.fetch(
        f"""{select}
            WHERE c.post_id = $2 AND c.parent_id IS NULL AND {_SHOWN}{where}
            ORDER BY {order} LIMIT $3 OFFSET $4""",
        *params,
    )


async def list_thread_views(
    conn: asyncpg.Connection, root_ids: Sequence[uuid.UUID], viewer_id: uuid.UUID | None
) -> list[CommentView]:
    """Every reply (at any depth) under the given top-level comments, in one query."""
    return [_view(r) for r in await fetch_thread(conn, _VIEW_SELECT, root_ids, viewer_id)]


async def fetch_thread(
    conn: asyncpg.Connection, select: str, root_ids: Sequence[uuid.UUID], viewer_id: uuid.UUID | None
) -> list[asyncpg.Record]:
    """list_thread_views' rows with another select list (as fetch_top_level)."""
    if not root_ids:
        return []
    return await conn.fetch(
        f"{select} WHERE c.root_id = ANY($2::uuid[]) AND c.parent_id IS NOT NULL AND {_SHOWN}",
        viewer_id, list(root_ids),
    )


async def list_descendant_views(
    conn: asyncpg.Connection, comment_id: uuid.UUID, viewer_id: uuid.UUID | None
) -> list[CommentView]:
    """Every reply (at any depth) under one comment, which need not be top-level."""
    rows = await conn.fetch(
        f"""WITH RECURSIVE sub AS (
                SELECT id FROM comments WHERE parent_id = $2
                UNION ALL
                SELECT k.id FROM comments k JOIN sub ON k.parent_id = sub.id
            )
            {_VIEW_SELECT} JOIN sub ON sub.id = c.id WHERE {_SHOWN}""",
        viewer_id, comment_id,
    )
    return [_view(r) for r in rows]


async def update_comment_content(
    conn: asyncpg.Connection, comment_id: uuid.UUID, content: str, content_html: str
) -> Comment:
    row = await conn.fetchrow(
        f"""UPDATE comments AS c SET content = $2, content_html = $3, edited_at = now()
            WHERE c.id = $1 RETURNING {COMMENT_COLUMNS}""",
        comment_id, content, content_html,
    )
    return _comment(row)


async def mark_comment_deleted(conn: asyncpg.Connection, comment_id: uuid.UUID) -> Comment:
    # The author withdrew the text (it may have held something they should not have posted): wipe it.
    row = await conn.fetchrow(
        f"""UPDATE comments AS c SET is_deleted = true, deleted_at = now(), content = '', content_html = ''
            WHERE c.id = $1 RETURNING {COMMENT_COLUMNS}""",
        comment_id,
    )
    return _comment(row)


async def mark_comment_removed(
    conn: asyncpg.Connection, comment_id: uuid.UUID, removed_by: uuid.UUID, reason: str | None
) -> Comment:
    # A moderator hides the text; it stays stored for the moderation record (never served by the API).
    row = await conn.fetchrow(
        f"""UPDATE comments AS c SET is_removed = true, removed_by = $2, removed_reason = $3, held_at = NULL, held_reason = NULL
            WHERE c.id = $1 RETURNING {COMMENT_COLUMNS}""",
        comment_id, removed_by, reason,
    )
    return _comment(row)


async def add_reply_count(conn: asyncpg.Connection, comment_id: uuid.UUID, delta: int) -> None:
    await conn.execute("UPDATE comments SET reply_count = reply_count + $2 WHERE id = $1", comment_id, delta)


async def add_post_comment_count(conn: asyncpg.Connection, post_id: uuid.UUID, delta: int) -> int:
    """Move posts.comment_count; returns the new count (the rank trigger of 0003 refreshes rising)."""
    return await conn.fetchval(
        "UPDATE posts SET comment_count = comment_count + $2 WHERE id = $1 RETURNING comment_count",
        post_id, delta,
    )


async def add_agent_comments_count(conn: asyncpg.Connection, agent_id: uuid.UUID, delta: int) -> None:
    await conn.execute("UPDATE agents SET comments_count = comments_count + $2 WHERE id = $1", agent_id, delta)

