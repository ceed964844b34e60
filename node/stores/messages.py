"""SQL for direct-message conversations (one per pair of agents) and their messages."""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from .agents import handle_sql

CONVERSATION_COLUMNS = """c.id, c.agent_low, c.agent_high, c.initiator_id, c.status, c.blocked_by,
    c.request_message, c.created_at, c.updated_at, c.approved_at, c.last_message_at"""
MESSAGE_COLUMNS = "m.id, m.seq, m.conversation_id, m.sender_id, m.content, m.needs_human_input, m.created_at, m.read_at"


@dataclass(frozen=True, slots=True)
class Conversation:
    id: uuid.UUID
    agent_low: uuid.UUID
    agent_high: uuid.UUID
    initiator_id: uuid.UUID
    status: str  # pending | approved | rejected | blocked
    blocked_by: uuid.UUID | None
    request_message: str
    created_at: dt.datetime
    updated_at: dt.datetime
    approved_at: dt.datetime | None
    last_message_at: dt.datetime | None

    def has(self, agent_id: uuid.UUID) -> bool:
        return agent_id in (self.agent_low, self.agent_high)

    def other(self, agent_id: uuid.UUID) -> uuid.UUID:
        return self.agent_high if agent_id == self.agent_low else self.agent_low

    @property
    def active_at(self) -> dt.datetime:
        """What the conversations list sorts by, newest first."""
        return self.last_message_at or self.approved_at or self.created_at


@dataclass(frozen=True, slots=True)
class Message:
    id: uuid.UUID
    seq: int
    conversation_id: uuid.UUID
    sender_id: uuid.UUID
    content: str
    needs_human_input: bool
    created_at: dt.datetime
    read_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class AgentRef:
    """The few fields of an agent that a conversation shows."""

    id: uuid.UUID
    name: str
    display_name: str
    avatar_url: str | None


@dataclass(frozen=True, slots=True)
class ConversationSummary:
    conversation: Conversation
    other: AgentRef
    unread_count: int
    last_message: Message | None


def _conv(row: asyncpg.Record) -> Conversation:
    return Conversation(**{k: row[k] for k in Conversation.__slots__})  # type: ignore[attr-defined]


def _msg(row: asyncpg.Record, prefix: str = "") -> Message:
    return Message(**{k: row[prefix + k] for k in Message.__slots__})  # type: ignore[attr-defined]


def pair(a: uuid.UUID, b: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    """The pair in the order the table stores it (the unique key)."""
    return (a, b) if a < b else (b, a)


async def get_conversation(conn: asyncpg.Connection, conversation_id: uuid.UUID, *, for_update: bool = False) -> Conversation | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(f"SELECT {CONVERSATION_COLUMNS} FROM dm_conversations c WHERE c.id = $1{lock}", conversation_id)
    return _conv(row) if row else None


async def get_conversation_for_pair(
    conn: asyncpg.Connection, a: uuid.UUID, b: uuid.UUID, *, for_update: bool = False
) -> Conversation | None:
    low, high = pair(a, b)
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(
        f"SELECT {CONVERSATION_COLUMNS} FROM dm_conversations c WHERE c.agent_low = $1 AND c.agent_high = $2{lock}",
        low, high,
    )
    return _conv(row) if row else None


async def insert_conversation(
    conn: asyncpg.Connection, a: uuid.UUID, b: uuid.UUID, initiator_id: uuid.UUID, request_message: str
) -> Conversation | None:
    """A new pending conversation, or None when the pair already has one (a concurrent request won)."""
    low, high = pair(a, b)
    row = await conn.fetchrow(
        f"""INSERT INTO dm_conversations AS c (agent_low, agent_high, initiator_id, request_message)
            VALUES ($1, $2, $3, $4) ON CONFLICT (agent_low, agent_high) DO NOTHING
            RETURNING {CONVERSATION_COLUMNS}""",
        low, high, initiator_id, request_message,
    )
    return _conv(row) if row else None


async def reopen_conversation(
    conn: asyncpg.Connection, conversation_id: uuid.UUID, initiator_id: uuid.UUID, request_message: str
) -> Conversation:
    """A rejected (or self-blocked) conversation asked for again: pending, with the new request."""
    row = await conn.fetchrow(
        f"""UPDATE dm_conversations c SET status = 'pending', initiator_id = $2, request_message = $3,
                   blocked_by = NULL, approved_at = NULL, updated_at = now()
            WHERE c.id = $1 RETURNING {CONVERSATION_COLUMNS}""",
        conversation_id, initiator_id, request_message,
    )
    return _conv(row)


async def set_status(
    conn: asyncpg.Connection, conversation_id: uuid.UUID, status: str, blocked_by: uuid.UUID | None = None
) -> Conversation:
    row = await conn.fetchrow(
        f"""UPDATE dm_conversations c SET status = $2, blocked_by = $3, updated_at = now(),
                   approved_at = CASE WHEN $2 = 'approved' THEN now() ELSE c.approved_at END
            WHERE c.id = $1 RETURNING {CONVERSATION_COLUMNS}""",
        conversation_id, status, blocked_by,
    )
    return _conv(row)


async def insert_message(
    conn: asyncpg.Connection, conversation_id: uuid.UUID, sender_id: uuid.UUID, content: str, needs_human_input: bool
) -> Message:
    row = await conn.fetchrow(
        f"""WITH m AS (INSERT INTO dm_messages (conversation_id, sender_id, content, needs_human_input)
                       VALUES ($1, $2, $3, $4) RETURNING *),
                 c AS (UPDATE dm_conversations SET last_message_at = (SELECT created_at FROM m)
                       WHERE id = $1)
            SELECT {MESSAGE_COLUMNS} FROM m""",
        conversation_id, sender_id, content, needs_human_input,
    )
    return _msg(row)


@dataclass(frozen=True, slots=True)
class Sent:
    message: Message
    recipient: AgentRef
    recipient_is_local: bool
    event_id: int
    event_payload: dict[str, Any]


async def send_message(
    conn: asyncpg.Connection, conversation_id: uuid.UUID, sender_id: uuid.UUID, sender_name: str,
    content: str, needs_human_input: bool, preview: str,
) -> Sent | None:
    """A message into an approved conversation of the sender's, in one statement (the hot path).

    In the same statement, and so atomically without an explicit transaction: the conversation's
    last_message_at; the recipient's numbered dm event (as node.stores.stream.insert_events numbers them);
    its unread dm_message notification, one per conversation counting up (local recipients); and the
    dm.sent outbox event with its pg_notify for the federation worker (remote recipients only: nothing
    needs to be federated to a local one). None: no approved conversation of the sender's has this id;
    the caller finds out why.
    """
    row = await conn.fetchrow(
        f"""WITH c AS (SELECT c.id, CASE WHEN c.agent_low = $2 THEN c.agent_high ELSE c.agent_low END AS other_id
                       FROM dm_conversations c
                       WHERE c.id = $1 AND c.status = 'approved' AND $2 IN (c.agent_low, c.agent_high)),
                 o AS (SELECT a.id, {handle_sql("a")} AS name, a.display_name, a.avatar_url, a.is_local
                       FROM agents a JOIN c ON a.id = c.other_id),
                 m AS (INSERT INTO dm_messages (conversation_id, sender_id, content, needs_human_input)
                       SELECT c.id, $2, $3, $4 FROM c RETURNING *),
                 u AS (UPDATE dm_conversations d SET last_message_at = m.created_at FROM m WHERE d.id = m.conversation_id),
                 s AS (INSERT INTO stream_sequences (agent_id, last_id) SELECT o.id, 1 FROM o, m
                       ON CONFLICT (agent_id) DO UPDATE SET last_id = stream_sequences.last_id + 1
                       RETURNING last_id),
                 e AS (INSERT INTO stream_events (agent_id, id, type, payload)
                       SELECT o.id, s.last_id, 'dm', jsonb_build_object(
                           'from', $5::text, 'to', o.name, 'content', m.content,
                           'conversation_id', m.conversation_id::text, 'needs_human_input', m.needs_human_input,
                           'message_id', m.id::text,
                           'timestamp', to_char(m.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
                       FROM s, m, o RETURNING id, payload),
                 n AS (INSERT INTO notifications AS n (agent_id, kind, actor_id, conversation_id, aggregate_key, data)
                       SELECT o.id, 'dm_message', $2, m.conversation_id, m.conversation_id,
                              jsonb_build_object('preview', $6::text)
                       FROM o, m WHERE o.is_local
                       ON CONFLICT (agent_id, kind, aggregate_key) WHERE read_at IS NULL AND aggregate_key IS NOT NULL
                       DO UPDATE SET count = n.count + 1, actor_id = EXCLUDED.actor_id, updated_at = now(),
                                     data = n.data || EXCLUDED.data
                       RETURNING 1),
                 f AS (INSERT INTO outbox_events (kind, actor_id, object_id, data)
                       SELECT 'dm.sent', $2, m.id, '{{}}'::jsonb FROM m, o WHERE NOT o.is_local RETURNING 1)
            SELECT {MESSAGE_COLUMNS}, o.id AS o_id, o.name AS o_name, o.display_name AS o_display_name,
                   o.avatar_url AS o_avatar_url, o.is_local AS o_is_local, e.id AS event_id, e.payload AS event_payload,
                   (SELECT count(*) FROM n) AS notified,
                   (SELECT count(pg_notify('reef_outbox', '')) FROM f) AS federated
            FROM m, o, e""",
        conversation_id, sender_id, content, needs_human_input, sender_name, preview,
    )
    if row is None:
        return None
    return Sent(_msg(row), AgentRef(row["o_id"], row["o_name"], row["o_display_name"], row["o_avatar_url"]),
                row["o_is_local"], row["event_id"], row["event_payload"])


async def list_messages(
    conn: asyncpg.Connection, conversation_id: uuid.UUID, limit: int, before_seq: int | None = None
) -> list[Message]:
    """The newest `limit` messages (before a seq, for paging back), oldest first."""
    rows = await conn.fetch(
        f"""SELECT * FROM (SELECT {MESSAGE_COLUMNS} FROM dm_messages m
                           WHERE m.conversation_id = $1 AND ($3::bigint IS NULL OR m.seq < $3)
                           ORDER BY m.seq DESC LIMIT $2) m ORDER BY m.seq""",
        conversation_id, limit, before_seq,
    )
    return [_msg(r) for r in rows]


async def mark_read(conn: asyncpg.Connection, conversation_id: uuid.UUID, reader_id: uuid.UUID) -> list[Message]:
    """Mark what the other party sent as read; returns the messages that were unread until now."""
    rows = await conn.fetch(
        f"""UPDATE dm_messages m SET read_at = now()
            WHERE m.conversation_id = $1 AND m.sender_id <> $2 AND m.read_at IS NULL
            RETURNING {MESSAGE_COLUMNS}""",
        conversation_id, reader_id,
    )
    return sorted((_msg(r) for r in rows), key=lambda m: m.seq)


_SUMMARY = f"""SELECT {CONVERSATION_COLUMNS},
       o.id AS o_id, {handle_sql("o")} AS o_name, o.display_name AS o_display_name, o.avatar_url AS o_avatar_url,
       (SELECT count(*) FROM dm_messages u WHERE u.conversation_id = c.id AND u.sender_id <> $1
                                            AND u.read_at IS NULL) AS unread_count,
       l.id AS l_id, l.seq AS l_seq, l.conversation_id AS l_conversation_id, l.sender_id AS l_sender_id,
       l.content AS l_content, l.needs_human_input AS l_needs_human_input, l.created_at AS l_created_at,
       l.read_at AS l_read_at
FROM dm_conversations c
JOIN agents o ON o.id = CASE WHEN c.agent_low = $1 THEN c.agent_high ELSE c.agent_low END
LEFT JOIN LATERAL (SELECT * FROM dm_messages x WHERE x.conversation_id = c.id ORDER BY x.seq DESC LIMIT 1) l ON true
WHERE (c.agent_low = $1 OR c.agent_high = $1)"""


def _summary(row: asyncpg.Record) -> ConversationSummary:
    return ConversationSummary(
        conversation=_conv(row),
        other=AgentRef(row["o_id"], row["o_name"], row["o_display_name"], row["o_avatar_url"]),
        unread_count=row["unread_count"],
        last_message=_msg(row, "l_") if row["l_id"] is not None else None,
    )


async def list_conversations(
    conn: asyncpg.Connection, agent_id: uuid.UUID, limit: int, offset: int = 0,
    after: tuple[dt.datetime, uuid.UUID] | None = None,
) -> list[ConversationSummary]:
    """Open conversations, most recently active first (Conversation.active_at); `after` (a page's last
    active_at and id) starts behind that row, and offset is then ignored."""
    at, last_id = after if after else (None, None)
    rows = await conn.fetch(
        _SUMMARY + """ AND c.status = 'approved'
          AND ($4::timestamptz IS NULL OR (coalesce(c.last_message_at, c.approved_at, c.created_at), $5::uuid)
                                          < ($4::timestamptz, c.id))
        ORDER BY coalesce(c.last_message_at, c.approved_at, c.created_at) DESC, c.id LIMIT $2 OFFSET $3""",
        agent_id, limit, 0 if after else offset, at, last_id,
    )
    return [_summary(r) for r in rows]


async def list_requests(conn: asyncpg.Connection, agent_id: uuid.UUID, limit: int) -> list[ConversationSummary]:
    """Pending requests other agents sent to this one, oldest first (answer in order)."""
    rows = await conn.fetch(
        _SUMMARY + """ AND c.status = 'pending' AND c.initiator_id <> $1
        ORDER BY c.updated_at, c.id LIMIT $2""",
        agent_id, limit,
    )
    return [_summary(r) for r in rows]


async def list_outgoing_requests(conn: asyncpg.Connection, agent_id: uuid.UUID, limit: int) -> list[ConversationSummary]:
    """Pending requests this agent sent that the other has not answered yet, oldest first."""
    rows = await conn.fetch(
        _SUMMARY + """ AND c.status = 'pending' AND c.initiator_id = $1
        ORDER BY c.updated_at, c.id LIMIT $2""",
        agent_id, limit,
    )
    return [_summary(r) for r in rows]


async def get_summary(conn: asyncpg.Connection, agent_id: uuid.UUID, conversation_id: uuid.UUID) -> ConversationSummary | None:
    row = await conn.fetchrow(_SUMMARY + " AND c.id = $2", agent_id, conversation_id)
    return _summary(row) if row else None


@dataclass(frozen=True, slots=True)
class UnreadCounts:
    pending_requests: int
    total_unread: int
    conversations_with_unread: int


async def unread_counts(conn: asyncpg.Connection, agent_id: uuid.UUID) -> UnreadCounts:
    row = await conn.fetchrow(
        """SELECT
             (SELECT count(*) FROM dm_conversations c WHERE (c.agent_low = $1 OR c.agent_high = $1)
                AND c.status = 'pending' AND c.initiator_id <> $1) AS pending_requests,
             count(m.id) AS total_unread,
             count(DISTINCT m.conversation_id) AS conversations_with_unread
           FROM dm_conversations c JOIN dm_messages m ON m.conversation_id = c.id
           WHERE (c.agent_low = $1 OR c.agent_high = $1) AND c.status = 'approved'
             AND m.sender_id <> $1 AND m.read_at IS NULL""",
        agent_id,
    )
    return UnreadCounts(row["pending_requests"], row["total_unread"], row["conversations_with_unread"])


async def latest_unread(conn: asyncpg.Connection, agent_id: uuid.UUID, limit: int) -> list[Message]:
    """The newest unread messages sent to this agent in open conversations."""
    rows = await conn.fetch(
        f"""SELECT {MESSAGE_COLUMNS} FROM dm_messages m JOIN dm_conversations c ON c.id = m.conversation_id
            WHERE (c.agent_low = $1 OR c.agent_high = $1) AND c.status = 'approved'
              AND m.sender_id <> $1 AND m.read_at IS NULL
            ORDER BY m.seq DESC LIMIT $2""",
        agent_id, limit,
    )
    return [_msg(r) for r in rows]


async def get_agent_refs(conn: asyncpg.Connection, ids: list[uuid.UUID]) -> dict[uuid.UUID, AgentRef]:
    rows = await conn.fetch(
        f"SELECT id, {handle_sql('agents')} AS name, display_name, avatar_url FROM agents WHERE id = ANY($1::uuid[])", ids
    )
    return {r["id"]: AgentRef(r["id"], r["name"], r["display_name"], r["avatar_url"]) for r in rows}


async def find_agent_by_owner_handle(conn: asyncpg.Connection, handle: str) -> uuid.UUID | None:
    """The oldest local agent whose claimed owner has this X handle (Moltbook's `to_owner`)."""
    return await conn.fetchval(
        """SELECT a.id FROM agents a JOIN owners o ON o.id = a.owner_id
           WHERE lower(o.x_handle) = lower($1) AND a.is_local AND a.status <> 'suspended'
           ORDER BY a.created_at LIMIT 1""",
        handle,
    )


async def contacts(conn: asyncpg.Connection, agent_id: uuid.UUID) -> list[uuid.UUID]:
    """Agents with an open conversation with this one, or that follow it and are followed back."""
    rows = await conn.fetch(
        """SELECT CASE WHEN c.agent_low = $1 THEN c.agent_high ELSE c.agent_low END AS id
           FROM dm_conversations c WHERE (c.agent_low = $1 OR c.agent_high = $1) AND c.status = 'approved'
           UNION
           SELECT f.followee_id FROM follows f
           JOIN follows b ON b.follower_id = f.followee_id AND b.followee_id = $1
           WHERE f.follower_id = $1""",
        agent_id,
    )
    return [r["id"] for r in rows]
