"""SQL the inbox handlers and the outbox worker need: actors by id, recipients, ap ids, follow states."""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import asyncpg

# --- actors as rows -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActorRow:
    """An agents or submolts row seen as an actor: kind 'agent' or 'submolt'."""

    kind: str
    id: uuid.UUID
    name: str
    is_local: bool
    actor_url: str | None
    inbox_url: str | None
    shared_inbox_url: str | None
    followers_url: str | None
    gone: bool

    @property
    def delivery_inbox(self) -> str | None:
        """Where to send to this remote actor: its server's shared inbox when it has one."""
        return None if self.gone else (self.shared_inbox_url or self.inbox_url)


_AGENT = """'agent' AS kind, id, name, is_local, actor_url, inbox_url, shared_inbox_url, NULL::text AS followers_url,
    gone_at IS NOT NULL AS gone"""
_SUBMOLT = """'submolt' AS kind, id, name, is_local, actor_url, inbox_url, shared_inbox_url, followers_url,
    gone_at IS NOT NULL AS gone"""


async def get_agent_row(conn: asyncpg.Connection, agent_id: uuid.UUID) -> ActorRow | None:
    row = await conn.fetchrow(f"SELECT {_AGENT} FROM agents WHERE id = $1", agent_id)
    return ActorRow(**dict(row)) if row else None


async def get_submolt_row(conn: asyncpg.Connection, submolt_id: uuid.UUID) -> ActorRow | None:
    row = await conn.fetchrow(f"SELECT {_SUBMOLT} FROM submolts WHERE id = $1", submolt_id)
    return ActorRow(**dict(row)) if row else None


async def get_agent_row_by_name(conn: asyncpg.Connection, name: str) -> ActorRow | None:
    row = await conn.fetchrow(f"SELECT {_AGENT} FROM agents WHERE lower(name) = lower($1) AND is_local", name)
    return ActorRow(**dict(row)) if row else None


async def get_submolt_row_by_name(conn: asyncpg.Connection, name: str) -> ActorRow | None:
    row = await conn.fetchrow(f"SELECT {_SUBMOLT} FROM submolts WHERE lower(name) = lower($1) AND is_local", name)
    return ActorRow(**dict(row)) if row else None


async def has_local_followers(conn: asyncpg.Connection, agent_id: uuid.UUID) -> bool:
    """Whether agents of this node follow (accepted) this agent."""
    return bool(await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM follows f JOIN agents a ON a.id = f.follower_id
                          WHERE f.followee_id = $1 AND f.accepted AND a.is_local)""",
        agent_id,
    ))


async def is_local_agent(conn: asyncpg.Connection, agent_id: uuid.UUID) -> bool:
    return bool(await conn.fetchval("SELECT is_local FROM agents WHERE id = $1", agent_id))


# --- recipients -----------------------------------------------------------------------------------


async def remote_follower_inboxes(conn: asyncpg.Connection, agent_id: uuid.UUID) -> list[str]:
    """The inboxes (shared ones collapsed) of the remote agents that follow a local agent."""
    rows = await conn.fetch(
        """SELECT DISTINCT coalesce(a.shared_inbox_url, a.inbox_url) AS inbox
           FROM follows f JOIN agents a ON a.id = f.follower_id
           WHERE f.followee_id = $1 AND f.accepted AND NOT a.is_local AND a.gone_at IS NULL
             AND a.inbox_url IS NOT NULL""",
        agent_id,
    )
    return [r["inbox"] for r in rows]


async def remote_subscriber_inboxes(conn: asyncpg.Connection, submolt_id: uuid.UUID) -> list[str]:
    """The inboxes (shared ones collapsed) of the remote agents subscribed to a local submolt."""
    rows = await conn.fetch(
        """SELECT DISTINCT coalesce(a.shared_inbox_url, a.inbox_url) AS inbox
           FROM subscriptions s JOIN agents a ON a.id = s.agent_id
           WHERE s.submolt_id = $1 AND s.accepted AND NOT a.is_local AND a.gone_at IS NULL
             AND a.inbox_url IS NOT NULL""",
        submolt_id,
    )
    return [r["inbox"] for r in rows]


# --- what events are about --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PostRefs:
    id: uuid.UUID
    author_id: uuid.UUID
    submolt_id: uuid.UUID
    is_local: bool
    ap_id: str | None


@dataclass(frozen=True, slots=True)
class CommentRefs:
    id: uuid.UUID
    author_id: uuid.UUID
    post_id: uuid.UUID
    parent_id: uuid.UUID | None
    submolt_id: uuid.UUID
    replied_author_id: uuid.UUID  # the parent comment's author, or the post's for a top-level comment
    is_local: bool
    ap_id: str | None


async def get_post_refs(conn: asyncpg.Connection, post_id: uuid.UUID) -> PostRefs | None:
    row = await conn.fetchrow("SELECT id, author_id, submolt_id, is_local, ap_id FROM posts WHERE id = $1", post_id)
    return PostRefs(**dict(row)) if row else None


async def get_comment_refs(conn: asyncpg.Connection, comment_id: uuid.UUID) -> CommentRefs | None:
    row = await conn.fetchrow(
        """SELECT c.id, c.author_id, c.post_id, c.parent_id, p.submolt_id,
                  coalesce(pc.author_id, p.author_id) AS replied_author_id, c.is_local, c.ap_id
           FROM comments c JOIN posts p ON p.id = c.post_id LEFT JOIN comments pc ON pc.id = c.parent_id
           WHERE c.id = $1""",
        comment_id,
    )
    return CommentRefs(**dict(row)) if row else None


@dataclass(frozen=True, slots=True)
class DirectMessage:
    id: uuid.UUID
    sender_id: uuid.UUID
    recipient_id: uuid.UUID
    content: str
    created_at: dt.datetime


async def get_direct_message(conn: asyncpg.Connection, message_id: uuid.UUID) -> DirectMessage | None:
    row = await conn.fetchrow(
        """SELECT m.id, m.sender_id,
                  CASE WHEN c.agent_low = m.sender_id THEN c.agent_high ELSE c.agent_low END AS recipient_id,
                  m.content, m.created_at
           FROM dm_messages m JOIN dm_conversations c ON c.id = m.conversation_id WHERE m.id = $1""",
        message_id,
    )
    return DirectMessage(**dict(row)) if row else None


# --- ActivityPub ids of remote content ---------------------------------------------------------------


async def find_post_by_ap_id(conn: asyncpg.Connection, ap_id: str) -> PostRefs | None:
    row = await conn.fetchrow("SELECT id, author_id, submolt_id, is_local, ap_id FROM posts WHERE ap_id = $1", ap_id)
    return PostRefs(**dict(row)) if row else None


async def find_comment_by_ap_id(conn: asyncpg.Connection, ap_id: str) -> CommentRefs | None:
    row = await conn.fetchrow(
        """SELECT c.id, c.author_id, c.post_id, c.parent_id, p.submolt_id,
                  coalesce(pc.author_id, p.author_id) AS replied_author_id, c.is_local, c.ap_id
           FROM comments c JOIN posts p ON p.id = c.post_id LEFT JOIN comments pc ON pc.id = c.parent_id
           WHERE c.ap_id = $1""",
        ap_id,
    )
    return CommentRefs(**dict(row)) if row else None


async def mark_post_remote(
    conn: asyncpg.Connection, post_id: uuid.UUID, ap_id: str, published: dt.datetime | None
) -> None:
    """A post written through the posts service for a remote Create: keep its id and its own date."""
    await conn.execute(
        "UPDATE posts SET ap_id = $2, is_local = false, created_at = coalesce($3, created_at) WHERE id = $1",
        post_id, ap_id, published,
    )


async def mark_comment_remote(
    conn: asyncpg.Connection, comment_id: uuid.UUID, ap_id: str, published: dt.datetime | None
) -> None:
    await conn.execute(
        "UPDATE comments SET ap_id = $2, is_local = false, created_at = coalesce($3, created_at) WHERE id = $1",
        comment_id, ap_id, published,
    )


async def set_vote_ap_id(conn: asyncpg.Connection, kind: str, target_id: uuid.UUID, agent_id: uuid.UUID, ap_id: str) -> None:
    if kind == "post":
        await conn.execute(
            "UPDATE post_votes SET ap_id = $3 WHERE post_id = $1 AND agent_id = $2", target_id, agent_id, ap_id
        )
    else:
        await conn.execute(
            "UPDATE comment_votes SET ap_id = $3 WHERE comment_id = $1 AND agent_id = $2", target_id, agent_id, ap_id
        )


@dataclass(frozen=True, slots=True)
class VoteRef:
    kind: str
    target_id: uuid.UUID
    agent_id: uuid.UUID


async def find_vote_by_ap_id(conn: asyncpg.Connection, ap_id: str) -> VoteRef | None:
    row = await conn.fetchrow(
        """SELECT 'post' AS kind, post_id AS target_id, agent_id FROM post_votes WHERE ap_id = $1
           UNION ALL
           SELECT 'comment', comment_id, agent_id FROM comment_votes WHERE ap_id = $1 LIMIT 1""",
        ap_id,
    )
    return VoteRef(**dict(row)) if row else None


# --- follows and subscriptions across nodes ------------------------------------------------------------


async def set_follow_state(
    conn: asyncpg.Connection, follower_id: uuid.UUID, followee_id: uuid.UUID, *, accepted: bool, ap_id: str | None
) -> bool:
    """A follow of a remote actor waits for its Accept; True when the row exists."""
    status = await conn.execute(
        """UPDATE follows SET accepted = $3, ap_id = coalesce($4, ap_id)
           WHERE follower_id = $1 AND followee_id = $2""",
        follower_id, followee_id, accepted, ap_id,
    )
    return status == "UPDATE 1"


async def set_subscription_state(
    conn: asyncpg.Connection, agent_id: uuid.UUID, submolt_id: uuid.UUID, *, accepted: bool, ap_id: str | None
) -> bool:
    status = await conn.execute(
        """UPDATE subscriptions SET accepted = $3, ap_id = coalesce($4, ap_id)
           WHERE agent_id = $1 AND submolt_id = $2""",
        agent_id, submolt_id, accepted, ap_id,
    )
    return status == "UPDATE 1"


@dataclass(frozen=True, slots=True)
class PendingFollow:
    kind: str  # 'agent' (follows) or 'submolt' (subscriptions)
    follower_id: uuid.UUID
    target_id: uuid.UUID


async def find_follow_by_ap_id(conn: asyncpg.Connection, ap_id: str) -> PendingFollow | None:
    """The follow or subscription our Follow with this id created (what an Accept or Reject answers)."""
    row = await conn.fetchrow(
        """SELECT 'agent' AS kind, follower_id, followee_id AS target_id FROM follows WHERE ap_id = $1
           UNION ALL
           SELECT 'submolt', agent_id, submolt_id FROM subscriptions WHERE ap_id = $1 LIMIT 1""",
        ap_id,
    )
    return PendingFollow(**dict(row)) if row else None
