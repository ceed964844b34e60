"""One LISTEN connection per process for PostgreSQL notifications, shared by whoever needs one.

Subscribers name a channel, a callback for each notification, and a callback for (re)connection:
notifications sent while the connection was away are lost, so a subscriber uses `on_connect` to
catch up (the stream re-reads its events; the key cache forgets what it knew; the federation workers
look for work).
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable

import asyncpg
from aiohttp import web

from . import appkeys

log = logging.getLogger(__name__)

OnNotify = Callable[[str], None]  # the payload
OnConnect = Callable[[bool], None]  # True on the first connection, False on a reconnection
OnDisconnect = Callable[[], None]


@dataclass(frozen=True, slots=True)
class _Subscription:
    channel: str
    on_notify: OnNotify
    on_connect: OnConnect | None
    on_disconnect: OnDisconnect | None


class Listener:
    """LISTEN on a connection of its own; reconnects with backoff after losing it."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.subscriptions: list[_Subscription] = []
        self.conn: asyncpg.Connection | None = None
        self.connected = asyncio.Event()
        self.lost: asyncio.Event | None = None
        self.task: asyncio.Task[None] | None = None
        self.registered: list[tuple[str, Callable[[Any, int, str, str], None]]] = []  # on self.conn

    @property
    def is_connected(self) -> bool:
        return self.connected.is_set()

    async def start(self, timeout: float = 10) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())
        try:
            await asyncio.wait_for(self.connected.wait(), timeout)
        except asyncio.TimeoutError:
            log.warning("not listening for PostgreSQL notifications yet; retrying in the background")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            self.task = None

    async def subscribe(
        self, channel: str, on_notify: OnNotify, on_connect: OnConnect | None = None,
        on_disconnect: OnDisconnect | None = None,
    ) -> None:
        """Listen on channel from now on; on_connect(True) is called at once if already connected.

        on_disconnect is called as soon as the connection is known to be lost (notifications may be missed
        from then until on_connect(False))."""
        sub = _Subscription(channel, on_notify, on_connect, on_disconnect)
        self.subscriptions.append(sub)
        conn = self.conn
        if conn is not None and self.connected.is_set():
            try:
                await self._listen(conn, sub)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("cannot listen on %s (%s); will on reconnection", channel, exc)
                self._on_lost(self.lost)
                return
            if on_connect is not None:
                on_connect(True)

    @staticmethod
    def _callback(sub: _Subscription) -> Callable[[Any, int, str, str], None]:
        def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            try:
                sub.on_notify(payload)
            except Exception:  # one subscriber's bug must not stop the others' notifications
                log.exception("handling a notification on %s failed", sub.channel)

        return on_notify

    async def _listen(self, conn: asyncpg.Connection, sub: _Subscription) -> None:
        callback = self._callback(sub)
        await conn.add_listener(sub.channel, callback)
        self.registered.append((sub.channel, callback))

    def _on_lost(self, lost: asyncio.Event | None) -> None:
        was = self.connected.is_set()
        self.connected.clear()
        if lost is not None:
            lost.set()
        if not was:
            return
        for sub in list(self.subscriptions):
            if sub.on_disconnect is not None:
                try:
                    sub.on_disconnect()
                except Exception:
                    log.exception("on_disconnect of %s failed", sub.channel)

    async def _release(self, conn: asyncpg.Connection) -> None:
        """Back to the pool with its LISTENs dropped (the pool does not reset them), or terminated."""
        registered, self.registered = self.registered, []
        try:
            if not conn.is_closed():
                try:
                    async with asyncio.timeout(2):
                        for channel, callback in registered:
                            await conn.remove_listener(channel, callback)
                except (OSError, asyncio.TimeoutError, asyncpg.PostgresError):
                    conn.terminate()  # stuck: the pool replaces it
            await self.pool.release(conn)
        except asyncpg.InterfaceError:
            pass  # a lost connection, which asyncpg has already taken back from us

    async def _run(self) -> None:
        backoff = 0.1
        first = True
        while True:
            conn = None
            try:
                conn = await self.pool.acquire()
                lost = self.lost = asyncio.Event()
                conn.add_termination_listener(lambda _c: self._on_lost(lost))
                self.registered = []
                for sub in list(self.subscriptions):
                    await self._listen(conn, sub)
                self.conn = conn
                self.connected.set()
                backoff = 0.1
                if not first:
                    log.info("listening for PostgreSQL notifications again")
                for sub in list(self.subscriptions):
                    if sub.on_connect is not None:
                        sub.on_connect(first)
                first = False
                await lost.wait()
                log.warning("lost the connection listening for PostgreSQL notifications; reconnecting")
            except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("cannot listen for PostgreSQL notifications (%s); retrying", exc)
            except Exception:  # never give up listening: the key cache and the streams depend on it
                log.exception("listening for PostgreSQL notifications failed; retrying")
            finally:
                self._on_lost(self.lost)
                self.conn = None
                if conn is not None:
                    await self._release(conn)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)


async def listener_ctx(app: web.Application) -> AsyncIterator[None]:
    listener = Listener(app[appkeys.POOL])
    app[appkeys.LISTENER] = listener
    await listener.start()
    try:
        yield
    finally:
        await listener.stop()
