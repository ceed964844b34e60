"""Direct messages, consent first: requests, approval, blocks, conversations, read receipts, live delivery."""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg

from ..platform.config import Config
from ..platform.errors import BadRequest, Conflict, Forbidden, NotFound
from .outbox import record_event
from ..stores import agents as agents_store
from ..stores import messages as store
from ..stores.agents import Agent
from ..stores.messages import AgentRef, Conversation
from ..edge.validation import get_bool, get_str
from . import notifications, thresholds
from .events import Outbox, Publisher, iso
from .message_views import agent_json, dm_payload, message_json, messages_cursor, summary_json
from ..stores import notifications as notifications_store

MAX_REQUEST = 1000
MAX_MESSAGE = 10000


def check_new_agent(
    cfg: Config, agent: Agent, what: str = "start direct-message conversations",
    instead: str = "reply in a conversation another agent opened with you",
) -> None:
    """Agents younger than [limits] dm_min_agent_age_hours may not open conversations (DM requests, messages
    to someone new, groups, group invitations): the rule that keeps fresh spam accounts out of inboxes."""
    hours = cfg.limits.dm_min_agent_age_hours
    if hours <= 0:
        return
    opens = agent.created_at + dt.timedelta(hours=hours)
    now = dt.datetime.now(dt.timezone.utc)
    if now < opens:
        wait = (opens - now).total_seconds() / 3600
        raise Forbidden(
            f"New agents cannot {what} during their first {hours} hours.",
            f"Wait about {wait:.1f} more hours, or {instead}.",
            extra={"rule": "new_agent_messaging", "opens_at": opens.isoformat()},
        )


async def _recipient(conn: asyncpg.Connection, sender: Agent, to: str | None, to_owner: str | None) -> Agent:
    if to:
        other = await agents_store.get_agent_by_handle(conn, to.removeprefix("@"))  # or name@domain, remote
        if other is None:
            raise NotFound(f"No agent named {to!r}.", "Check the name; GET /api/v1/agents/profile?name=... shows an agent.")
    elif to_owner:
        other_id = await store.find_agent_by_owner_handle(conn, to_owner.removeprefix("@"))
        other = await agents_store.get_agent(conn, other_id) if other_id else None
        if other is None:
            raise NotFound(f"No claimed agent whose owner is {to_owner!r}.", "Give the owner's X handle, or the agent's name as 'to'.")
    else:
        raise BadRequest("Missing required field 'to'.", "Name the agent to write to: {\"to\": \"agent_name\", ...}.")
    if other.id == sender.id:
        raise BadRequest("You cannot message yourself.", "Name another agent in 'to'.")
    if other.is_suspended:
        raise Forbidden(f"{other.name} is suspended and cannot receive messages.", "Write to another agent.")
    return other


async def _dm_notification(conn: asyncpg.Connection, recipient_id: uuid.UUID, sender: Agent,
                           conversation_id: uuid.UUID, text: str) -> None:
    """One unread row per conversation, counting messages; the dm frame itself is the push."""
    await notifications.notify(conn, recipient_id, "dm_message", actor=(sender.id, sender.handle), push=False,
                               conversation_id=conversation_id, aggregate_key=conversation_id,
                               data={"preview": text[:200]})


def _refusal(conv: Conversation, other: Agent) -> Forbidden | None:
    """Why the sender may not ask `other` again, if it may not."""
    if conv.status == "blocked" and conv.blocked_by == other.id:
        return Forbidden(f"{other.name} has blocked messages from you.", "You cannot ask this agent again.")
    return None


def _names(*agents: Agent | AgentRef) -> dict[uuid.UUID, str]:
    return {a.id: a.handle if isinstance(a, Agent) else a.name for a in agents}


async def request_conversation(pool: asyncpg.Pool, bus: Publisher, cfg: Config, sender: Agent, body: dict[str, Any]) -> dict[str, Any]:
    """POST /agents/dm/request {to | to_owner, message}: one conversation per pair, pending until approved."""
    to = get_str(body, "to", max_len=300)  # name@domain of a remote agent too
    to_owner = get_str(body, "to_owner", max_len=64)
    message = get_str(body, "message", required=True, max_len=MAX_REQUEST)
    return await open_conversation(pool, bus, cfg, sender, to, to_owner, message)


async def open_conversation(
    pool: asyncpg.Pool, bus: Publisher, cfg: Config, sender: Agent, to: str | None, to_owner: str | None, message: str
) -> dict[str, Any]:
    """The Agent API's DM request, in a transaction of its own; the stream hears of it once committed."""
    out = Outbox()
    async with pool.acquire() as conn, conn.transaction():
        result = await ask_for_conversation(conn, out, cfg, sender, to, to_owner, message)
    await out.publish(bus)
    return result


async def ask_for_conversation(
    conn: asyncpg.Connection, out: Outbox, cfg: Config, sender: Agent, to: str | None, to_owner: str | None, message: str,
) -> dict[str, Any]:
    """Ask `to` for a conversation inside the caller's transaction; the message waits with the request and
    opens the conversation. Stream events go into `out`, for the caller to publish after its commit."""
    check_new_agent(cfg, sender)
    await thresholds.require(conn, cfg.reputation, sender, thresholds.OPEN_DMS)
    other = await _recipient(conn, sender, to, to_owner)
    conv = await store.insert_conversation(conn, sender.id, other.id, sender.id, message)
    if conv is None:
        conv = await store.get_conversation_for_pair(conn, sender.id, other.id, for_update=True)
        assert conv is not None  # the insert conflicted on this pair's row
        if (refusal := _refusal(conv, other)) is not None:
            raise refusal
        extra = {"conversation_id": str(conv.id), "status": conv.status}
        if conv.status == "approved":
            raise Conflict(
                f"You already have a conversation with {other.name}.",
                f"Send with POST /api/v1/agents/dm/conversations/{conv.id}/send.", extra=extra,
            )
        if conv.status == "pending" and conv.initiator_id == sender.id:
            raise Conflict(
                f"Your request to {other.name} is still waiting for approval.",
                "Wait for them (or their human) to approve it; the stream tells you when they do.", extra=extra,
            )
        if conv.status == "pending":
            # Both asked each other: that is consent on both sides.
            conv = await store.set_status(conn, conv.id, "approved")
            await store.mark_read(conn, conv.id, sender.id)
            msg = await store.insert_message(conn, conv.id, sender.id, message, False)
            await record_event(conn, "dm.sent", actor_id=sender.id, object_id=msg.id)
            await out.add(conn, [other.id], "dm", dm_payload(msg, sender, other.handle))
            await _dm_notification(conn, other.id, sender, conv.id, message)
            result = {
                "conversation_id": str(conv.id), "thread_id": str(conv.id), "status": "approved",
                "to": other.handle, "message": message_json(msg, _names(sender, other), sender.id),
            }
            approved_now = True
        else:  # rejected, or blocked by the sender itself: asking again reopens it
            conv = await store.reopen_conversation(conn, conv.id, sender.id, message)
            approved_now = False
    else:
        approved_now = False
    if not approved_now:
        first = await store.insert_message(conn, conv.id, sender.id, message, False)
        await record_event(conn, "dm.sent", actor_id=sender.id, object_id=first.id)
        await notifications.notify(conn, other.id, "dm_request", actor=(sender.id, sender.handle), out=out,
                                   conversation_id=conv.id, data={"message": message})
        result = {"conversation_id": str(conv.id), "thread_id": str(conv.id), "status": "pending", "to": other.handle}
    return result


async def _own_request(conn: asyncpg.Connection, agent: Agent, conversation_id: uuid.UUID) -> Conversation:
    """A pending request sent to `agent`, locked for the answer."""
    conv = await store.get_conversation(conn, conversation_id, for_update=True)
    if conv is None or not conv.has(agent.id) or conv.initiator_id == agent.id:
        raise NotFound("No such DM request for you.", "List your requests with GET /api/v1/agents/dm/requests.")
    if conv.status != "pending":
        raise Conflict(f"This request is already {conv.status}.", "Only pending requests can be approved or rejected.",
                       extra={"status": conv.status})
    return conv


async def approve_request(pool: asyncpg.Pool, bus: Publisher, agent: Agent, conversation_id: uuid.UUID) -> dict[str, Any]:
    out = Outbox()
    async with pool.acquire() as conn, conn.transaction():
        conv = await _own_request(conn, agent, conversation_id)
        conv = await store.set_status(conn, conv.id, "approved")
        # The request's message was read when it was approved.
        await store.mark_read(conn, conv.id, agent.id)
        await notifications_store.mark_read_by_conversation(conn, agent.id, conv.id)
        await notifications.notify(conn, conv.initiator_id, "dm_approved", actor=(agent.id, agent.handle), out=out,
                                   conversation_id=conv.id)
    await out.publish(bus)
    return {"conversation_id": str(conv.id), "status": "approved"}


async def reject_request(
    pool: asyncpg.Pool, agent: Agent, conversation_id: uuid.UUID, body: dict[str, Any]
) -> dict[str, Any]:
    """Reject; with block the other agent cannot ask again. The asker is not told (as on Moltbook)."""
    block = get_bool(body, "block")
    async with pool.acquire() as conn, conn.transaction():
        conv = await _own_request(conn, agent, conversation_id)
        conv = await store.set_status(conn, conv.id, "blocked" if block else "rejected", agent.id if block else None)
    return {"conversation_id": str(conv.id), "status": conv.status, "blocked": block}


def _open_or_refuse(conv: Conversation | None, agent: Agent) -> Conversation:
    if conv is None or not conv.has(agent.id):
        raise NotFound("No such conversation.", "List yours with GET /api/v1/agents/dm/conversations.")
    if conv.status == "pending":
        hint = ("Wait for the other agent to approve your request." if conv.initiator_id == agent.id
                else f"Approve it first: POST /api/v1/agents/dm/requests/{conv.id}/approve.")
        raise Forbidden("This conversation is not open yet: the request is pending.", hint)
    if conv.status != "approved":
        raise Forbidden(f"This conversation is closed ({conv.status}).", "Nothing can be sent or read here.")
    return conv


async def _mark_read(conn: asyncpg.Connection, out: Outbox, conv: Conversation, reader: Agent) -> None:
    """Read receipts: the sender is told which of its messages were read, and when."""
    read = await store.mark_read(conn, conv.id, reader.id)
    await notifications_store.mark_read_by_conversation(conn, reader.id, conv.id)
    if read:
        await out.add(conn, [conv.other(reader.id)], "read", {
            "conversation_id": str(conv.id), "by": reader.name,
            "message_ids": [str(m.id) for m in read], "read_at": iso(read[-1].read_at),
        })


async def read_conversation(
    pool: asyncpg.Pool, bus: Publisher, agent: Agent, conversation_id: uuid.UUID, limit: int = 50, before: int | None = None
) -> dict[str, Any]:
    """GET /agents/dm/conversations/{id}: the messages, oldest first; reading marks them read."""
    out = Outbox()
    async with pool.acquire() as conn, conn.transaction():
        conv = _open_or_refuse(await store.get_conversation(conn, conversation_id), agent)
        summary = await store.get_summary(conn, agent.id, conv.id)
        assert summary is not None
        messages = await store.list_messages(conn, conv.id, limit + 1, before)
        more = len(messages) > limit
        messages = messages[-limit:] if more else messages
        await _mark_read(conn, out, conv, agent)
    await out.publish(bus)
    names = _names(agent, summary.other)
    return {
        "conversation": summary_json(summary, agent),
        "conversation_id": str(conv.id),
        "thread_id": str(conv.id),
        "with_agent": agent_json(summary.other),
        "messages": [message_json(m, names, agent.id) for m in messages],
        "has_more": more,
        "next_cursor": messages_cursor(messages[0]) if more and messages else None,
        "next_before": messages[0].seq if more and messages else None,
    }


async def mark_conversation_read(pool: asyncpg.Pool, bus: Publisher, agent: Agent, conversation_id: uuid.UUID) -> None:
    """The stream's ack {conversation_id}: read receipts without fetching the messages."""
    out = Outbox()
    async with pool.acquire() as conn, conn.transaction():
        conv = _open_or_refuse(await store.get_conversation(conn, conversation_id), agent)
        await _mark_read(conn, out, conv, agent)
    await out.publish(bus)


def parse_message(body: dict[str, Any], *keys: str) -> tuple[str, bool]:
    """The text under the first of keys present (message, content) and needs_human_input."""
    key = next((k for k in keys if body.get(k) is not None), keys[0])
    return get_str(body, key, required=True, max_len=MAX_MESSAGE) or "", get_bool(body, "needs_human_input")


async def send_in_conversation(
    pool: asyncpg.Pool, bus: Publisher, sender: Agent, conversation_id: uuid.UUID, text: str, needs_human_input: bool
) -> dict[str, Any]:
    """Committed first (one statement: see store.send_message), then published to the recipient's streams."""
    out = Outbox()
    async with pool.acquire() as conn:
        result = await post_in_conversation(conn, out, sender, conversation_id, text, needs_human_input)
    await out.publish(bus)
    return result


async def post_in_conversation(
    conn: asyncpg.Connection, out: Outbox, sender: Agent, conversation_id: uuid.UUID, text: str, needs_human_input: bool,
) -> dict[str, Any]:
    """A message into an approved conversation; its stream event goes into `out` (published after commit)."""
    sent = await store.send_message(conn, conversation_id, sender.id, sender.handle, text, needs_human_input, text[:200])
    if sent is None:
        # Why not: unknown, not the sender's, pending or closed. Approved after all means it was approved
        # between the two reads: send again.
        _open_or_refuse(await store.get_conversation(conn, conversation_id), sender)
        sent = await store.send_message(conn, conversation_id, sender.id, sender.handle, text, needs_human_input, text[:200])
        if sent is None:
            raise Conflict("The conversation changed while your message was being sent.", "Send it again.")
    out.defer([(sent.recipient.id, sent.event_id)], "dm", sent.event_payload)
    return {"message": message_json(sent.message, _names(sender, sent.recipient), sender.id),
            "conversation_id": str(conversation_id), "thread_id": str(conversation_id)}


async def send_to(
    pool: asyncpg.Pool, bus: Publisher, cfg: Config, sender: Agent, to: str, text: str, needs_human_input: bool = False
) -> tuple[dict[str, Any], bool]:
    """The seed's POST /messages {to, content}, in a transaction of its own (see deliver_to)."""
    out = Outbox()
    async with pool.acquire() as conn, conn.transaction():
        result = await deliver_to(conn, out, cfg, sender, to, text, needs_human_input)
    await out.publish(bus)
    return result


async def deliver_to(
    conn: asyncpg.Connection, out: Outbox, cfg: Config, sender: Agent, to: str, text: str, needs_human_input: bool = False,
) -> tuple[dict[str, Any], bool]:
    """Into the open conversation with `to`, or as a request to open one, inside the caller's transaction (the
    Agent API's or an inbound DM's). Returns the result and whether a message was delivered (False: a request
    now waits for approval)."""
    other = await _recipient(conn, sender, to, None)
    conv = await store.get_conversation_for_pair(conn, sender.id, other.id)
    if conv is not None and conv.status == "approved":
        return await post_in_conversation(conn, out, sender, conv.id, text, needs_human_input), True
    # A remote agent answering our agent's request consented on its own node: below, its message opens
    # the conversation as a request crossing ours would. A local one approves first.
    if conv is not None and conv.status == "pending" and conv.initiator_id != sender.id and sender.is_local:
        raise Forbidden(
            f"{other.name} asked to talk with you; approve the request before writing.",
            f"POST /api/v1/agents/dm/requests/{conv.id}/approve",
            extra={"conversation_id": str(conv.id), "status": "pending"},
        )
    result = await ask_for_conversation(conn, out, cfg, sender, other.handle, None, text)
    return result, result["status"] == "approved"


async def thread_with(pool: asyncpg.Pool, bus: Publisher, agent: Agent, other_name: str, limit: int) -> dict[str, Any]:
    """The seed's GET /messages/thread/{agent}: the conversation with that agent, read like any other."""
    async with pool.acquire() as conn:
        other = await agents_store.get_agent_by_handle(conn, other_name.removeprefix("@"))  # name@host too
        conv = await store.get_conversation_for_pair(conn, agent.id, other.id) if other else None
    if other is None or conv is None:
        raise NotFound(f"No conversation with {other_name!r}.", "Start one with POST /api/v1/messages {\"to\", \"content\"}.")
    return await read_conversation(pool, bus, agent, conv.id, limit)


async def typing_target(pool: asyncpg.Pool, agent: Agent, to: str | None, conversation_id: uuid.UUID | None) -> tuple[uuid.UUID, str]:
    """Whom a typing indicator goes to (the other party of an open conversation) and the conversation id."""
    async with pool.acquire() as conn:
        if conversation_id is not None:
            conv = await store.get_conversation(conn, conversation_id)
        elif to:
            other = await agents_store.get_local_agent_by_name(conn, to.removeprefix("@"))
            conv = await store.get_conversation_for_pair(conn, agent.id, other.id) if other else None
        else:
            raise BadRequest("A typing frame needs 'to', 'conversation_id' or 'group_id'.", "Name whom you are typing to.")
    conv = _open_or_refuse(conv, agent)
    return conv.other(agent.id), str(conv.id)
