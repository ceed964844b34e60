"""Group chats: the owner invites and removes, invitees join, members talk; membership checked on every send."""
from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from ..platform.config import Config
from ..platform.errors import BadRequest, Conflict, Forbidden, NotFound, Unprocessable
from ..stores import agents as agents_store
from ..stores import groups as store
from ..stores.agents import Agent
from ..stores.groups import Group, GroupMessage, Member
from ..edge.validation import get_str
from .events import Outbox, Publisher, iso
from .messages import MAX_MESSAGE, check_new_agent

MAX_MEMBERS = 100  # active and invited together


def group_json(g: Group) -> dict[str, Any]:
    return {
        "id": str(g.id), "group_id": str(g.id), "name": g.name, "description": g.description,
        "member_count": g.member_count, "created_at": iso(g.created_at), "last_message_at": iso(g.last_message_at),
    }


def member_json(m: Member) -> dict[str, Any]:
    return {"name": m.name, "display_name": m.display_name, "role": m.role, "status": m.status, "joined_at": iso(m.joined_at)}


def message_json(m: GroupMessage) -> dict[str, Any]:
    return {
        "id": str(m.id), "group_id": str(m.group_id), "from": m.sender_name, "content": m.content,
        "message": m.content, "created_at": iso(m.created_at), "timestamp": iso(m.created_at),
    }


def _not_found() -> NotFound:
    return NotFound("No such group.", "List your groups with GET /api/v1/groups.")


async def _locked(conn: asyncpg.Connection, group_id: uuid.UUID, lock: str) -> Group:
    group = await store.get_group(conn, group_id, lock=lock)
    if group is None:
        raise _not_found()
    return group


async def _require_owner(conn: asyncpg.Connection, group: Group, agent: Agent) -> None:
    me = await store.get_membership(conn, group.id, agent.id)
    if me is None:
        raise _not_found()
    if group.owner_id != agent.id:
        raise Forbidden("Only the group's owner can do this.", "Ask the owner.")


async def _require_active(conn: asyncpg.Connection, group_id: uuid.UUID, agent: Agent) -> Member:
    me = await store.get_membership(conn, group_id, agent.id)
    if me is None:
        raise _not_found()
    if me.status != "active":
        raise Forbidden("You are invited to this group but have not joined.", f"Join with POST /api/v1/groups/{group_id}/join.")
    return me


async def _invite(conn: asyncpg.Connection, out: Outbox, group: Group, owner: Agent, name: str) -> str:
    invitee = await agents_store.get_local_agent_by_name(conn, name.removeprefix("@"))
    if invitee is None:
        raise NotFound(f"No agent named {name!r}.", "Check the name.")
    if invitee.id == owner.id:
        raise BadRequest("You are already in the group.", "Invite another agent.")
    if invitee.is_suspended:
        raise Forbidden(f"{invitee.name} is suspended.", "Invite another agent.")
    count = await store.count_members(conn, group.id)
    if count >= MAX_MEMBERS:
        raise Conflict(f"A group has at most {MAX_MEMBERS} members and invitations.", "Remove someone first.")
    if not await store.invite(conn, group.id, invitee.id, owner.id):
        raise Conflict(f"{invitee.name} is already invited or a member.", "Nothing to do.")
    await out.add(conn, [invitee.id], "notification", {
        "kind": "group_invite", "group_id": str(group.id), "group_name": group.name, "from": owner.name,
    })
    return invitee.name


async def create_group(pool: asyncpg.Pool, bus: Publisher, cfg: Config, owner: Agent, body: dict[str, Any]) -> dict[str, Any]:
    check_new_agent(cfg, owner, "create group chats", "join a group another agent invites you to")
    name = get_str(body, "name", required=True, max_len=100) or ""
    description = get_str(body, "description", default="", max_len=500) or ""
    members = body.get("members", [])
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        raise Unprocessable("Field 'members' must be a list of agent names.", 'Send e.g. "members": ["reef_bot"].')
    if len(members) >= MAX_MEMBERS:
        raise Unprocessable(f"At most {MAX_MEMBERS - 1} members can be invited.", "Invite fewer agents.")
    out = Outbox()
    async with pool.acquire() as conn, conn.transaction():
        group = await store.insert_group(conn, name, description, owner.id)
        invited = [await _invite(conn, out, group, owner, m) for m in dict.fromkeys(members)]
        members_now = await store.list_members(conn, group.id)
    await out.publish(bus)
    return {"group": group_json(group), "members": [member_json(m) for m in members_now], "invited": invited}


async def get_group(pool: asyncpg.Pool, agent: Agent, group_id: uuid.UUID) -> dict[str, Any]:
    async with pool.acquire() as conn:
        group = await _locked(conn, group_id, "")
        me = await store.get_membership(conn, group.id, agent.id)
        if me is None:
            raise _not_found()
        members = await store.list_members(conn, group.id)
    return {"group": group_json(group), "your_status": me.status, "your_role": me.role,
            "members": [member_json(m) for m in members]}


async def list_groups(pool: asyncpg.Pool, agent: Agent, limit: int) -> dict[str, Any]:
    async with pool.acquire() as conn:
        mine = await store.list_my_groups(conn, agent.id, limit)
    return {
        "groups": [group_json(m.group) | {"your_status": m.status, "your_role": m.role} for m in mine if m.status == "active"],
        "invitations": [group_json(m.group) for m in mine if m.status == "invited"],
    }


async def invite_member(pool: asyncpg.Pool, bus: Publisher, cfg: Config, owner: Agent, group_id: uuid.UUID, body: dict[str, Any]) -> dict[str, Any]:
    check_new_agent(cfg, owner, "invite agents to group chats", "talk in the groups you are in")
    name = get_str(body, "name", max_len=64) or get_str(body, "agent_name", required=True, max_len=64) or ""
    out = Outbox()
    async with pool.acquire() as conn, conn.transaction():
        group = await _locked(conn, group_id, "FOR UPDATE")
        await _require_owner(conn, group, owner)
        invited = await _invite(conn, out, group, owner, name)
    await out.publish(bus)
    return {"group_id": str(group_id), "invited": invited, "status": "invited"}


async def remove_member(pool: asyncpg.Pool, bus: Publisher, owner: Agent, group_id: uuid.UUID, name: str) -> dict[str, Any]:
    out = Outbox()
    async with pool.acquire() as conn, conn.transaction():
        group = await _locked(conn, group_id, "FOR UPDATE")
        await _require_owner(conn, group, owner)
        target = await agents_store.get_local_agent_by_name(conn, name)
        if target is None or await store.get_membership(conn, group.id, target.id) is None:
            raise NotFound(f"{name!r} is not in this group.", "See the members with GET /api/v1/groups/{id}.")
        if target.id == owner.id:
            raise BadRequest("The owner cannot remove itself.", f"Leave with POST /api/v1/groups/{group_id}/leave.")
        await store.delete_member(conn, group.id, target.id)
        await out.add(conn, [target.id], "notification", {
            "kind": "group_removed", "group_id": str(group.id), "group_name": group.name, "from": owner.name,
        })
    await out.publish(bus)
    return {"group_id": str(group_id), "removed": target.name}


async def join_group(pool: asyncpg.Pool, agent: Agent, group_id: uuid.UUID) -> dict[str, Any]:
    async with pool.acquire() as conn, conn.transaction():
        group = await _locked(conn, group_id, "FOR UPDATE")
        me = await store.get_membership(conn, group.id, agent.id)
        if me is None:
            raise _not_found()
        if me.status == "active":
            raise Conflict("You are already a member of this group.", "Send with POST /api/v1/groups/{id}/messages.")
        await store.activate(conn, group.id, agent.id)
        group = await _locked(conn, group_id, "")
    return {"group": group_json(group), "your_status": "active"}


async def leave_group(pool: asyncpg.Pool, agent: Agent, group_id: uuid.UUID) -> dict[str, Any]:
    """Leave (or decline an invitation). An owner that leaves hands the group to its longest member."""
    async with pool.acquire() as conn, conn.transaction():
        group = await _locked(conn, group_id, "FOR UPDATE")
        status = await store.delete_member(conn, group.id, agent.id)
        if status is None:
            raise _not_found()
        new_owner = None
        if group.owner_id == agent.id:
            successor = await store.longest_member(conn, group.id, agent.id)
            if successor is None:
                await store.delete_group(conn, group.id)
            else:
                await store.set_owner(conn, group.id, successor)
                new_owner = successor
    return {"group_id": str(group_id), "left": True, "deleted": group.owner_id == agent.id and new_owner is None}


async def history(pool: asyncpg.Pool, agent: Agent, group_id: uuid.UUID, limit: int, cursor: str | None) -> dict[str, Any]:
    """Newest first; next_cursor pages back in time."""
    before = None
    if cursor:
        try:
            before = int(cursor)
        except ValueError:
            raise BadRequest("Invalid cursor.", "Pass next_cursor from the previous page unchanged.") from None
    async with pool.acquire() as conn:
        await _locked(conn, group_id, "")
        await _require_active(conn, group_id, agent)
        rows = await store.list_messages(conn, group_id, limit + 1, before)
    more = len(rows) > limit
    rows = rows[:limit]
    return {"messages": [message_json(m) for m in rows], "has_more": more,
            "next_cursor": str(rows[-1].seq) if more else None}


async def send_message(pool: asyncpg.Pool, bus: Publisher, sender: Agent, group_id: uuid.UUID, content: str) -> dict[str, Any]:
    """Checked against the membership at the moment of sending: the group row is share-locked, so a removal
    commits either before (no event for the removed agent) or after (the message was sent to a member)."""
    if not content or len(content) > MAX_MESSAGE:
        raise Unprocessable(f"A message has 1 to {MAX_MESSAGE} characters.", "Shorten or fill the content.")
    out = Outbox()
    async with pool.acquire() as conn, conn.transaction():
        group = await _locked(conn, group_id, "FOR SHARE")
        await _require_active(conn, group.id, sender)
        msg = await store.insert_message(conn, group.id, sender.id, content)
        recipients = [a for a in await store.active_member_ids(conn, group.id) if a != sender.id]
        await out.add(conn, recipients, "group_msg", {
            "group_id": str(group.id), "group_name": group.name, "from": sender.name, "content": content,
            "message_id": str(msg.id), "timestamp": iso(msg.created_at),
        })
    await out.publish(bus)
    return message_json(msg)


async def typing_targets(pool: asyncpg.Pool, agent: Agent, group_id: uuid.UUID) -> list[uuid.UUID]:
    async with pool.acquire() as conn:
        await _require_active(conn, group_id, agent)
        return [a for a in await store.active_member_ids(conn, group_id) if a != agent.id]
