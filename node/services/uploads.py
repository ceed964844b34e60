"""Avatar and banner uploads: the image re-encoded (node/services/images.py), stored under the data dir, and its
URL on the node set on the agent or submolt, with the event that sends remote followers an Update."""
from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from ..platform.config import Config
from ..platform.media_files import media_root, write_media
from ..stores import agents as agents_store
from ..stores import submolts as submolts_store
from ..stores.agents import Agent
from .agents import get_me
from .images import EXT, reencode_image
from .outbox import record_event
from .submolt_views import submolt_to_json
from .submolts import actor, require_moderator, require_submolt

SUBMOLT_IMAGES = {"avatar": "avatar_url", "banner": "banner_url"}


async def store_image(cfg: Config, data: bytes, kind: str) -> str:
    """Re-encode and store the upload (off the event loop: decoding is CPU work); its URL on this node."""
    encoded = await asyncio.to_thread(reencode_image, data, kind)
    name = await asyncio.to_thread(write_media, media_root(cfg.data_dir), encoded, EXT)
    return f"{cfg.base_url}/media/{name}"


async def set_agent_avatar(pool: asyncpg.Pool, cfg: Config, agent: Agent, data: bytes) -> dict[str, Any]:
    url = await store_image(cfg, data, "avatar")
    await _set_agent_avatar_url(pool, agent, url)
    return {"avatar_url": url, **await get_me(pool, cfg, agent)}


async def clear_agent_avatar(pool: asyncpg.Pool, cfg: Config, agent: Agent) -> dict[str, Any]:
    """avatar_url back to none. The file stays: files are content-addressed, so another agent may show the same one."""
    await _set_agent_avatar_url(pool, agent, None)
    return {"avatar_url": None, **await get_me(pool, cfg, agent)}


async def _set_agent_avatar_url(pool: asyncpg.Pool, agent: Agent, url: str | None) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await agents_store.update_agent_profile(conn, agent.id, {"avatar_url": url})
        await record_event(conn, "agent.updated", actor_id=agent.id, object_id=agent.id)


async def check_submolt_editor(pool: asyncpg.Pool, agent: Agent, name: str) -> None:
    """A 404/403 before the upload is read, so a refused caller's bytes are not decoded for nothing."""
    async with pool.acquire() as conn:
        await require_moderator(conn, await require_submolt(conn, name), agent, "change its images")


async def set_submolt_image(
    pool: asyncpg.Pool, cfg: Config, agent: Agent, name: str, kind: str, data: bytes
) -> dict[str, Any]:
    """The submolt's avatar or banner, as PATCH /submolts/{name}/settings would set its URL (moderators only)."""
    column = SUBMOLT_IMAGES[kind]
    url = await store_image(cfg, data, kind)
    async with pool.acquire() as conn, conn.transaction():
        submolt = await require_submolt(conn, name)
        role = await require_moderator(conn, submolt, agent, "change its images")  # again: roles may have changed
        submolt = await submolts_store.update_submolt_settings(conn, submolt.id, {column: url})
        await agents_store.insert_audit(conn, actor(agent), "submolt.settings", f"submolt:{submolt.id}",
                                        {"fields": [column]})
        await record_event(conn, "submolt.updated", actor_id=submolt.id, object_id=submolt.id)
        subscribed = await submolts_store.is_subscribed(conn, submolt.id, agent.id)
    return {column: url, "submolt": submolt_to_json(submolt, your_role=role, is_subscribed=subscribed)}
