"""Events announced with pg_notify (by services that publish at commit) delivered to this process's hub."""
from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

import asyncpg

from .hub import Hub

log = logging.getLogger(__name__)


class PgListener:
    """LISTEN on one pooled connection; after losing it, listen again and resync every open stream."""

    def __init__(self, hub: Hub, pool: asyncpg.Pool, channel: str) -> None:
        self.hub = hub
        self.pool = pool
        self.channel = channel
        self.task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    async def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())
        await asyncio.wait_for(self.listening.wait(), 10)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    def _on_notify(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        try:
            message = json.loads(payload)
            if "e" in message:
                deliveries = [(uuid.UUID(a), int(i)) for a, i in message["e"]]
                self.hub.deliver_events(deliveries, message["t"], message["p"])
            else:  # too large to carry: the named agents re-read their events
                for agent in message.get("r", []):
                    for session in list(self.hub.sessions.get(uuid.UUID(agent), ())):
                        session.start_sync()
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring a malformed %s notification: %s", self.channel, exc)

    async def _run(self) -> None:
        backoff = 0.1
        first = True
        while True:
            conn = None
            try:
                conn = await self.pool.acquire()
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c: lost.set())
                await conn.add_listener(self.channel, self._on_notify)
                self.listening.set()
                backoff = 0.1
                if not first:
                    log.info("listening on %s again; resyncing open streams", self.channel)
                    self.hub.resync_all()
                first = False
                await lost.wait()
                log.warning("lost the connection listening on %s; reconnecting", self.channel)
            except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("cannot listen on %s (%s); retrying", self.channel, exc)
            finally:
                if conn is not None:
                    try:
                        await conn.remove_listener(self.channel, self._on_notify)
                    except (OSError, asyncpg.InterfaceError, asyncpg.PostgresError):
                        pass  # the connection is gone; the pool replaces it
                    await self.pool.release(conn)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)
