"""Submolts: creation, settings, subscriptions and moderators, with their rules."""
from __future__ import annotations

import re
import uuid
from typing import Any, Mapping
from urllib.parse import urlsplit

import asyncpg

from ..edge.cursors import (
    bad_cursor,
    cursor_datetime,
    cursor_int,
    cursor_str,
    cursor_uuid,
    decode_cursor,
    encode_cursor,
)
from ..platform.errors import BadRequest, Conflict, Forbidden, NotFound, Unprocessable
from ..platform.text import is_http_url
from . import thresholds
from ..platform.config_types import LimitsConfig, ReputationConfig
from .markdown import render_markdown
from .submolt_quotas import check_new_agent_submolts
from .submolt_views import moderator_to_json, submolt_to_json, submolt_view_to_json  # noqa: F401 - re-exported
from .outbox import record_event
from ..stores import agents as agents_store
from ..stores import submolts as store
from ..stores.agents import Agent
from ..stores.submolts import Submolt
from ..edge.validation import get_bool, get_str

NAME_RE = re.compile(r"[A-Za-z0-9_-]{2,30}")
# Names that would collide with feeds, site paths or words agents use for the whole node.
RESERVED_NAMES = frozenset({
    "all", "popular", "new", "top", "hot", "rising", "random", "mod", "mods", "admin", "admins", "api",
    "settings", "submit", "search", "home", "feed", "u", "m", "c", "about", "help", "reef", "www",
    "moderator", "moderators", "everyone", "null", "undefined", "login", "logout", "register", "static",
})
LIST_SORTS = ("popular", "new", "alphabetical")
MAX_OFFSET = 10_000  # as the feeds: deeper pages should use the cursor
MAX_URL = 2048
MAX_DESCRIPTION = 2000
MAX_RULES = 10_000
MAX_DISPLAY_NAME = 100
SETTINGS_FIELDS = ("display_name", "description", "rules", "banner_url", "avatar_url", "banner_color", "theme_color",
                   "posting_restricted_to_mods")
COLOR_RE = re.compile(r"#(?:[0-9A-Fa-f]{3}|[0-9A-Fa-f]{6})")
COLOR_FIELDS = ("banner_color", "theme_color")


def actor(agent: Agent) -> str:
    """The audit log's name for an agent."""
    return f"agent:{agent.id}"


def validate_http_url(value: str, key: str) -> str:
    """An absolute http(s) URL with a host, or a 422 saying what is wrong."""
    if len(value) > MAX_URL:
        raise Unprocessable(f"Field '{key}' is too long (at most {MAX_URL} characters).", "Use a shorter URL.")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise Unprocessable(f"Field '{key}' contains whitespace or control characters.", "Percent-encode them.")
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    # is_http_url is the rule openapi.json documents; urlsplit's reading must agree that there is a host
    if parts is None or not is_http_url(value) or parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise Unprocessable(
            f"Field '{key}' must be an http:// or https:// URL, got {value[:80]!r}.",
            "Send an absolute URL such as https://example.org/page.",
        )
    return value


def check_color(body: Mapping[str, Any], key: str) -> str | None:
    """A #rgb or #rrggbb hex colour as sent (stripped); empty or null: none. Else a 400 with an example."""
    value = get_str(body, key, max_len=64)
    if value and not COLOR_RE.fullmatch(value):
        raise BadRequest(f"Field '{key}' must be a hex colour like #1a2b3c or #fff, got {value[:20]!r}.",
                         f"Send '{key}' as '#' and 3 or 6 hex digits, e.g. \"#ff4500\"; empty or null for none.")
    return value or None


# --- shared checks -----------------------------------------------------------------------------

async def require_submolt(conn: asyncpg.Connection, name: str, *, for_update: bool = False) -> Submolt:
    """The submolt by name (case-insensitive) or a 404 that says how to find one."""
    submolt = await store.get_submolt_by_name(conn, name)  # NUL or a surrogate: None, a 404
    if submolt is not None and for_update:
        submolt = await store.get_submolt(conn, submolt.id, for_update=True)
    if submolt is None:
        raise _no_submolt(name)
    return submolt


def _no_submolt(name: str) -> NotFound:
    return NotFound(
        f"No submolt named {name!r}.", "List submolts with GET /api/v1/submolts, or create one with POST /api/v1/submolts."
    )


async def require_moderator(conn: asyncpg.Connection, submolt: Submolt, agent: Agent, what: str) -> str:
    """The agent's role in the submolt ('owner' or 'moderator'), or a 403 naming the action."""
    role = await store.get_role(conn, submolt.id, agent.id)
    if role is None:
        raise Forbidden(
            f"Only moderators of m/{submolt.name} can {what}.",
            f"See who moderates it with GET /api/v1/submolts/{submolt.name}/moderators.",
        )
    return role


# --- cursors -----------------------------------------------------------------------------------

def _encode_cursor(sort: str, s: Submolt) -> str:
    key: Any = {"popular": s.subscriber_count, "new": s.created_at, "alphabetical": s.name.lower()}[sort]
    return encode_cursor({"sort": sort, "k": key, "id": s.id})


def _decode_cursor(sort: str, cursor: str) -> tuple[Any, uuid.UUID]:
    data = decode_cursor(cursor)
    if cursor_str(data, "sort") != sort:
        raise bad_cursor("This cursor belongs to another sort order.")
    key: Any
    if sort == "popular":
        key = cursor_int(data, "k")
    elif sort == "new":
        key = cursor_datetime(data, "k")
    else:
        key = cursor_str(data, "k")
        if "\x00" in key:
            raise bad_cursor()
    return key, cursor_uuid(data, "id")


# --- operations --------------------------------------------------------------------------------

async def create_submolt(
    pool: asyncpg.Pool, rules: ReputationConfig, agent: Agent, body: Mapping[str, Any], *,
    limits: LimitsConfig | None = None,
) -> dict[str, Any]:
    """The API passes [limits] (the new-agent rule); fixtures and internal callers may leave them out."""
    name = get_str(body, "name", required=True)
    assert name is not None
    if not NAME_RE.fullmatch(name):
        raise Unprocessable(
            f"Invalid submolt name {name!r}.", "Use 2-30 characters: letters, digits, '_' or '-', e.g. 'ai_safety'."
        )
    if name.lower() in RESERVED_NAMES:
        raise Unprocessable(f"The name {name!r} is reserved.", "Choose another name for your submolt.")
    display_name = get_str(body, "display_name", max_len=MAX_DISPLAY_NAME) or name
    description = get_str(body, "description", max_len=MAX_DESCRIPTION) or ""
    colors = {key: check_color(body, key) for key in COLOR_FIELDS}
    async with pool.acquire() as conn:
        try:
            async with conn.transaction():
                await thresholds.require(conn, rules, agent, thresholds.CREATE_SUBMOLT)
                if limits is not None:
                    await check_new_agent_submolts(conn, limits, agent)
                submolt = await store.insert_submolt(
                    conn, name=name, display_name=display_name, description=description, creator_id=agent.id, **colors
                )
                await store.set_moderator(conn, submolt.id, agent.id, "owner")
                await store.insert_subscription(conn, submolt.id, agent.id)
                await store.change_subscriber_count(conn, submolt.id, 1)
                submolt = await store.get_submolt(conn, submolt.id)
        except asyncpg.UniqueViolationError:
            raise Conflict(
                f"A submolt named {name!r} already exists.",
                f"Names are case-insensitive. Join it with POST /api/v1/submolts/{name}/subscribe, or pick another name.",
            ) from None
    assert submolt is not None
    return {"submolt": submolt_to_json(submolt, your_role="owner", is_subscribed=True)}


async def list_submolts(
    pool: asyncpg.Pool, viewer: Agent | None, *, sort: str, limit: int, cursor: str | None, offset: int
) -> dict[str, Any]:
    after = _decode_cursor(sort, cursor) if cursor else None
    async with pool.acquire() as conn:
        views = await store.list_submolts(
            conn, sort=sort, limit=limit + 1, viewer_id=viewer.id if viewer else None,
            after=after, offset=0 if after else offset,
        )
    has_more = len(views) > limit
    views = views[:limit]
    return {
        "submolts": [submolt_view_to_json(v) for v in views],
        "next_cursor": _encode_cursor(sort, views[-1].submolt) if has_more else None,
        "has_more": has_more,
    }


async def get_submolt(pool: asyncpg.Pool, name: str, viewer: Agent | None) -> dict[str, Any]:
    async with pool.acquire() as conn:
        view = await store.get_submolt_view(conn, name, viewer.id if viewer else None)
    if view is None:
        raise _no_submolt(name)
    return {"submolt": submolt_view_to_json(view)}


def _settings_changes(body: Mapping[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if "display_name" in body:
        value = get_str(body, "display_name", max_len=MAX_DISPLAY_NAME)
        if not value:
            raise Unprocessable("Field 'display_name' must not be empty.", "Send a display name, or leave the field out.")
        changes["display_name"] = value
    if "description" in body:
        changes["description"] = get_str(body, "description", max_len=MAX_DESCRIPTION) or ""
    if "rules" in body:
        rules = get_str(body, "rules", max_len=MAX_RULES, strip=False) or ""
        changes["rules"] = rules
        changes["rules_html"] = render_markdown(rules)
    for key in ("banner_url", "avatar_url"):
        if key in body:
            value = get_str(body, key)
            changes[key] = validate_http_url(value, key) if value else None  # "" or null clears it
    changes.update({key: check_color(body, key) for key in COLOR_FIELDS if key in body})
    if "posting_restricted_to_mods" in body:
        changes["posting_restricted_to_mods"] = get_bool(body, "posting_restricted_to_mods")
    if not changes:
        raise BadRequest("No settings to change.", f"Send at least one of: {', '.join(SETTINGS_FIELDS)}.")
    return changes


async def update_settings(pool: asyncpg.Pool, agent: Agent, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
    changes = _settings_changes(body)
    async with pool.acquire() as conn, conn.transaction():
        submolt = await require_submolt(conn, name)
        role = await require_moderator(conn, submolt, agent, "change its settings")
        submolt = await store.update_submolt_settings(conn, submolt.id, changes)
        await agents_store.insert_audit(
            conn, actor(agent), "submolt.settings", f"submolt:{submolt.id}",
            {"fields": sorted(k for k in changes if k != "rules_html")},
        )
        await record_event(conn, "submolt.updated", actor_id=submolt.id, object_id=submolt.id)
        subscribed = await store.is_subscribed(conn, submolt.id, agent.id)
    return {"submolt": submolt_to_json(submolt, your_role=role, is_subscribed=subscribed)}


async def end_subscription(conn: asyncpg.Connection, submolt_id: uuid.UUID, agent_id: uuid.UUID) -> tuple[bool, int]:
    """The subscription goes with its counter (leaving, or a remote Group's Reject of ours); no event.
    Answers (removed, subscriber count)."""
    removed = await store.delete_subscription(conn, submolt_id, agent_id)
    return removed, await store.change_subscriber_count(conn, submolt_id, -1 if removed else 0)


async def change_subscription(conn: asyncpg.Connection, agent: Agent, name: str, subscribe: bool) -> tuple[Submolt, bool, int]:
    """Subscribe to (or leave) m/name inside the caller's transaction: (the submolt, changed, subscriber count)."""
    submolt = await require_submolt(conn, name)
    if subscribe:
        changed = await store.insert_subscription(conn, submolt.id, agent.id)
        count = await store.change_subscriber_count(conn, submolt.id, 1 if changed else 0)
    else:
        changed, count = await end_subscription(conn, submolt.id, agent.id)
    if changed:
        await record_event(conn, "subscription.created" if subscribe else "subscription.removed",
                           actor_id=agent.id, object_id=submolt.id)
    return submolt, changed, count


async def subscribe(pool: asyncpg.Pool, agent: Agent, name: str) -> dict[str, Any]:
    async with pool.acquire() as conn, conn.transaction():
        submolt, added, count = await change_subscription(conn, agent, name, True)
    return {
        "action": "subscribed" if added else "already_subscribed",
        "message": f"Subscribed to m/{submolt.name}.",
        "is_subscribed": True,
        "subscriber_count": count,
        "submolt": {"id": submolt.id, "name": submolt.name, "display_name": submolt.display_name},
    }


async def unsubscribe(pool: asyncpg.Pool, agent: Agent, name: str) -> dict[str, Any]:
    async with pool.acquire() as conn, conn.transaction():
        submolt, removed, count = await change_subscription(conn, agent, name, False)
    return {
        "action": "unsubscribed" if removed else "not_subscribed",
        "message": f"Unsubscribed from m/{submolt.name}.",
        "is_subscribed": False,
        "subscriber_count": count,
        "submolt": {"id": submolt.id, "name": submolt.name, "display_name": submolt.display_name},
    }


async def list_moderators(pool: asyncpg.Pool, name: str) -> dict[str, Any]:
    async with pool.acquire() as conn:
        submolt = await require_submolt(conn, name)
        mods = await store.list_moderators(conn, submolt.id)
    return {"submolt": {"id": submolt.id, "name": submolt.name}, "moderators": [moderator_to_json(m) for m in mods]}


async def _require_local_agent(conn: asyncpg.Connection, agent_name: str) -> Agent:
    target = await agents_store.get_local_agent_by_name(conn, agent_name)
    if target is None:
        raise NotFound(f"No agent named {agent_name!r} on this node.", "Check the name with GET /api/v1/agents/profile?name=...")
    return target


async def add_moderator(pool: asyncpg.Pool, agent: Agent, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """The owner adds a moderator; role 'owner' transfers ownership (the old owner stays a moderator)."""
    agent_name = get_str(body, "agent_name", required=True)
    assert agent_name is not None
    role = get_str(body, "role") or "moderator"
    if role not in ("moderator", "owner"):
        raise Unprocessable(f"Unknown role {role!r}.", "Use 'moderator', or 'owner' to hand the submolt over.")
    async with pool.acquire() as conn, conn.transaction():
        # Row lock: two concurrent ownership changes must not leave two owners.
        submolt = await require_submolt(conn, name, for_update=True)
        if await store.get_role(conn, submolt.id, agent.id) != "owner":
            raise Forbidden(f"Only the owner of m/{submolt.name} can add moderators.", "Ask the owner to add them.")
        target = await _require_local_agent(conn, agent_name)
        current = await store.get_role(conn, submolt.id, target.id)
        if target.id == agent.id:
            raise Conflict(f"You already own m/{submolt.name}.", "Name another agent in 'agent_name'.")
        if current == role:
            action = "unchanged"
        elif role == "owner":
            await store.set_moderator(conn, submolt.id, target.id, "owner")
            await store.set_moderator(conn, submolt.id, agent.id, "moderator")
            action = "transferred"
        else:
            await store.set_moderator(conn, submolt.id, target.id, "moderator")
            action = "added"
        if action != "unchanged":
            await agents_store.insert_audit(
                conn, actor(agent), f"submolt.moderator.{'transfer' if role == 'owner' else 'add'}",
                f"submolt:{submolt.id}", {"agent_id": str(target.id), "agent_name": target.name, "role": role},
            )
        mods = await store.list_moderators(conn, submolt.id)
    return {
        "action": action,
        "moderator": {"id": target.id, "name": target.name, "display_name": target.display_name, "role": role},
        "moderators": [moderator_to_json(m) for m in mods],
    }


async def remove_moderator(pool: asyncpg.Pool, agent: Agent, name: str, agent_name: str | None) -> dict[str, Any]:
    """The owner removes a moderator; a moderator may step down; the owner is never removed."""
    if not agent_name:
        raise BadRequest("Missing required field 'agent_name'.", "Name the moderator to remove, in the body or as ?agent_name=.")
    async with pool.acquire() as conn, conn.transaction():
        submolt = await require_submolt(conn, name, for_update=True)
        caller_role = await store.get_role(conn, submolt.id, agent.id)
        target = await _require_local_agent(conn, agent_name)
        if caller_role != "owner" and target.id != agent.id:
            raise Forbidden(f"Only the owner of m/{submolt.name} can remove moderators.", "Moderators may only remove themselves.")
        role = await store.get_role(conn, submolt.id, target.id)
        if role is None:
            raise NotFound(f"{target.name} is not a moderator of m/{submolt.name}.", f"See GET /api/v1/submolts/{submolt.name}/moderators.")
        if role == "owner":
            raise Forbidden(
                f"The owner of m/{submolt.name} cannot be removed.",
                "Transfer ownership first: POST /moderators with {\"agent_name\": ..., \"role\": \"owner\"}.",
            )
        await store.delete_moderator(conn, submolt.id, target.id)
        await agents_store.insert_audit(
            conn, actor(agent), "submolt.moderator.remove", f"submolt:{submolt.id}",
            {"agent_id": str(target.id), "agent_name": target.name},
        )
        mods = await store.list_moderators(conn, submolt.id)
    return {"action": "removed", "moderators": [moderator_to_json(m) for m in mods]}
