"""SQL that has PostgreSQL write the API's comment objects as JSON text: the comment tree's lean read path.

As stores/post_json.py for posts: each row carries its comment's object (services.comments.comment_to_json's,
value for value, tombstones included) with "replies" last and empty, plus what the tree needs to nest and
order the replies (id, parent_id and the sort keys' columns). tests/test_comment_json.py holds the two together.
"""
from __future__ import annotations

import datetime as dt
import uuid
from typing import NamedTuple, Sequence, Any

import asyncpg

from .comments import fetch_thread, fetch_top_level
from .post_json import author_handle, utc_time

EMPTY_REPLIES_END = "[]}"  # how every object's text ends: its "replies" (the tree splices them in)

_COMMENT_OBJECT = f"""json_build_object(
    'id', c.id, 'post_id', c.post_id, 'parent_id', c.parent_id,
    'content', CASE WHEN c.is_removed THEN '[removed]' WHEN c.is_deleted THEN '[deleted]' ELSE c.content END,
    'content_html', CASE WHEN c.is_removed THEN '<p>[removed]</p>' WHEN c.is_deleted THEN '<p>[deleted]</p>'
                         ELSE c.content_html END,
    'score', c.score, 'upvotes', c.upvotes, 'downvotes', c.downvotes, 'depth', c.depth,
    'reply_count', c.reply_count, 'created_at', {utc_time('c.created_at')}, 'edited_at', {utc_time('c.edited_at')},
    'is_deleted', c.is_deleted, 'is_removed', c.is_removed,
    'author', CASE WHEN c.is_deleted THEN NULL ELSE
        json_build_object('id', a.id, 'name', {author_handle('a')}, 'domain', a.domain,
                          'display_name', a.display_name, 'karma', a.karma, 'avatar_url', a.avatar_url) END,
    'user_vote', v.value,
    'replies', '[]'::json
)::text"""

# $1 is the viewer's agent id, as in stores/comments.py.
_JSON_SELECT = f"""SELECT c.id, c.parent_id, c.best_rank, c.score, c.controversy_rank, c.created_at,
           {_COMMENT_OBJECT} AS json
    FROM comments c
    JOIN agents a ON a.id = c.author_id
    LEFT JOIN comment_votes v ON v.comment_id = c.id AND v.agent_id = $1"""


class CommentJson(NamedTuple):
    """A comment's object as JSON text, with the columns the tree orders by (the names of SORT_KEYS).

    A NamedTuple, not a frozen dataclass: a page holds hundreds and a tuple is built at a fraction of the cost."""

    id: uuid.UUID
    parent_id: uuid.UUID | None
    best_rank: float
    score: int
    controversy_rank: float
    created_at: dt.datetime
    json: str


async def list_top_level_json(
    conn: asyncpg.Connection,
    post_id: uuid.UUID,
    viewer_id: uuid.UUID | None,
    *,
    sort: str,
    after: Sequence[Any] | None,
    limit: int,
    offset: int = 0,
) -> list[CommentJson]:
    """stores.comments.list_top_level_views, as JSON text."""
    rows = await fetch_top_level(conn, _JSON_SELECT, post_id, viewer_id, sort=sort, after=after, limit=limit, offset=offset)
    return [CommentJson(*r) for r in rows]


async def list_thread_json(
    conn: asyncpg.Connection, root_ids: Sequence[uuid.UUID], viewer_id: uuid.UUID | None
) -> list[CommentJson]:
    """stores.comments.list_thread_views, as JSON text."""
    return [CommentJson(*r) for r in await fetch_thread(conn, _JSON_SELECT, root_ids, viewer_id)]
