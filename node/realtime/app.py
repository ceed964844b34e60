"""The realtime part of the app: hub, bus and token secret, started and stopped with the app."""
from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import secrets
from typing import AsyncIterator

import asyncpg
from aiohttp import web

from ..platform import appkeys
from ..stores import stream as stream_store
from ..services.notifications import PG_CHANNEL
from .bus import LocalBus, RedisBus
from .hub import Hub
from . import presence, stream
from .pglisten import subscriber
from .state import REALTIME, Realtime

log = logging.getLogger(__name__)

PRUNE_FIRST_DELAY = 30.0  # seconds after start: the first pruning
PRUNE_EVERY = 600.0  # seconds between two prunings


async def _realtime_ctx(app: web.Application) -> AsyncIterator[None]:
    cfg = app[appkeys.CONFIG]
    pool = app[appkeys.POOL]
    async with pool.acquire() as conn:
        secret = await stream_store.get_or_create_secret(conn, "stream", secrets.token_bytes(32))
    hub = Hub(pool)
    hub.metrics = app.get(appkeys.METRICS)
    if cfg.redis.url:
        # Processes that share a database share a channel; other nodes on the same Redis do not.
        namespace = hashlib.sha256(b"reef-stream-channel" + secret).hexdigest()[:16]
        bus: LocalBus = RedisBus(hub, cfg.redis.url, namespace)
    else:
        bus = LocalBus(hub)
    rt = Realtime(hub=hub, bus=bus, secret=secret)
    presence.wire(rt)
    app[REALTIME] = rt
    await bus.start()
    # Services without a bus at hand (notifications from posts, comments, votes, follows) publish with
    # pg_notify at commit; every process listens.
    await app[appkeys.LISTENER].subscribe(PG_CHANNEL, *subscriber(hub, PG_CHANNEL))
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(_sweep(hub, cfg.limits.stream_resync_seconds))]
    if cfg.limits.stream_retention_hours > 0 and cfg.server.background:  # once per node, in the background process
        tasks.append(loop.create_task(_prune(pool, cfg.limits.stream_retention_hours, app.get(appkeys.METRICS))))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await hub.close_all()
        await bus.stop()


async def _sweep(hub: Hub, every: int) -> None:
    """The safety net: a socket that somehow missed its newest event gets it within `every` seconds."""
    while True:
        await asyncio.sleep(max(1, every))
        try:
            behind = await hub.check_all()
            if behind:
                log.info("stream sweep: %d sessions were behind and resynced", behind)
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError) as exc:
            log.warning("stream sweep failed: %s", exc)


async def _prune(pool: asyncpg.Pool, hours: int, metrics=None) -> None:  # noqa: ANN001 - Metrics or None
    """Retention: events older than `hours` go, so the log does not grow forever; a client reconnecting with
    a since older than what is kept is told so in its ready frame (truncated, oldest_id)."""
    delay = PRUNE_FIRST_DELAY
    while True:
        await asyncio.sleep(delay)
        delay = PRUNE_EVERY
        try:
            async with pool.acquire() as conn:
                removed = await stream_store.prune_events(conn, dt.timedelta(hours=hours))
            if metrics is not None:
                metrics.stream_pruned.inc(removed)
                metrics.stream_prune_time.set_to_current_time()
            if removed:
                log.info("stream retention: removed %d events older than %d hours", removed, hours)
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("stream retention failed: %s", exc)
        except Exception as exc:  # never let a surprise end retention for the life of the process
            log.warning("stream retention failed: %r", exc, exc_info=True)


async def _close_streams(app: web.Application) -> None:
    # On shutdown, before the server waits for handlers: open sockets would hold it up.
    rt = app.get(REALTIME)
    if rt is not None:
        await rt.hub.close_all()


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(_realtime_ctx)
    app.on_shutdown.append(_close_streams)
    stream.setup(app)
