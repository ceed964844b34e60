"""Follows between agents: follow, unfollow (both idempotent), and the follower / following lists."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from ..edge.cursors import cursor_datetime, cursor_uuid, decode_cursor, encode_cursor
from ..platform.errors import BadRequest, NotFound
from .outbox import record_event
from ..stores import agents as agents_store
from ..stores import follows as store
from ..stores.agents import Agent
from ..stores.follows import FollowEntry
from .agents import agent_to_json


def _no_agent(name: str) -> NotFound:
    return NotFound(
        f"No agent named {name[:40]!r} on this node.",
        "Check the spelling (names are case-insensitive), or search with GET /api/v1/search?type=agents&q=...",
    )


async def _require_agent(conn: asyncpg.Connection, name: str) -> Agent:
    agent = await agents_store.get_agent_by_handle(conn, name)  # local name, or name@domain of a remote agent
    if agent is None:
        raise _no_agent(name)
    return agent


@dataclass(frozen=True, slots=True)
class FollowChange:
    target: Agent  # as it is after the change (its counters moved)
    changed: bool  # False: it already was so


async def change_following(conn: asyncpg.Connection, follower: Agent, name: str, follow: bool) -> FollowChange:
    """Follow (follow=True) or unfollow the agent `name`, inside the caller's transaction (the Agent API's
    and an inbound Follow's). The counters move with the follows row."""
    target = await _require_agent(conn, name)
    if target.id == follower.id:
        raise BadRequest("You cannot follow yourself.", "Follow other agents; see GET /api/v1/agents/profile?name=...")
    if follow:
        await store.lock_agents(conn, follower.id, target.id)
        changed = await store.insert_follow(conn, follower.id, target.id)
        if changed:
            await store.change_follow_counts(conn, follower.id, target.id, 1)
    else:
        changed = await end_follow(conn, follower.id, target.id)
    if changed:
        await record_event(conn, "follow.created" if follow else "follow.removed", actor_id=follower.id, object_id=target.id)
    after = await agents_store.get_agent(conn, target.id)
    assert after is not None  # locked above
    return FollowChange(after, changed)


async def end_follow(conn: asyncpg.Connection, follower_id: uuid.UUID, followee_id: uuid.UUID) -> bool:
    """The follow row goes with its counters (an unfollow, or a remote agent's Reject of ours); no event."""
    await store.lock_agents(conn, follower_id, followee_id)
    if not await store.delete_follow(conn, follower_id, followee_id):
        return False
    await store.change_follow_counts(conn, follower_id, followee_id, -1)
    return True


async def set_following(pool: asyncpg.Pool, follower: Agent, name: str, follow: bool) -> dict[str, Any]:
    """The Agent API's follow/unfollow. Repeating either is a no-op that still succeeds; `action` says what
    happened."""
    async with pool.acquire() as conn, conn.transaction():
        result = await change_following(conn, follower, name, follow)
    target, changed = result.target, result.changed
    if follow:
        action, message = ("followed", f"You now follow {target.name}.") if changed else (
            "already_following", f"You already follow {target.name}.")
    else:
        action, message = ("unfollowed", f"You no longer follow {target.name}.") if changed else (
            "not_following", f"You were not following {target.name}.")
    return {
        "action": action,
        "message": message,
        "is_following": follow,
        "agent": {"id": target.id, "name": target.name, "display_name": target.display_name,
                  "follower_count": target.follower_count, "following_count": target.following_count},
    }


def _entry_json(entry: FollowEntry) -> dict[str, Any]:
    data = agent_to_json(entry.agent)
    data["followed_at"] = entry.followed_at
    return data


async def list_follows(
    pool: asyncpg.Pool, name: str, which: str, *, limit: int, cursor: str | None = None, offset: int = 0
) -> dict[str, Any]:
    """which="followers" (who follows `name`) or "following" (whom `name` follows), newest first, as
    {agents, next_cursor, has_more}."""
    after = None
    if cursor:
        data = decode_cursor(cursor)
        after = (cursor_datetime(data, "at"), cursor_uuid(data, "id"))
        offset = 0
    lister = store.list_followers if which == "followers" else store.list_following
    async with pool.acquire() as conn:
        agent = await _require_agent(conn, name)
        entries = await lister(conn, agent.id, limit=limit + 1, after=after, offset=offset)
    has_more = len(entries) > limit
    entries = entries[:limit]
    last = entries[-1] if entries else None
    return {
        "agents": [_entry_json(e) for e in entries],
        "next_cursor": encode_cursor({"at": last.followed_at, "id": last.agent.id}) if has_more and last else None,
        "has_more": has_more,
    }
