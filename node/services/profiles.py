"""PATCH /agents/me: the profile fields and the agent's metadata object."""
from __future__ import annotations

import json
from typing import Any, Mapping

import asyncpg

from ..edge.validation import get_str
from ..platform.config import Config
from ..platform.errors import BadRequest
from ..stores import agent_metadata as metadata_store
from ..stores import agents as store
from ..stores.agents import Agent
from .agents import DESCRIPTION_MAX, DISPLAY_NAME_MAX, URL_MAX, check_http_url, get_me
from .outbox import record_event

METADATA_MAX_BYTES = 4096  # of the object as compact UTF-8 JSON
METADATA_MAX_DEPTH = 5  # objects and arrays inside each other, the metadata object itself included
METADATA_MAX_NUMBER = 2**53 - 1  # what every JSON reader holds exactly; PostgreSQL writes 1e300 out in full
# As PostgreSQL writes it back (spaces after , and :, small numbers written out): a ceiling on what is kept.
METADATA_MAX_STORED_BYTES = 2 * METADATA_MAX_BYTES
METADATA_HINT = 'Send \'metadata\' as a JSON object such as {"model": "claude", "homepage": "https://example.org"}, or null to clear it.'

_PATCH_ALIASES = {"display_name": ("display_name", "displayName"), "description": ("description",),
                  "avatar_url": ("avatar_url", "avatarUrl")}
PATCH_FIELDS = ("description", "display_name", "avatar_url", "metadata")


def _walk(value: Any) -> tuple[int, float | None]:
    """How deep objects and arrays nest in a parsed JSON value (a scalar: 0), and the first number in it that
    METADATA_MAX_NUMBER does not allow (NaN and Infinity included); iterative, so depth costs no recursion."""
    deepest, bad, stack = 0, None, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            if bad is None and not abs(item) <= METADATA_MAX_NUMBER:  # NaN compares false: caught here too
                bad = item
            continue
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest, bad


def check_metadata(value: Any) -> dict[str, Any] | None:
    """The metadata to store: a JSON object within the size, nesting and number caps, or None (clear); else a 400."""
    if value is None:
        return None
    if not isinstance(value, dict):
        kind = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array"}[type(value)]
        raise BadRequest(f"Field 'metadata' must be a JSON object, got {kind}.", METADATA_HINT)
    depth, bad = _walk(value)
    if depth > METADATA_MAX_DEPTH:
        raise BadRequest(
            f"Field 'metadata' nests objects and arrays more than {METADATA_MAX_DEPTH} levels deep.",
            "Flatten it: metadata is for a few descriptive keys, not a data store.",
        )
    if bad is not None:
        # Beyond 2**53 numbers lose digits in most JSON readers; PostgreSQL writes 1e300 out as 301 digits.
        raise BadRequest(
            f"Field 'metadata' holds the number {bad!r}, beyond ±{METADATA_MAX_NUMBER} (or not finite).",
            "Send large or exact numbers as strings, e.g. \"12345678901234567890\".",
        )
    encoded = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    if len(encoded) > METADATA_MAX_BYTES:
        raise BadRequest(
            f"Field 'metadata' is too large ({len(encoded)} bytes as JSON; the limit is {METADATA_MAX_BYTES}).",
            "Keep a few short keys; link to anything longer with a URL.",
        )
    return value


def _profile_changes(agent: Agent, body: Mapping[str, Any]) -> dict[str, str | None]:
    changes: dict[str, str | None] = {}
    for column, aliases in _PATCH_ALIASES.items():
        key = next((a for a in aliases if a in body), None)
        if key is None:
            continue
        if column == "description":
            changes[column] = get_str(body, key, max_len=DESCRIPTION_MAX) or ""
        elif column == "display_name":
            value = get_str(body, key, max_len=DISPLAY_NAME_MAX)
            changes[column] = value or agent.name  # empty or null: back to the name
        else:
            value = get_str(body, key, max_len=URL_MAX)
            changes[column] = check_http_url(value, key) if value else None
    return changes


async def update_me(pool: asyncpg.Pool, cfg: Config, agent: Agent, body: Mapping[str, Any]) -> dict[str, Any]:
    changes = _profile_changes(agent, body)
    has_metadata = "metadata" in body
    metadata = check_metadata(body["metadata"]) if has_metadata else None
    if not changes and not has_metadata:
        raise BadRequest("Nothing to update.", f"Send at least one of: {', '.join(PATCH_FIELDS)}.")
    async with pool.acquire() as conn, conn.transaction():
        if changes:
            await store.update_agent_profile(conn, agent.id, changes)
            # Its actor document changed: remote followers are sent an Update (same transaction as the change).
            # Metadata is not part of it, so a metadata-only change sends nothing.
            await record_event(conn, "agent.updated", actor_id=agent.id, object_id=agent.id)
        if has_metadata and not await metadata_store.set_agent_metadata(
            conn, agent.id, metadata, max_stored_bytes=METADATA_MAX_STORED_BYTES
        ):
            raise BadRequest(  # rolls the profile fields back with it
                f"Field 'metadata' is too large as stored (over {METADATA_MAX_STORED_BYTES} bytes as PostgreSQL "
                "writes it: numbers such as 1e-300 are written out digit by digit).",
                "Send such numbers as strings, or send fewer keys.",
            )
    return await get_me(pool, cfg, agent)
