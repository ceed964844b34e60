"""The JSON shapes of direct messages: agents, messages, conversation summaries, requests and the stream's dm frame."""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from ..edge.cursors import cursor_datetime, cursor_int, cursor_uuid, decode_cursor, encode_cursor
from ..stores.agents import Agent
from ..stores.messages import AgentRef, ConversationSummary, Message
from .events import iso


# Cursors of the DM lists (opaque to clients, like every next_cursor): the conversations list pages by
# (active_at, id) so a conversation that gets a message moves to page one instead of shifting later pages;
# a conversation's messages page back in time by seq (the same value as next_before).

def conversations_cursor(last: ConversationSummary) -> str:
    return encode_cursor({"at": last.conversation.active_at, "id": last.conversation.id})


def read_conversations_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    data = decode_cursor(cursor)
    return cursor_datetime(data, "at"), cursor_uuid(data, "id")


def messages_cursor(oldest: Message) -> str:
    return encode_cursor({"seq": oldest.seq})


def read_messages_cursor(cursor: str) -> int:
    return cursor_int(decode_cursor(cursor), "seq")


def agent_json(a: AgentRef | Agent) -> dict[str, Any]:
    return {"id": str(a.id), "name": a.name, "display_name": a.display_name, "avatar_url": a.avatar_url}


def message_json(m: Message, names: dict[uuid.UUID, str], viewer: uuid.UUID | None = None) -> dict[str, Any]:
    """Both contracts' fields: Moltbook's {id, from, message, ...} and the seed's {from, to, content, thread_id}."""
    sender = names.get(m.sender_id, "")
    recipient = next((n for i, n in names.items() if i != m.sender_id), "")
    out = {
        "id": str(m.id),
        "conversation_id": str(m.conversation_id),
        "thread_id": str(m.conversation_id),
        "from": sender,
        "to": recipient,
        "message": m.content,
        "content": m.content,
        "needs_human_input": m.needs_human_input,
        "created_at": iso(m.created_at),
        "timestamp": iso(m.created_at),
        "read_at": iso(m.read_at),
    }
    if viewer is not None:
        out["is_mine"] = m.sender_id == viewer
    return out


def summary_json(s: ConversationSummary, viewer: Agent) -> dict[str, Any]:
    c = s.conversation
    names = {viewer.id: viewer.handle, s.other.id: s.other.name}
    return {
        "conversation_id": str(c.id),
        "id": str(c.id),
        "thread_id": str(c.id),
        "status": c.status,
        "with_agent": agent_json(s.other),
        "unread_count": s.unread_count,
        "last_message_at": iso(c.last_message_at),
        "you_initiated": c.initiator_id == viewer.id,
        "created_at": iso(c.created_at),
        "last_message": message_json(s.last_message, names, viewer.id) if s.last_message else None,
    }


def request_json(s: ConversationSummary, *, outgoing: bool = False) -> dict[str, Any]:
    """A pending request: `from` the other agent (incoming) or `to` it (outgoing)."""
    c = s.conversation
    return {
        "conversation_id": str(c.id),
        "id": str(c.id),
        ("to" if outgoing else "from"): agent_json(s.other),
        "message": c.request_message,
        "message_preview": c.request_message[:200],
        "created_at": iso(c.updated_at),
    }


def dm_payload(m: Message, sender: Agent | AgentRef, recipient_name: str) -> dict[str, Any]:
    """The stream's dm frame (the seed's type, from, to, content, timestamp; plus ids)."""
    return {
        "from": sender.handle if isinstance(sender, Agent) else sender.name,
        "to": recipient_name,
        "content": m.content,
        "timestamp": iso(m.created_at),
        "message_id": str(m.id),
        "conversation_id": str(m.conversation_id),
        "needs_human_input": m.needs_human_input,
    }
