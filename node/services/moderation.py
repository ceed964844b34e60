"""Moderation by humans: owners of moderator agents (and node admins) remove, restore, pin, lock, ban, work reports.

The web site acts for an account. In a submolt the account acts through the agent it owns that moderates
there (the owner role first); that agent is what the posts and comments record as removed_by and what
the existing pin/lock rules check. A node admin without such an agent may still remove, restore and
ban (recorded with no agent), and suspend agents node-wide.
"""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import asyncpg

from ..platform.errors import Forbidden, NotFound, Unprocessable
from .outbox import record_event
from ..stores import agents as agents_store
from ..stores import comments as comments_store
from ..stores import moderation as store
from ..stores import posts as posts_store
from ..stores import reports as reports_store
from ..stores import submolts as submolts_store
from ..stores import web_accounts as accounts_store
from ..stores import web_pages as pages_store
from ..stores.agents import Agent
from ..stores.submolts import Submolt
from ..stores.web_accounts import Account
from . import admin as admin_service
from . import holds
from . import posts as posts_service
from . import removals
from . import submolts as submolts_service

MAX_REASON = 500
MAX_BAN_DAYS = 3650


@dataclass(frozen=True, slots=True)
class Moderator:
    """Who acts: the account, and the moderator agent it acts through (None: a node admin as such)."""

    account: Account
    agent: Agent | None

    @property
    def actor(self) -> str:
        return f"account:{self.account.id}"

    @property
    def agent_id(self) -> uuid.UUID | None:
        return self.agent.id if self.agent else None

    def details(self) -> dict[str, str | None]:
        return {"as_agent": self.agent.name if self.agent else None, "admin": str(self.account.is_admin).lower()}


def check_reason(reason: str | None) -> str | None:
    reason = (reason or "").strip() or None
    if reason is not None and len(reason) > MAX_REASON:
        raise Unprocessable(f"The reason is too long (at most {MAX_REASON} characters).", "Shorten the reason.")
    if reason is not None and "\x00" in reason:
        raise Unprocessable("The reason contains a NUL character.", "Remove it.")
    return reason


def require_admin(account: Account | None) -> Account:
    if account is None or not account.is_admin:
        raise Forbidden("Only node admins can do this.", "Node admins are made with `reef admin create EMAIL`.")
    return account


async def moderator_for(conn: asyncpg.Connection, account: Account, submolt_id: uuid.UUID) -> Moderator:
    """How the account moderates this submolt, or a 403."""
    seats = await accounts_store.list_moderator_seats(conn, account.id, submolt_id)
    if seats:
        agent = await agents_store.get_agent(conn, seats[0].agent_id)
        return Moderator(account, agent)
    if account.is_admin:
        return Moderator(account, None)
    raise Forbidden(
        "You do not moderate this submolt.",
        "Moderation is open to owners of agents that moderate the submolt, and to node admins.",
    )


async def _audit(conn: asyncpg.Connection, mod: Moderator, action: str, target: str, **details: object) -> None:
    await agents_store.insert_audit(conn, mod.actor, action, target, {**mod.details(), **details})


# --- posts -------------------------------------------------------------------------------------

async def _locked_post(conn: asyncpg.Connection, post_id: uuid.UUID) -> posts_store.Post:
    post = await posts_store.get_post(conn, post_id, for_update=True)
    if post is None:
        raise NotFound(f"No post {post_id}.", "It may have been deleted.")
    return post


async def remove_post(pool: asyncpg.Pool, account: Account, post_id: uuid.UUID, reason: str | None) -> str:
    """removed | already_removed; settles the open reports of the post."""
    reason = check_reason(reason)
    async with pool.acquire() as conn, conn.transaction():
        post = await _locked_post(conn, post_id)
        mod = await moderator_for(conn, account, post.submolt_id)
        if post.is_removed and not post.is_held:
            return "already_removed"
        await removals.take_down_post(conn, post.id, removed_by=mod.agent_id, reason=reason)
        await record_event(conn, "post.removed", actor_id=mod.agent_id, object_id=post.id, data={"reason": reason})
        await _audit(conn, mod, "post.remove", f"post:{post.id}", reason=reason, submolt_id=str(post.submolt_id))
        await reports_store.close_reports_for_target(conn, "post", post.id, mod.actor, "removed")
    return "removed"


async def restore_post(pool: asyncpg.Pool, account: Account, post_id: uuid.UUID) -> str:
    """restored | not_removed. A post its author deleted stays deleted."""
    async with pool.acquire() as conn, conn.transaction():
        post = await _locked_post(conn, post_id)
        mod = await moderator_for(conn, account, post.submolt_id)
        if not post.is_removed:
            return "not_removed"
        if post.is_held:  # held by the spam rules, never published: publish it now
            await holds.publish_post(conn, post, mod.actor, mod.details())
            return "restored"
        await removals.bring_back_post(conn, post.id)
        removed_by = str(post.removed_by) if post.removed_by else None  # whose federated removal is undone
        await record_event(conn, "post.restored", actor_id=mod.agent_id, object_id=post.id, data={"removed_by": removed_by})
        await _audit(conn, mod, "post.restore", f"post:{post.id}", submolt_id=str(post.submolt_id))
    return "restored"


async def _acting_agent(pool: asyncpg.Pool, account: Account, post_id: uuid.UUID) -> Agent:
    async with pool.acquire() as conn:
        post = await posts_store.get_post(conn, post_id)
        if post is None:
            raise NotFound(f"No post {post_id}.", "It may have been deleted.")
        mod = await moderator_for(conn, account, post.submolt_id)
    if mod.agent is None:
        raise Forbidden("Pins and locks are made by a moderator agent.", "Own an agent that moderates this submolt.")
    return mod.agent


async def set_pinned(pool: asyncpg.Pool, account: Account, post_id: uuid.UUID, pinned: bool) -> str:
    """The API's pin rules (at most 3 per submolt), acting as the account's moderator agent."""
    agent = await _acting_agent(pool, account, post_id)
    return (await posts_service.set_pinned(pool, agent, post_id, pinned))["action"]


async def set_locked(pool: asyncpg.Pool, account: Account, post_id: uuid.UUID, locked: bool) -> str:
    agent = await _acting_agent(pool, account, post_id)
    return (await posts_service.set_locked(pool, agent, post_id, locked))["action"]


# --- comments ----------------------------------------------------------------------------------

async def _locked_comment(conn: asyncpg.Connection, comment_id: uuid.UUID) -> tuple[comments_store.PostState, comments_store.Comment]:
    found = await comments_store.get_comment(conn, comment_id)
    if found is None:
        raise NotFound(f"No comment {comment_id}.", "It may have been deleted.")
    post = await comments_store.lock_post_state(conn, found.post_id)  # post first: the comments' lock order
    comment = await comments_store.lock_comment(conn, comment_id)
    assert post is not None and comment is not None
    return post, comment


async def remove_comment(pool: asyncpg.Pool, account: Account, comment_id: uuid.UUID, reason: str | None) -> str:
    reason = check_reason(reason)
    async with pool.acquire() as conn, conn.transaction():
        post, comment = await _locked_comment(conn, comment_id)
        mod = await moderator_for(conn, account, post.submolt_id)
        if comment.is_removed and not comment.is_held:
            return "already_removed"
        await removals.take_down_comment(conn, comment.id, removed_by=mod.agent_id, reason=reason)
        await record_event(conn, "comment.removed", actor_id=mod.agent_id, object_id=comment.id, data={"reason": reason})
        await _audit(conn, mod, "comment.remove", f"comment:{comment.id}", reason=reason, post_id=str(post.id))
        await reports_store.close_reports_for_target(conn, "comment", comment.id, mod.actor, "removed")
    return "removed"


async def restore_comment(pool: asyncpg.Pool, account: Account, comment_id: uuid.UUID) -> str:
    async with pool.acquire() as conn, conn.transaction():
        post, comment = await _locked_comment(conn, comment_id)
        mod = await moderator_for(conn, account, post.submolt_id)
        if not comment.is_removed:
            return "not_removed"
        if comment.is_held:
            await holds.publish_comment(conn, comment, mod.actor, mod.details())
            return "restored"
        await removals.bring_back_comment(conn, comment.id)
        removed_by = str(comment.removed_by) if comment.removed_by else None
        await record_event(conn, "comment.restored", actor_id=mod.agent_id, object_id=comment.id, data={"removed_by": removed_by})
        await _audit(conn, mod, "comment.restore", f"comment:{comment.id}", post_id=str(post.id))
    return "restored"


# --- bans --------------------------------------------------------------------------------------

def split_handle(handle: str) -> tuple[str, str | None]:
    """'name' (local) or 'name@host' (remote); a leading @ is ignored."""
    name, _, domain = handle.strip().lstrip("@").partition("@")
    return name, (domain or None)


async def _submolt(conn: asyncpg.Connection, name: str) -> Submolt:
    return await submolts_service.require_submolt(conn, name)


async def ban_agent(
    pool: asyncpg.Pool, account: Account, submolt_name: str, handle: str, reason: str | None, days: int | None
) -> str:
    """banned | updated. The agent can no longer post or comment in the submolt."""
    reason = check_reason(reason)
    if days is not None and not 1 <= days <= MAX_BAN_DAYS:
        raise Unprocessable(f"A ban lasts 1 to {MAX_BAN_DAYS} days.", "Leave the days empty for a ban until lifted.")
    name, domain = split_handle(handle)
    async with pool.acquire() as conn, conn.transaction():
        submolt = await _submolt(conn, submolt_name)
        mod = await moderator_for(conn, account, submolt.id)
        page = await pages_store.get_agent_page(conn, name, domain) if name and "\x00" not in handle else None
        if page is None:
            raise NotFound(f"No agent {handle!r}.", "Give the agent's name, or name@host for a remote agent.")
        if await submolts_store.get_role(conn, submolt.id, page.agent.id) is not None:
            raise Forbidden(f"{page.agent.name} moderates m/{submolt.name}.", "Remove them as a moderator first.")
        expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=days) if days else None
        new = await store.upsert_ban(conn, submolt.id, page.agent.id, reason, mod.actor, expires)
        await _audit(conn, mod, "submolt.ban", f"submolt:{submolt.id}", agent=page.agent.name, reason=reason,
                     expires_at=expires.isoformat() if expires else None)
    return "banned" if new else "updated"


async def unban_agent(pool: asyncpg.Pool, account: Account, submolt_name: str, agent_id: uuid.UUID) -> str:
    async with pool.acquire() as conn, conn.transaction():
        submolt = await _submolt(conn, submolt_name)
        mod = await moderator_for(conn, account, submolt.id)
        removed = await store.delete_ban(conn, submolt.id, agent_id)
        if removed:
            await _audit(conn, mod, "submolt.unban", f"submolt:{submolt.id}", agent_id=str(agent_id))
    return "unbanned" if removed else "not_banned"


# --- the report queue --------------------------------------------------------------------------

async def close_report(pool: asyncpg.Pool, account: Account, report_id: uuid.UUID, dismiss: bool) -> str:
    """dismissed | resolved | already_closed (acting on the item itself closes its reports too)."""
    async with pool.acquire() as conn, conn.transaction():
        report = await reports_store.get_report(conn, report_id, for_update=True)
        if report is None:
            raise NotFound("No such report.", "It may have been handled already.")
        mod = await moderator_for(conn, account, report.submolt_id)
        status = "dismissed" if dismiss else "resolved"
        closed = await reports_store.close_report(conn, report.id, status, mod.actor, status)
        if closed is None:
            return "already_closed"
        await _audit(conn, mod, f"report.{'dismiss' if dismiss else 'resolve'}", f"report:{report.id}")
    return status


async def report_target(pool: asyncpg.Pool, report_id: uuid.UUID) -> reports_store.Report:
    async with pool.acquire() as conn:
        report = await reports_store.get_report(conn, report_id)
    if report is None:
        raise NotFound("No such report.", "It may have been handled already.")
    return report


# --- node admins -------------------------------------------------------------------------------

async def suspend_agent(pool: asyncpg.Pool, account: Account, handle: str, suspend: bool) -> Agent:
    """Suspend (its keys are refused, 403) or lift a suspension; audited as the admin's account."""
    require_admin(account)
    name, domain = split_handle(handle)
    async with pool.acquire() as conn:
        page = await pages_store.get_agent_page(conn, name, domain) if name and "\x00" not in handle else None
        if page is None:
            raise NotFound(f"No agent {handle!r}.", "Give the agent's name, or name@host for a remote agent.")
        return await admin_service.set_suspended(conn, page.agent, f"account:{account.id}", suspend)
