"""Taking posts and comments down and bringing them back, with the counters that follow visibility: the one
place these rules live for moderators here and for a remote Group's moderators (federation). Who may do it,
events and the audit log are the caller's."""
from __future__ import annotations

import uuid

import asyncpg

from ..stores import comments as comments_store
from ..stores import moderation as moderation_store
from ..stores import posts as posts_store
from ..stores.comments import Comment
from ..stores.posts import Post


async def take_down_post(
    conn: asyncpg.Connection, post_id: uuid.UUID, *, removed_by: uuid.UUID | None, reason: str | None,
) -> Post | None:
    """Mark the post removed; None when there is no such post or it already was removed."""
    post = await posts_store.get_post(conn, post_id, for_update=True)
    if post is None or (post.is_removed and not post.is_held):  # a held post: removed for good now
        return None
    await posts_store.mark_removed(conn, post.id, removed_by=removed_by, reason=reason)
    if post.is_visible:  # counters count visible posts
        await posts_store.change_post_counts(conn, post.author_id, post.submolt_id, -1)
    return post


async def bring_back_post(conn: asyncpg.Connection, post_id: uuid.UUID) -> Post | None:
    """Lift the removal (an author's delete stays); None when there is nothing to lift."""
    post = await posts_store.get_post(conn, post_id, for_update=True)
    if post is None or not post.is_removed:
        return None
    await moderation_store.unremove_post(conn, post.id)
    if not post.is_deleted:  # visible again: counted again
        await posts_store.change_post_counts(conn, post.author_id, post.submolt_id, 1)
    return post


async def _lock_comment(conn: asyncpg.Connection, comment_id: uuid.UUID) -> Comment | None:
    found = await comments_store.get_comment(conn, comment_id)
    if found is None:
        return None
    await comments_store.lock_post_state(conn, found.post_id)  # post first: the one lock order
    return await comments_store.lock_comment(conn, comment_id)


async def _count_comment(conn: asyncpg.Connection, comment: Comment, delta: int) -> None:
    if comment.parent_id is not None:
        await comments_store.add_reply_count(conn, comment.parent_id, delta)
    await comments_store.add_post_comment_count(conn, comment.post_id, delta)
    await comments_store.add_agent_comments_count(conn, comment.author_id, delta)


async def take_down_comment(
    conn: asyncpg.Connection, comment_id: uuid.UUID, *, removed_by: uuid.UUID | None, reason: str | None,
) -> Comment | None:
    comment = await _lock_comment(conn, comment_id)
    if comment is None or (comment.is_removed and not comment.is_held):
        return None
    await comments_store.mark_comment_removed(conn, comment.id, removed_by, reason)
    if comment.is_live:
        await _count_comment(conn, comment, -1)
    return comment


async def bring_back_comment(conn: asyncpg.Connection, comment_id: uuid.UUID) -> Comment | None:
    comment = await _lock_comment(conn, comment_id)
    if comment is None or not comment.is_removed:
        return None
    await moderation_store.unremove_comment(conn, comment.id)
    if not comment.is_deleted:
        await _count_comment(conn, comment, 1)
    return comment
