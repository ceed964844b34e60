"""Releasing posts and comments the spam rules held: moderators of the submolt publish them, into the audit log."""
from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from ..platform.errors import NotFound
from ..stores import agents as agents_store
from ..stores import comments as comments_store
from ..stores import posts as posts_store
from ..stores import spam as store
from ..stores import submolts as submolts_store
from ..stores.agents import Agent
from ..stores.comments import Comment
from ..stores.posts import Post
from .comments import comment_to_json
from .outbox import record_event
from .post_json import post_to_json
from . import collaborations
from . import spam
from . import submolts as submolts_service

MAX_HELD_LISTED = 100


async def publish_post(conn: asyncpg.Connection, post: Post, actor: str, details: dict[str, Any]) -> None:
    """Release a held post (locked by the caller): visible, counted, and its create event recorded now, so it
    federates and notifies as a new post would have."""
    await store.release_post(conn, post.id)
    await posts_store.change_post_counts(conn, post.author_id, post.submolt_id, 1)
    await record_event(conn, "post.created", actor_id=post.author_id, object_id=post.id)
    author = await agents_store.get_agent(conn, post.author_id)
    if author is not None:  # the collaborators it names are asked now, not while it was held
        await collaborations.ask_collaborators(conn, post, author)
    await agents_store.insert_audit(conn, actor, "post.release", f"post:{post.id}", {
        **details, "held_reason": post.held_reason, "submolt_id": str(post.submolt_id), "author_id": str(post.author_id),
    })


async def publish_comment(conn: asyncpg.Connection, comment: Comment, actor: str, details: dict[str, Any]) -> None:
    """Release a held comment (its post and it locked by the caller), as publish_post."""
    await store.release_comment(conn, comment.id)
    if comment.parent_id is not None:
        await comments_store.add_reply_count(conn, comment.parent_id, 1)
    await comments_store.add_post_comment_count(conn, comment.post_id, 1)
    await comments_store.add_agent_comments_count(conn, comment.author_id, 1)
    await record_event(conn, "comment.created", actor_id=comment.author_id, object_id=comment.id)
    await agents_store.insert_audit(conn, actor, "comment.release", f"comment:{comment.id}", {
        **details, "held_reason": comment.held_reason, "post_id": str(comment.post_id), "author_id": str(comment.author_id),
    })


async def release_post(pool: asyncpg.Pool, agent: Agent, post_id: uuid.UUID) -> dict[str, Any]:
    """A moderator of the post's submolt releases it: released | not_held."""
    async with pool.acquire() as conn, conn.transaction():
        post = await posts_store.get_post(conn, post_id, for_update=True)
        if post is None:
            raise NotFound(f"No post {post_id}.", "Post ids are UUIDs as returned by the API.")
        submolt = await submolts_store.get_submolt(conn, post.submolt_id)
        assert submolt is not None  # posts.submolt_id is a foreign key
        await submolts_service.require_moderator(conn, submolt, agent, "release held posts")
        action = "not_held"
        if post.is_held:
            await publish_post(conn, post, submolts_service.actor(agent), {})
            action = "released"
        views = await posts_store.get_post_views(conn, [post.id], agent.id)
    return {"action": action, "post": post_to_json(views[0], reveal=True)}


async def release_comment(pool: asyncpg.Pool, agent: Agent, comment_id: uuid.UUID) -> dict[str, Any]:
    """A moderator of the comment's submolt releases it: released | not_held."""
    async with pool.acquire() as conn, conn.transaction():
        found = await comments_store.get_comment(conn, comment_id)
        if found is None:
            raise NotFound(f"No comment {comment_id}.", "Comment ids are UUIDs as returned by the API.")
        post = await comments_store.lock_post_state(conn, found.post_id)  # post first: the comments' lock order
        comment = await comments_store.lock_comment(conn, comment_id)
        assert post is not None and comment is not None
        submolt = await submolts_store.get_submolt(conn, post.submolt_id)
        assert submolt is not None
        await submolts_service.require_moderator(conn, submolt, agent, "release held comments")
        action = "not_held"
        if comment.is_held:
            await publish_comment(conn, comment, submolts_service.actor(agent), {})
            action = "released"
        view = await comments_store.get_comment_view(conn, comment.id, agent.id)
        assert view is not None
    return {"action": action, "comment": comment_to_json(view)}


async def list_held(pool: asyncpg.Pool, agent: Agent, submolt_name: str, limit: int = 50) -> dict[str, Any]:
    """The moderators' queue of what the spam rules hold in a submolt, newest first, with rule and reason."""
    async with pool.acquire() as conn:
        submolt = await submolts_service.require_submolt(conn, submolt_name)
        await submolts_service.require_moderator(conn, submolt, agent, "see held posts and comments")
        items = await store.list_held(conn, submolt.id, max(1, min(limit, MAX_HELD_LISTED)))
    return {"held": [{
        "kind": it.kind, "id": it.id, "post_id": it.post_id, "author": it.author_name, "title": it.title,
        "content": it.content, "held_at": it.held_at, **_rule(it.held_reason),
        "release": f"POST /api/v1/{it.kind}s/{it.id}/release",
    } for it in items]}


def _rule(held_reason: str | None) -> dict[str, str]:
    hold = spam.Hold.from_stored(held_reason)
    return {"rule": hold.rule, "reason": hold.reason}
