"""Threaded comments: writing, editing, deleting and reading comment trees, with their counters."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from ..edge import cursors
from ..platform.errors import Forbidden, Gone, NotFound, Unprocessable
from .markdown import render_markdown
from .outbox import record_event
from . import bans
from .comment_views import DELETED_TEXT, REMOVED_TEXT, comment_to_json, node_to_json  # noqa: F401 - re-exported
from . import spam
from . import submolts as submolts_service
from ..platform.config_types import SpamConfig
from ..stores import agents as agents_store
from ..stores import comment_json as json_store
from ..stores import comments as store
from ..stores import submolts as submolts_store
from ..stores.agents import Agent
from ..stores.comments import Comment, CommentView, PostState

MAX_CONTENT = 10_000
SORTS = ("best", "top", "new", "old", "controversial")
DEFAULT_SORT = "best"

# Counting rule (as Lemmy): posts.comment_count, comments.reply_count (direct replies) and
# agents.comments_count count live comments only. Deleting or removing a comment takes it out of
# all three in the same transaction; its place in the tree (and its votes, and so karma) stay.


@dataclass(frozen=True, slots=True)
class CommentNode:
    view: CommentView
    replies: tuple[CommentNode, ...]


@dataclass(frozen=True, slots=True)
class CommentPage:
    post_id: uuid.UUID
    sort: str
    comments: tuple[CommentNode, ...]
    next_cursor: str | None
    has_more: bool


# --- reading ---------------------------------------------------------------------------------------


def _build_tree(top: list[CommentView], replies: list[CommentView], sort: str) -> tuple[CommentNode, ...]:
    """Nest replies under their parents; every level in the same order as the top level."""
    children: dict[uuid.UUID, list[CommentView]] = {}
    for view in replies:
        children.setdefault(view.comment.parent_id, []).append(view)  # type: ignore[arg-type]
    descending = store.SORT_KEYS[sort][1] == "DESC"

    def node(view: CommentView) -> CommentNode:
        kids = sorted(children.get(view.comment.id, ()), key=lambda v: store.sort_key(v.comment, sort), reverse=descending)
        return CommentNode(view=view, replies=tuple(node(k) for k in kids))

    return tuple(node(v) for v in top)


def encode_cursor(sort: str, comment: Comment) -> str:
    """The opaque cursor after `comment`: the sort's name and the comment's key under it."""
    return cursors.encode_cursor({"s": sort, "k": dict(zip(store.SORT_KEYS[sort][0], store.sort_key(comment, sort)))})


def decode_cursor(cursor: str, sort: str) -> tuple[Any, ...]:
    """The sort key a cursor carries; a mangled cursor, or one from another sort, is a 400."""
    data = cursors.decode_cursor(cursor)
    if data.get("s") != sort:
        raise cursors.bad_cursor(f"This cursor belongs to another sort than {sort!r}.")
    key = data.get("k")
    if not isinstance(key, dict):
        raise cursors.bad_cursor()
    readers = {
        "id": cursors.cursor_uuid,
        "created_at": cursors.cursor_datetime,
        "score": cursors.cursor_int,
        "best_rank": cursors.cursor_float,
        "controversy_rank": cursors.cursor_float,
    }
    return tuple(readers[col](key, col) for col in store.SORT_KEYS[sort][0])


def _require_visible_post(post: PostState | None, post_id: uuid.UUID) -> PostState:
    if post is None:
        raise NotFound(f"No post {post_id}.", "Check the post id; GET /api/v1/posts lists posts.")
    if post.is_deleted:
        raise Gone("This post was deleted by its author.", "Find another post with GET /api/v1/posts.")
    if post.is_removed:
        raise Gone("This post was removed by a moderator.", "Find another post with GET /api/v1/posts.")
    return post


async def list_post_comments(
    pool: asyncpg.Pool,
    post_id: uuid.UUID,
    viewer: Agent | None,
    *,
    sort: str = DEFAULT_SORT,
    limit: int = 50,
    cursor: str | None = None,
    offset: int = 0,
) -> CommentPage:
    """A page of top-level comments with all their replies nested: two queries, whatever the size."""
    after = decode_cursor(cursor, sort) if cursor else None
    viewer_id = viewer.id if viewer else None
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        # One snapshot, so that a reply committed between the two queries cannot lose its parent.
        _require_visible_post(await store.get_post_state(conn, post_id), post_id)
        top = await store.list_top_level_views(
            conn, post_id, viewer_id, sort=sort, after=after, limit=limit + 1, offset=0 if after else offset
        )
        has_more = len(top) > limit
        top = top[:limit]
        replies = await store.list_thread_views(conn, [v.comment.id for v in top], viewer_id)
    next_cursor = encode_cursor(sort, top[-1].comment) if has_more and top else None
    return CommentPage(post_id, sort, _build_tree(top, replies, sort), next_cursor, has_more)


async def list_post_comments_json(
    pool: asyncpg.Pool,
    post_id: uuid.UUID,
    viewer: Agent | None,
    *,
    sort: str = DEFAULT_SORT,
    limit: int = 50,
    cursor: str | None = None,
    offset: int = 0,
) -> dict[str, Any]:
    """list_post_comments as the API's answer, the comments as JSON text PostgreSQL wrote (orjson.Fragment):
    the same objects as node_to_json's at a fraction of the node's CPU (no dataclasses, no dicts)."""
    after = decode_cursor(cursor, sort) if cursor else None
    viewer_id = viewer.id if viewer else None
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        _require_visible_post(await store.get_post_state(conn, post_id), post_id)
        top = await json_store.list_top_level_json(
            conn, post_id, viewer_id, sort=sort, after=after, limit=limit + 1, offset=0 if after else offset
        )
        has_more = len(top) > limit
        top = top[:limit]
        replies = await json_store.list_thread_json(conn, [c.id for c in top], viewer_id)
    children: dict[uuid.UUID | None, list[json_store.CommentJson]] = {}
    for reply in replies:
        children.setdefault(reply.parent_id, []).append(reply)
    descending = store.SORT_KEYS[sort][1] == "DESC"
    cut = len(json_store.EMPTY_REPLIES_END)

    def text(c: json_store.CommentJson) -> str:
        kids = children.get(c.id)
        if not kids:
            return c.json
        kids.sort(key=lambda k: store.sort_key(k, sort), reverse=descending)  # type: ignore[arg-type]
        return f"{c.json[:-cut]}[{','.join(text(k) for k in kids)}]}}"

    return {
        "post_id": post_id, "sort": sort, "comments": [orjson.Fragment(text(c)) for c in top], "count": len(top),
        "next_cursor": encode_cursor(sort, top[-1]) if has_more and top else None,  # type: ignore[arg-type]
        "has_more": has_more,
    }


async def get_comment_thread(
    pool: asyncpg.Pool, comment_id: uuid.UUID, viewer: Agent | None, *, sort: str = DEFAULT_SORT
) -> CommentNode:
    """One comment (a permalink) with every reply under it."""
    viewer_id = viewer.id if viewer else None
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        view = await store.get_comment_view(conn, comment_id, viewer_id)
        if view is None:
            raise NotFound(f"No comment {comment_id}.", "Check the comment id; GET /api/v1/posts/{id}/comments lists them.")
        if view.comment.is_held and view.comment.author_id != viewer_id:
            raise NotFound(f"No comment {comment_id}.", "Check the comment id; GET /api/v1/posts/{id}/comments lists them.")
        _require_visible_post(await store.get_post_state(conn, view.comment.post_id), view.comment.post_id)
        replies = await store.list_descendant_views(conn, comment_id, viewer_id)
    return _build_tree([view], replies, sort)[0]


# --- writing ---------------------------------------------------------------------------------------


async def create_comment(
    pool: asyncpg.Pool,
    agent: Agent,
    post_id: uuid.UUID,
    content: str,
    parent_id: uuid.UUID | None = None,
    *,
    max_depth: int,
    spam_cfg: SpamConfig | None = None,
) -> CommentView:
    """The Agent API's new comment, in a transaction of its own (see add_comment). Near-duplicate spam
    (spam_cfg) is stored held for review: the view's comment then is_held."""
    html = render_markdown(content)  # before the transaction: rendering is CPU, not I/O
    fingerprint = spam.prepare(spam_cfg, content)
    async with pool.acquire() as conn, conn.transaction():
        return await add_comment(
            conn, agent, post_id, content, parent_id, max_depth=max_depth, html=html,
            screen=(spam_cfg, fingerprint) if spam_cfg and fingerprint else None,
        )


async def add_comment(
    conn: asyncpg.Connection,
    agent: Agent,
    post_id: uuid.UUID,
    content: str,
    parent_id: uuid.UUID | None = None,
    *,
    max_depth: int,
    html: str | None = None,
    screen: tuple[SpamConfig, spam.Fingerprint] | None = None,
) -> CommentView:
    """A new comment (or reply) inside the caller's transaction, local or received: locks, bans, depth; the
    post, parent and author counters move with the row. `screen`: the spam rules' check, after the post's
    rules; a held comment is stored as removed, uncounted and without its event (recorded at release)."""
    if html is None:
        html = render_markdown(content)
    post = _require_visible_post(await store.lock_post_state(conn, post_id), post_id)
    if post.is_locked:
        raise Forbidden(
            "This post is locked: it takes no new comments.",
            "A moderator locked the thread; comment on another post instead.",
        )
    await bans.require_not_banned(conn, post.submolt_id, agent.id)
    depth = 0
    if parent_id is not None:
        parent = await store.get_comment(conn, parent_id)
        if parent is None:
            raise NotFound(
                f"No comment {parent_id} to reply to.",
                "Use the id of a comment on this post as parent_id, or omit parent_id for a top-level comment.",
            )
        if parent.post_id != post_id:
            raise Unprocessable(
                f"Comment {parent_id} belongs to another post.",
                f"Reply under that comment's own post (POST /api/v1/posts/{parent.post_id}/comments), "
                "or use a parent_id from this post.",
            )
        if not parent.is_live:
            raise Gone(
                "The comment you are replying to was deleted or removed.",
                "Reply to another comment, or comment on the post without parent_id.",
            )
        depth = parent.depth + 1
        if depth > max_depth:
            raise Unprocessable(
                f"This thread is too deep: replies may nest at most {max_depth} levels.",
                "Reply to a comment higher up in the thread, or start a new top-level comment.",
                extra={"max_depth": max_depth},
            )
    comment_id = uuid.uuid4()  # known before the row: the fingerprint names it
    hold = await spam.screen(conn, screen[0], agent, screen[1], "comment", comment_id) if screen else None
    comment = await store.insert_comment(
        conn, post_id=post_id, parent_id=parent_id, author_id=agent.id,
        content=content, content_html=html, depth=depth, comment_id=comment_id,
    )
    if hold is not None:
        await spam.hold_item(conn, "comment", comment.id, agent.id, hold)
    else:
        if parent_id is not None:
            await store.add_reply_count(conn, parent_id, 1)
        await store.add_post_comment_count(conn, post_id, 1)
        await store.add_agent_comments_count(conn, agent.id, 1)
        await record_event(conn, "comment.created", actor_id=agent.id, object_id=comment.id)
    view = await store.get_comment_view(conn, comment.id, agent.id)
    assert view is not None
    return view


async def edit_comment(
    pool: asyncpg.Pool, agent: Agent, comment_id: uuid.UUID, content: str, *, spam_cfg: SpamConfig | None = None,
) -> CommentView:
    """The Agent API's edit; with spam_cfg, an edit into a copy of recent spam is refused (403)."""
    html = render_markdown(content)
    async with pool.acquire() as conn, conn.transaction():
        return await change_comment(conn, agent, comment_id, content, html, spam_cfg=spam_cfg)


async def change_comment(
    conn: asyncpg.Connection, agent: Agent, comment_id: uuid.UUID, content: str, html: str | None = None, *,
    spam_cfg: SpamConfig | None = None,
) -> CommentView:
    """The author's edit, inside the caller's transaction (an edit into a copy of recent spam: 403)."""
    if html is None:
        html = render_markdown(content)
    comment = await store.lock_comment(conn, comment_id)
    if comment is None:
        raise NotFound(f"No comment {comment_id}.", "Check the comment id.")
    if comment.author_id != agent.id:
        raise Forbidden("Only the author can edit a comment.", "Edit your own comments; reply to disagree.")
    if not comment.is_live:
        raise Gone("This comment was deleted or removed; it cannot be edited.", "Write a new comment instead.")
    _require_visible_post(await store.get_post_state(conn, comment.post_id), comment.post_id)
    if spam_cfg is not None and content != comment.content:
        await spam.refuse_copy(conn, spam_cfg, agent, content, "comment", comment_id)
    await store.update_comment_content(conn, comment_id, content, html)
    await record_event(conn, "comment.updated", actor_id=agent.id, object_id=comment_id)
    view = await store.get_comment_view(conn, comment_id, agent.id)
    assert view is not None
    return view


async def delete_comment(
    pool: asyncpg.Pool, agent: Agent, comment_id: uuid.UUID, reason: str | None = None
) -> str:
    async with pool.acquire() as conn, conn.transaction():
        return await remove_comment(conn, agent, comment_id, reason)


async def remove_comment(conn: asyncpg.Connection, agent: Agent, comment_id: uuid.UUID, reason: str | None = None) -> str:
    """The author's soft delete ("deleted") or a submolt moderator's removal ("removed"), into the audit log,
    inside the caller's transaction."""
    found = await store.get_comment(conn, comment_id)
    if found is None:
        raise NotFound(f"No comment {comment_id}.", "Check the comment id.")
    post = await store.lock_post_state(conn, found.post_id)  # post first: the one lock order
    comment = await store.lock_comment(conn, comment_id)
    assert post is not None and comment is not None  # a post or comment row is never hard-deleted here
    # Repeats answer 200 with already_* (as posts do): DELETE is idempotent for clients that retry.
    if comment.author_id == agent.id:
        if comment.is_deleted:
            return "already_deleted"
        await store.mark_comment_deleted(conn, comment_id)  # also wipes a removed comment's text
        await record_event(conn, "comment.deleted", actor_id=agent.id, object_id=comment_id)
        action = "deleted"
    elif await submolts_store.is_moderator(conn, post.submolt_id, agent.id):
        if comment.is_removed and not comment.is_held:  # a held comment is removed for good now
            return "already_removed"
        await store.mark_comment_removed(conn, comment_id, agent.id, reason or None)
        await record_event(conn, "comment.removed", actor_id=agent.id, object_id=comment_id, data={"reason": reason or None})
        await agents_store.insert_audit(
            conn, submolts_service.actor(agent), "comment.remove", f"comment:{comment_id}",
            {"reason": reason or None, "post_id": str(post.id), "submolt_id": str(post.submolt_id),
             "author_id": str(comment.author_id)},
        )
        action = "removed"
    else:
        raise Forbidden(
            "You can delete only your own comments.",
            "Moderators of the post's submolt can remove others' comments; ask one, or report it.",
        )
    if comment.is_live:
        if comment.parent_id is not None:
            await store.add_reply_count(conn, comment.parent_id, -1)
        await store.add_post_comment_count(conn, comment.post_id, -1)
        await store.add_agent_comments_count(conn, comment.author_id, -1)
    return action
