"""The application factory: one create_app(config) builds the whole node."""
from __future__ import annotations

import logging
import time
from typing import AsyncIterator

import aiohttp
from aiohttp import web

from federation import routes as federation_routes
from web.app import setup as setup_web_site

from .adapters.lightning.factory import make_backend
from .background import background_ctx, sampler_ctx
from .platform import appkeys, metrics, tracing
from .api import routes
from .platform.config import Config
from .platform.db import create_pool, database_dsn
from .edge.feedcache import FEED_CACHE, FeedCache, feed_cache_middleware
from .edge.keycache import key_cache_ctx
from .platform.listen import listener_ctx
from .edge.ratelimit.middleware import rate_limit_middleware
from .edge.ratelimit.limiters import create_rate_limiter
from .edge.middleware import KEY_TOUCHES, auth_middleware, request_context_middleware
from .platform.migrations import apply_migrations

log = logging.getLogger(__name__)


def create_app(cfg: Config, *, migrate: bool = True) -> web.Application:
    """Build the node: Agent API, stream, ActivityPub, web site and background workers, on one app."""
    middlewares = [request_context_middleware, auth_middleware, rate_limit_middleware]
    if cfg.server.feed_cache_seconds > 0:
        middlewares.insert(1, feed_cache_middleware)  # every write of this process empties it, refused or not
    if cfg.tracing.otlp_endpoint:
        middlewares.insert(0, tracing.tracing_middleware)  # outermost: the access log line carries the trace id
    app = web.Application(
        client_max_size=cfg.limits.max_body_bytes,
        # Request lines up to 64 KiB (aiohttp's default is 8 KiB), so an over-long query string reaches the
        # handlers and gets a JSON 422 with a hint instead of the HTTP parser's plain-text 400.
        handler_args={"max_line_size": 65536},
        middlewares=middlewares,
    )
    app[appkeys.CONFIG] = cfg
    tracing.setup(app)
    app[appkeys.STARTED_AT] = time.time()
    app[KEY_TOUCHES] = {}
    if cfg.server.feed_cache_seconds > 0:
        app[FEED_CACHE] = FeedCache(cfg.server.feed_cache_seconds)
    app.cleanup_ctx.append(_database(migrate))
    app.cleanup_ctx.append(listener_ctx)
    app.cleanup_ctx.append(key_cache_ctx)
    app.cleanup_ctx.append(_redis)
    app.cleanup_ctx.append(_http_client)
    app.cleanup_ctx.append(_rate_limiter)
    app.cleanup_ctx.append(_lightning)
    app.cleanup_ctx.append(background_ctx)  # every periodic job: node/background.py
    app.cleanup_ctx.append(sampler_ctx)  # this process's minute samples for /admin/status

    metrics.setup(app)
    routes.setup(app)  # the Agent API and the stream
    setup_web_site(app)  # the web site for humans
    federation_routes.setup(app)  # discovery, actors, objects, inboxes, outbox collections, federation workers
    return app


def _database(migrate: bool):
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        cfg = app[appkeys.CONFIG]
        async with database_dsn(cfg) as dsn:
            pool = await create_pool(dsn, cfg.database.pool_min, cfg.database.pool_max,
                                     metrics=app.get(appkeys.METRICS), tracer=tracing.tracer_of(app))
            try:
                if migrate:
                    async with pool.acquire() as conn:
                        await apply_migrations(conn)
                app[appkeys.POOL] = pool
                yield
            finally:
                await pool.close()

    return ctx


async def _redis(app: web.Application) -> AsyncIterator[None]:
    cfg = app[appkeys.CONFIG]
    if not cfg.redis.url:
        app[appkeys.REDIS] = None
        yield
        return
    import redis.asyncio as aioredis

    client = aioredis.from_url(cfg.redis.url, socket_connect_timeout=5, health_check_interval=30)
    app[appkeys.REDIS] = client
    try:
        yield
    finally:
        await client.aclose()


async def _http_client(app: web.Application) -> AsyncIterator[None]:
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30),
                                    trace_configs=[tracing.client_trace_config()])
    app[appkeys.HTTP] = session
    try:
        yield
    finally:
        await session.close()


async def _lightning(app: web.Application) -> AsyncIterator[None]:
    """The Lightning backend of [payments] (NoBackend for "none"), on the node's HTTP client session."""
    backend = make_backend(app[appkeys.CONFIG].payments, app[appkeys.HTTP])
    app[appkeys.LIGHTNING] = backend
    try:
        yield
    finally:
        await backend.close()


async def _rate_limiter(app: web.Application) -> AsyncIterator[None]:
    cfg = app[appkeys.CONFIG]
    # Several processes serve this node (reef run --workers, or web processes beside a `reef worker`): without
    # Redis the buckets live in PostgreSQL, so the limits hold across them.
    shared = cfg.server.worker_count > 1 or not cfg.server.background
    limiter = create_rate_limiter(cfg, app[appkeys.REDIS], app[appkeys.POOL], shared=shared)
    app[appkeys.RATE_LIMITER] = limiter
    limiter.start()  # sweeps expired leases of the request budget back to the shared store
    try:
        yield
    finally:
        await limiter.close()
