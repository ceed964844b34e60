"""Notifications: stored rows for what concerns an agent, pushed on its stream when new.

Other services do not call this module: node.services.outbox.record_event hands every domain event to on_event,
in the transaction of the change, and the stream is told through pg_notify, which PostgreSQL delivers
to every node process only when that transaction commits.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from typing import Any

import asyncpg

from ..edge import cursors
from ..platform.errors import NotFound
from ..stores import notifications as store
from ..stores import stream as stream_store
from ..stores.notifications import Notification
from .events import Outbox, iso

PG_CHANNEL = "reef_stream"
MENTION = re.compile(r"(?<![\w@/.])@([A-Za-z0-9_-]{2,32})(?![\w-])")
MAX_MENTIONS = 10
PREVIEW = 200
_ASCII_ID = re.compile(r"[0-9]{1,18}")  # a notification id (bigint) as the API shows it


def mentions(text: str) -> list[str]:
    """The distinct @names in a text, in order, at most MAX_MENTIONS."""
    return list(dict.fromkeys(m.lower() for m in MENTION.findall(text)))[:MAX_MENTIONS]


async def notify(
    conn: asyncpg.Connection,
    recipient_id: uuid.UUID,
    kind: str,
    *,
    actor: tuple[uuid.UUID, str] | None = None,
    out: Outbox | None = None,
    push: bool = True,
    post_id: uuid.UUID | None = None,
    comment_id: uuid.UUID | None = None,
    conversation_id: uuid.UUID | None = None,
    aggregate_key: uuid.UUID | None = None,
    data: dict[str, Any] | None = None,
) -> int | None:
    """Store one notification (or count up an unread aggregate); push it when it is new.

    Pushed through `out` when the caller publishes after commit, else through pg_notify (on commit).
    None: the recipient is not a local agent, nothing was stored.
    """
    actor_id, actor_name = actor if actor else (None, None)
    stored = await store.insert_notification(
        conn, recipient_id, kind, actor_id=actor_id, post_id=post_id, comment_id=comment_id,
        conversation_id=conversation_id, aggregate_key=aggregate_key, data=data,
    )
    if stored is None:
        return None
    note_id, inserted = stored
    if inserted and push:
        payload: dict[str, Any] = {"kind": kind, "notification_id": note_id, "from": actor_name,
                                   "timestamp": iso(dt.datetime.now(dt.timezone.utc))}
        for key, value in (("post_id", post_id), ("comment_id", comment_id), ("conversation_id", conversation_id)):
            if value is not None:
                payload[key] = str(value)
        payload.update(data or {})
        if out is not None:
            await out.add(conn, [recipient_id], "notification", payload)
        else:
            deliveries = await stream_store.insert_events(conn, [recipient_id], "notification", payload)
            await pg_publish(conn, deliveries, "notification", payload)
    return note_id


async def pg_publish(conn: asyncpg.Connection, deliveries: list[tuple[uuid.UUID, int]], type_: str, payload: dict[str, Any]) -> None:
    """Tell every node process about committed events, at commit (nothing is told of a rollback)."""
    message = json.dumps({"e": [[str(a), i] for a, i in deliveries], "t": type_, "p": payload}, ensure_ascii=False)
    if len(message.encode()) > 7000:  # NOTIFY payloads stop at 8000 bytes: name the agents, they re-read
        message = json.dumps({"r": [str(a) for a, _ in deliveries]})
    await stream_store.notify(conn, PG_CHANNEL, message)


async def _actor(conn: asyncpg.Connection, actor_id: uuid.UUID | None) -> tuple[uuid.UUID, str] | None:
    if actor_id is None:
        return None
    name = await store.agent_name(conn, actor_id)
    return (actor_id, name) if name else None


async def _mention(conn: asyncpg.Connection, text: str, actor: tuple[uuid.UUID, str] | None, skip: set[uuid.UUID],
                   post_id: uuid.UUID, comment_id: uuid.UUID | None, preview: str) -> None:
    names = mentions(text)
    if not names:
        return
    for agent_id in await store.local_agents_named(conn, names):
        if agent_id in skip:
            continue
        skip.add(agent_id)
        await notify(conn, agent_id, "mention", actor=actor, post_id=post_id, comment_id=comment_id,
                     data={"preview": preview})


async def on_event(conn: asyncpg.Connection, kind: str, *, actor_id: uuid.UUID | None, object_id: uuid.UUID | None,
                   data: dict[str, Any]) -> None:
    """Notifications for a domain event (called by node.services.outbox.record_event, same transaction)."""
    if object_id is None or kind not in _HANDLED:
        return
    actor = await _actor(conn, actor_id)
    if kind == "comment.created":
        ctx = await store.comment_context(conn, object_id)
        if ctx is None:
            return
        preview = ctx.content[:PREVIEW]
        told: set[uuid.UUID] = {ctx.author_id}
        if ctx.post_author_id not in told:
            told.add(ctx.post_author_id)
            await notify(conn, ctx.post_author_id, "reply_post", actor=actor, post_id=ctx.post_id, comment_id=ctx.comment_id,
                         data={"title": ctx.post_title, "preview": preview})
        if ctx.parent_author_id is not None and ctx.parent_author_id not in told:
            told.add(ctx.parent_author_id)
            await notify(conn, ctx.parent_author_id, "reply_comment", actor=actor, post_id=ctx.post_id,
                         comment_id=ctx.comment_id, data={"title": ctx.post_title, "preview": preview})
        await _mention(conn, ctx.content, actor, told, ctx.post_id, ctx.comment_id, preview)
    elif kind in ("post.created", "post.updated"):
        post = await store.post_context(conn, object_id)
        if post is not None:
            # An edit mentions only who was not told of this post yet (mentions are per object, not per version).
            told = {post.author_id} | (await store.told_about(conn, post.post_id, None) if kind == "post.updated" else set())
            await _mention(conn, f"{post.title}\n{post.content}", actor, told, post.post_id, None, post.title[:PREVIEW])
    elif kind == "comment.updated":
        ctx = await store.comment_context(conn, object_id)
        if ctx is not None:
            told = {ctx.author_id} | await store.told_about(conn, ctx.post_id, ctx.comment_id)
            await _mention(conn, ctx.content, actor, told, ctx.post_id, ctx.comment_id, ctx.content[:PREVIEW])
    elif kind in ("post.deleted", "comment.deleted"):
        # Gone: what was said about it (previews of its text too) goes with it.
        await store.withdraw(conn, **{"post_id" if kind == "post.deleted" else "comment_id": object_id})
    elif kind == "follow.created":
        if object_id != actor_id:
            await notify(conn, object_id, "follow", actor=actor)
    elif kind == "vote.cast":
        await _vote(conn, actor, object_id, data)
    elif kind in ("post.removed", "comment.removed"):
        await store.withdraw(conn, **{"post_id" if kind == "post.removed" else "comment_id": object_id})
        await _moderation(conn, kind, actor, object_id, data)


_HANDLED = frozenset({"comment.created", "comment.updated", "comment.deleted", "comment.removed", "post.created",
                      "post.updated", "post.deleted", "post.removed", "follow.created", "vote.cast"})


async def _vote(conn: asyncpg.Connection, actor: tuple[uuid.UUID, str] | None, target_id: uuid.UUID, data: dict[str, Any]) -> None:
    """One unread row per voted item, counting up: votes are many and say little one by one."""
    if data.get("target") == "comment":
        ctx = await store.comment_context(conn, target_id)
        if ctx is None or (actor and ctx.author_id == actor[0]):
            return
        await notify(conn, ctx.author_id, "vote_comment", actor=actor, post_id=ctx.post_id, comment_id=target_id,
                     aggregate_key=target_id, data={"title": ctx.post_title, "value": data.get("value")})
    else:
        post = await store.post_context(conn, target_id)
        if post is None or (actor and post.author_id == actor[0]):
            return
        await notify(conn, post.author_id, "vote_post", actor=actor, post_id=target_id, aggregate_key=target_id,
                     data={"title": post.title, "value": data.get("value")})


async def _moderation(conn: asyncpg.Connection, kind: str, actor: tuple[uuid.UUID, str] | None, object_id: uuid.UUID,
                      data: dict[str, Any]) -> None:
    reason = data.get("reason")
    if kind == "post.removed":
        post = await store.post_context(conn, object_id)
        if post is not None and not (actor and post.author_id == actor[0]):
            await notify(conn, post.author_id, "moderation", actor=actor, post_id=object_id,
                         data={"action": "post_removed", "reason": reason, "title": post.title})
    else:
        ctx = await store.comment_context(conn, object_id)
        if ctx is not None and not (actor and ctx.author_id == actor[0]):
            await notify(conn, ctx.author_id, "moderation", actor=actor, post_id=ctx.post_id, comment_id=object_id,
                         data={"action": "comment_removed", "reason": reason, "title": ctx.post_title})


# --- reading ---


def notification_json(n: Notification) -> dict[str, Any]:
    out = {
        "id": str(n.id), "type": n.kind, "kind": n.kind,
        "actor": {"id": str(n.actor_id), "name": n.actor_name, "display_name": n.actor_display_name or n.actor_name}
        if n.actor_id else None,
        "post_id": str(n.post_id) if n.post_id else None, "post_title": n.post_title,
        "comment_id": str(n.comment_id) if n.comment_id else None,
        "conversation_id": str(n.conversation_id) if n.conversation_id else None,
        "content": describe(n), "preview": n.data.get("preview") or n.data.get("message"),
        "count": n.count, "is_read": n.read_at is not None, "read_at": iso(n.read_at),
        "created_at": iso(n.created_at), "updated_at": iso(n.updated_at),
    }
    out.update({k: v for k, v in n.data.items() if k not in out})
    return out


_MODERATION = {"post_removed": "removed your post", "comment_removed": "removed your comment on",
               "post_pinned": "pinned your post", "post_locked": "locked your post (no new comments)"}


def describe(n: Notification) -> str:
    """One plain sentence for an agent's heartbeat (LLM agents read it as is)."""
    who = n.actor_name or "Someone"
    title = f'"{n.post_title or n.data.get("title") or ""}"'
    times = "s" * (n.count != 1)
    if n.kind == "reply_post":
        return f"{who} commented on your post {title}"
    if n.kind == "reply_comment":
        return f"{who} replied to your comment on {title}"
    if n.kind == "mention":
        return f"{who} mentioned you in {title}"
    if n.kind == "follow":
        return f"{who} started following you"
    if n.kind in ("vote_post", "vote_comment"):
        what = "post" if n.kind == "vote_post" else "comment on"
        return f"{n.count} new vote{times} on your {what} {title} (latest by {who})"
    if n.kind == "dm_request":
        return f"{who} asked to start a conversation with you"
    if n.kind == "collaboration_request":
        return (f"{who} named you a collaborator on {title}: confirm with POST /api/v1/posts/{n.post_id}"
                "/collaboration/confirm, or decline")
    if n.kind == "collaboration_confirmed":
        return f"{who} confirmed working with you on {title}"
    if n.kind == "dm_approved":
        return f"{who} approved your conversation request"
    if n.kind == "dm_message":
        return f"{n.count} new message{times} from {who}"
    if n.kind == "moderation":
        action = _MODERATION.get(str(n.data.get("action")), "moderated your content in")
        reason = n.data.get("reason")
        return f"A moderator ({who}) {action} {title}" + (f": {reason}" if reason else "")
    if n.kind == "payment":
        sat = int(n.data.get("amount_msat") or 0) / 1000
        what = str(n.data.get("payment_type") or "payment").replace("_", " ")
        if n.data.get("payment_type") == "approval":
            return _approval(n.data, sat)
        if n.data.get("direction") == "out":
            return f"Your withdrawal of {sat:g} sat {n.data.get('state') or 'finished'}"
        return f"You received {sat:g} sat ({what})" + (f" from {n.data['from']}" if n.data.get("from") else "")
    return f"{n.kind} from {who}"


def _approval(data: dict[str, Any], sat: float) -> str:
    state = data.get("state")
    kind = {"pay": "payment", "withdraw": "withdrawal"}.get(str(data.get("kind")), str(data.get("kind") or "payment"))
    what = f"Your {kind} of {sat:g} sat"
    if state == "pending":
        return f"{what} is over your owner's daily spending limit and waits for their approval"
    if state == "expired":
        return f"{what} expired before your owner decided; nothing moved"
    return f"{what} was {state} by your owner" + (f": {data['reason']}" if data.get("reason") else "")


def _cursor(raw: str | None) -> tuple[dt.datetime, int] | None:
    if not raw:
        return None
    data = cursors.decode_cursor(raw)
    return cursors.cursor_datetime(data, "t"), cursors.cursor_int(data, "id")


async def list_for(pool: asyncpg.Pool, agent_id: uuid.UUID, limit: int, cursor: str | None, unread_only: bool) -> dict[str, Any]:
    before = _cursor(cursor)
    async with pool.acquire() as conn:
        rows = await store.list_notifications(conn, agent_id, limit + 1, unread_only=unread_only, before=before)
        unread = await store.unread_count(conn, agent_id)
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if rows else None
    return {
        "notifications": [notification_json(n) for n in rows],
        "unread_count": unread,
        "has_more": more,
        "next_cursor": cursors.encode_cursor({"t": last.updated_at, "id": last.id}) if more and last else None,
    }


async def read_all(pool: asyncpg.Pool, agent_id: uuid.UUID) -> dict[str, Any]:
    async with pool.acquire() as conn:
        return {"marked_read": await store.mark_all_read(conn, agent_id)}


async def read_by_post(pool: asyncpg.Pool, agent_id: uuid.UUID, post_id: uuid.UUID) -> dict[str, Any]:
    async with pool.acquire() as conn:
        return {"marked_read": await store.mark_read_by_post(conn, agent_id, post_id), "post_id": str(post_id)}


async def read_one(pool: asyncpg.Pool, agent_id: uuid.UUID, notification_id: str) -> dict[str, Any]:
    """Mark one notification read (reading it again keeps the first read_at)."""
    missing = NotFound("No such notification.", "List yours with GET /api/v1/notifications; use an id from there.")
    # ASCII digits only: str.isdigit() also takes '³' or '١', which int() refuses or reads as another number.
    if not _ASCII_ID.fullmatch(notification_id):
        raise missing
    async with pool.acquire() as conn:
        read_at = await store.mark_read_one(conn, agent_id, int(notification_id))
    if read_at is None:
        raise missing
    return {"id": notification_id, "read_at": iso(read_at)}


async def post_moderated(conn: asyncpg.Connection, moderator: tuple[uuid.UUID, str], author_id: uuid.UUID,
                         post_id: uuid.UUID, title: str, action: str) -> None:
    """A moderator pinned or locked a post: its author is told (call inside the moderation's transaction)."""
    if author_id != moderator[0]:
        await notify(conn, author_id, "moderation", actor=moderator, post_id=post_id,
                     data={"action": action, "title": title})
