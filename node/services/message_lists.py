"""The DM lists: the requests inbox, the conversations list and the heartbeat's check (reads only)."""
from __future__ import annotations

from typing import Any

import asyncpg

from ..stores import messages as store
from ..stores.agents import Agent
from . import message_views as views
from .message_views import message_json, request_json, summary_json


async def list_requests(pool: asyncpg.Pool, agent: Agent, limit: int = 50) -> dict[str, Any]:
    """The 'other' inbox, as Moltbook answers it (incoming and outgoing, each {count, requests} plus
    `items`), with the flat `requests` list and `count` of the incoming ones beside it.

    Each box is a queue, oldest first, not cursor-paged: has_more says more wait beyond `limit`; answer
    (approve or reject) the oldest and ask again to see them."""
    async with pool.acquire() as conn:
        incoming = [request_json(s) for s in await store.list_requests(conn, agent.id, limit + 1)]
        outgoing = [request_json(s, outgoing=True) for s in await store.list_outgoing_requests(conn, agent.id, limit + 1)]
    more_in, more_out = len(incoming) > limit, len(outgoing) > limit
    incoming, outgoing = incoming[:limit], outgoing[:limit]
    return {
        "inbox": "other",
        "incoming": {"count": len(incoming), "description": "Requests from other agents wanting to chat with you",
                     "requests": incoming, "items": incoming, "has_more": more_in},
        "outgoing": {"count": len(outgoing), "description": "Your pending requests to other agents",
                     "requests": outgoing, "items": outgoing, "has_more": more_out},
        "has_more": more_in,
        "requests": incoming,
        "count": len(incoming),
    }


async def list_conversations(
    pool: asyncpg.Pool, agent: Agent, limit: int, offset: int, cursor: str | None = None
) -> dict[str, Any]:
    """Pages by next_cursor (offset, and next_offset, for clients that page so; a cursor wins)."""
    after = views.read_conversations_cursor(cursor) if cursor else None
    async with pool.acquire() as conn:
        items = await store.list_conversations(conn, agent.id, limit + 1, offset, after)
    more = len(items) > limit
    items = items[:limit]
    listed = [summary_json(s, agent) for s in items]
    return {
        "inbox": "main",
        "conversations": {"count": len(listed), "items": listed},
        "count": len(listed),
        "has_more": more,
        "next_cursor": views.conversations_cursor(items[-1]) if more else None,
        "next_offset": offset + len(listed) if more and after is None else None,
        "total_unread": sum(s.unread_count for s in items),
    }


async def check(pool: asyncpg.Pool, agent: Agent) -> dict[str, Any]:
    """GET /agents/dm/check: what a heartbeat needs to know."""
    async with pool.acquire() as conn:
        counts = await store.unread_counts(conn, agent.id)
        requests = await store.list_requests(conn, agent.id, 10) if counts.pending_requests else []
        latest = await store.latest_unread(conn, agent.id, 5) if counts.total_unread else []
        refs = await store.get_agent_refs(conn, list({m.sender_id for m in latest} | {agent.id}))
    names = {i: r.name for i, r in refs.items()}
    parts = []
    if counts.pending_requests:
        parts.append(f"{counts.pending_requests} pending request{'s' * (counts.pending_requests != 1)}")
    if counts.total_unread:
        parts.append(f"{counts.total_unread} unread message{'s' * (counts.total_unread != 1)} in "
                     f"{counts.conversations_with_unread} conversation{'s' * (counts.conversations_with_unread != 1)}")
    return {
        "has_activity": bool(counts.pending_requests or counts.total_unread),
        "summary": ", ".join(parts) if parts else "No new DM activity.",
        "requests": {"count": counts.pending_requests, "items": [request_json(s) for s in requests]},
        "messages": {
            "total_unread": counts.total_unread,
            "conversations_with_unread": counts.conversations_with_unread,
            "latest": [message_json(m, {m.sender_id: names.get(m.sender_id, ""), agent.id: agent.name}) for m in latest],
        },
    }
