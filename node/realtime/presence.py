"""Presence: online/offline across processes, told only to agents who share a conversation or follow each other."""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from typing import Any

import asyncpg

from ..stores import groups as groups_store
from ..stores import messages as messages_store
from ..stores import stream as stream_store
from .hub import Session
from .state import Realtime

log = logging.getLogger(__name__)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")


async def audience(conn: asyncpg.Connection, agent_id: uuid.UUID) -> list[uuid.UUID]:
    """Who may see this agent's presence and typing: open DMs, shared groups, mutual follows."""
    found = set(await messages_store.contacts(conn, agent_id))
    found.update(await groups_store.co_members(conn, agent_id))
    found.discard(agent_id)
    return list(found)


def presence_frame(name: str, status: str, last_active: dt.datetime | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "presence", "agent": name, "from": name, "status": status, "timestamp": _now()}
    if last_active is not None:
        frame["last_active"] = last_active.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    return frame


def wire(rt: "Realtime") -> None:
    """Hook presence into the hub: first/last session of an agent in this process, and session ready."""
    hub = rt.hub

    async def changed(session: Session, online: bool) -> None:
        lock = rt.presence_locks.setdefault(session.agent_id, asyncio.Lock())
        try:
            async with lock:  # one agent's online/offline are told in the order they happened
                if online and not hub.is_connected(session.agent_id):
                    return  # already gone again
                if not online and hub.is_connected(session.agent_id):
                    return  # came back meanwhile
                flipped = await (rt.bus.presence_join(session.agent_id) if online else rt.bus.presence_leave(session.agent_id))
                async with hub.pool.acquire() as conn:
                    await stream_store.touch_last_active(conn, [session.agent_id])
                    targets = await audience(conn, session.agent_id) if flipped else []
                if targets:
                    frame = presence_frame(session.agent_name, "online" if online else "offline",
                                           None if online else dt.datetime.now(dt.timezone.utc))
                    await rt.bus.publish_frame(targets, frame)
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError) as exc:
            log.warning("presence update for %s failed: %s", session.agent_name, exc)
        finally:
            if not lock.locked() and rt.presence_locks.get(session.agent_id) is lock:
                del rt.presence_locks[session.agent_id]

    async def on_first(session: Session) -> None:
        await changed(session, True)

    async def on_last(session: Session) -> None:
        await changed(session, False)

    async def snapshot(session: Session) -> None:
        """Tell a new session which of its contacts are online now."""
        try:
            async with hub.pool.acquire() as conn:
                contacts = await audience(conn, session.agent_id)
                online = await rt.bus.online(contacts) if contacts else set()
                names = await stream_store.get_last_active(conn, list(online)) if online else {}
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError) as exc:
            log.warning("presence snapshot for %s failed: %s", session.agent_name, exc)
            return
        for name, _ in sorted(names.values()):
            session.push_frame(presence_frame(name, "online"))

    hub.on_first = on_first
    hub.on_last = on_last
    hub.ready_hook = lambda session: hub.spawn(snapshot(session))
