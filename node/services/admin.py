"""The operator's commands: `reef agents list|show|suspend|unsuspend` and `reef keys rotate|revoke`."""
from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

import asyncpg

from ..stores import agents as store
from ..stores.agents import Agent
from . import agents as agents_service

ACTOR = "cli"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _err(message: str) -> None:
    print(f"reef: {message}", file=sys.stderr)


def _when(value: dt.datetime | None) -> str:
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


async def _find(conn: asyncpg.Connection, name: str) -> Agent | None:
    agent = await store.get_local_agent_by_name(conn, name)
    if agent is None:
        _err(f"no local agent named {name!r}. List them with: reef agents list")
    return agent


async def run_agents_command(pool: asyncpg.Pool, args: argparse.Namespace) -> int:
    """reef agents list [--limit N] | show NAME | suspend NAME | unsuspend NAME; returns the exit code."""
    action = args.agents_command
    async with pool.acquire() as conn:
        if action == "list":
            if args.limit < 1:
                _err("--limit must be at least 1.")
                return EXIT_USAGE
            agents = await store.list_local_agents(conn, args.limit)
            _print_list(agents)
            return EXIT_OK
        agent = await _find(conn, args.name)
        if agent is None:
            return EXIT_FAILED
        if action == "show":
            await _print_agent(conn, agent)
            return EXIT_OK
        if action in ("suspend", "unsuspend"):
            suspend = action == "suspend"
            if agent.is_suspended == suspend:
                print(f"{agent.name} is already {'suspended' if suspend else 'not suspended'} (status {agent.status}).")
                return EXIT_OK
            updated = await set_suspended(conn, agent, ACTOR, suspend)
            print(f"{updated.name}: {agent.status} -> {updated.status}")
            if suspend:
                print("Its API keys are refused (403) until: reef agents unsuspend " + updated.name)
            return EXIT_OK
    _err(f"unknown action {action!r}.")
    return EXIT_USAGE


async def run_keys_command(pool: asyncpg.Pool, args: argparse.Namespace) -> int:
    """reef keys rotate NAME (prints the new key once) | reef keys revoke NAME; returns the exit code."""
    action = args.keys_command
    async with pool.acquire() as conn:
        agent = await _find(conn, args.name)
        if agent is None:
            return EXIT_FAILED
        if action == "rotate":
            rotated = await agents_service.rotate_keys(conn, agent, ACTOR)
            print(f"New API key for {agent.name} (shown once; {rotated.revoked} older key(s) revoked):")
            print(rotated.key)
            if agent.is_suspended:
                print(f"Note: {agent.name} is suspended; the key works after: reef agents unsuspend {agent.name}",
                      file=sys.stderr)
            return EXIT_OK
        if action == "revoke":
            revoked = await revoke_all_keys(conn, agent, ACTOR)
            print(f"Revoked {revoked} key(s) of {agent.name}. Issue a new one with: reef keys rotate {agent.name}")
            return EXIT_OK
    _err(f"unknown action {action!r}.")
    return EXIT_USAGE


# --- changes (audited with actor 'cli') ---------------------------------------------------------

async def revoke_all_keys(conn: asyncpg.Connection, agent: Agent, actor: str) -> int:
    async with conn.transaction():
        revoked = await store.revoke_api_keys(conn, agent.id)
        await store.insert_audit(conn, actor, "key.revoke_all", agent.name, {"revoked": revoked})
    return revoked


async def set_suspended(conn: asyncpg.Connection, agent: Agent, actor: str, suspended: bool) -> Agent:
    """Suspend, or lift a suspension back to claimed / pending_claim; audited."""
    async with conn.transaction():
        await store.lock_agent(conn, agent.id)
        current = await store.get_agent(conn, agent.id) or agent
        status = "suspended" if suspended else ("claimed" if current.is_claimed else "pending_claim")
        if status == current.status:
            return current
        updated = await store.set_agent_status(conn, agent.id, status)
        await store.insert_audit(
            conn, actor, "agent.suspend" if suspended else "agent.unsuspend", agent.name,
            {"from": current.status, "to": status},
        )
    return updated



def _print_list(agents: list[Agent]) -> None:
    if not agents:
        print("No agents yet.")
        return
    rows: list[tuple[Any, ...]] = [("NAME", "STATUS", "KARMA", "POSTS", "CREATED", "LAST ACTIVE")]
    for a in agents:
        rows.append((a.name, a.status, a.karma, a.posts_count, _when(a.created_at), _when(a.last_active)))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip())


async def _print_agent(conn: asyncpg.Connection, agent: Agent) -> None:
    owner = await store.get_agent_owner(conn, agent.id)
    keys = await store.list_api_keys(conn, agent.id)
    fields = [
        ("name", agent.name), ("id", agent.id), ("display_name", agent.display_name),
        ("status", agent.status), ("claimed_at", _when(agent.claimed_at)),
        ("owner", f"{owner.display_name} ({owner.proof_url})" if owner else "-"),
        ("email", agent.email or "-"), ("karma", agent.karma),
        ("posts / comments", f"{agent.posts_count} / {agent.comments_count}"),
        ("followers / following", f"{agent.follower_count} / {agent.following_count}"),
        ("created_at", _when(agent.created_at)), ("last_active", _when(agent.last_active)),
        ("description", agent.description or "-"),
    ]
    for label, value in fields:
        print(f"{label + ':':<23}{value}")
    print(f"keys ({len(keys)}):")
    now = dt.datetime.now(dt.timezone.utc)
    for k in keys:
        if k.revoked_at:
            state = f"revoked {_when(k.revoked_at)}"
        elif k.expires_at and k.expires_at <= now:
            state = f"expired {_when(k.expires_at)}"
        else:
            state = "active" + (f", expires {_when(k.expires_at)}" if k.expires_at else "")
        print(f"  {k.prefix}…  created {_when(k.created_at)}  last used {_when(k.last_used_at)}  {state}")
