"""Authenticated API keys remembered for a few seconds, so that a request does not start with a lookup.

Correctness comes from invalidation, not from the short lifetime: migration 0031's triggers announce on
the `reef_auth` channel every change that matters to authentication (a key revoked, expired or deleted; an
agent suspended, renamed, claimed, edited or deleted), every process listens (node.platform.listen) and
forgets that agent at once. The process that made the change also forgets it synchronously (the stores call
node.platform.forget.forget_agent, where every cache registers), so its own next request never sees the old row. While the LISTEN connection is
down, nothing is cached and nothing cached is used; on reconnection everything is forgotten.

What may be up to `ttl` seconds old: the counters on the Agent (karma, followers, posts), which are not
part of authentication; every response that shows them for the agent itself (/agents/me) reads them anew.
"""
from __future__ import annotations

import logging
import time
import uuid
from typing import AsyncIterator

from aiohttp import web

from ..platform import appkeys, forget
from ..stores.agents import KeyLookup

log = logging.getLogger(__name__)

CHANNEL = "reef_auth"
MAX_ENTRIES = 100_000


class KeyCache:
    def __init__(self, ttl: float, *, clock=time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self.live = False  # True while invalidations can reach us (the LISTEN connection is up)
        self.entries: dict[bytes, tuple[float, "KeyLookup"]] = {}
        self.by_agent: dict[uuid.UUID, set[bytes]] = {}
        self.generation = 0  # bumped by every forget: a lookup that raced with one is not stored
        self.hits = 0
        self.misses = 0
        self.counter = None  # reef_cache_requests (node.platform.metrics), labelled by cache and result
        forget.register(self)

    @property
    def enabled(self) -> bool:
        return self.live and self.ttl > 0

    def get(self, key_hash: bytes) -> "KeyLookup | None":
        if not self.enabled:
            return None
        entry = self.entries.get(key_hash)
        if entry is None or self.clock() - entry[0] > self.ttl:
            self.misses += 1
            if self.counter is not None:
                self.counter.labels("api_key", "miss").inc()
            return None
        self.hits += 1
        if self.counter is not None:
            self.counter.labels("api_key", "hit").inc()
        return entry[1]

    def put(self, key_hash: bytes, found: "KeyLookup", generation: int) -> None:
        """Remember a lookup that started when self.generation was `generation`."""
        if not self.enabled or generation != self.generation:
            return
        if len(self.entries) >= MAX_ENTRIES:
            self.clear()
        self.entries[key_hash] = (self.clock(), found)
        self.by_agent.setdefault(found.agent.id, set()).add(key_hash)

    def forget(self, agent_id: uuid.UUID) -> None:
        self.generation += 1
        for key_hash in self.by_agent.pop(agent_id, ()):
            self.entries.pop(key_hash, None)

    def clear(self) -> None:
        self.generation += 1
        self.entries.clear()
        self.by_agent.clear()

    # --- node.platform.listen subscriber ---

    def on_notify(self, payload: str) -> None:
        try:
            self.forget(uuid.UUID(payload))
        except ValueError:
            log.warning("ignoring a malformed %s notification: %r", CHANNEL, payload[:100])
            self.clear()

    def on_connect(self, first: bool) -> None:
        # Changes made while we were not listening were not announced to us: start from nothing.
        self.clear()
        self.live = True

    def on_disconnect(self) -> None:
        self.live = False
        self.clear()


async def key_cache_ctx(app: web.Application) -> AsyncIterator[None]:
    cache = KeyCache(app[appkeys.CONFIG].server.key_cache_seconds)
    app[appkeys.KEY_CACHE] = cache
    metrics = app.get(appkeys.METRICS)
    if metrics is not None:
        cache.counter = metrics.cache
    listener = app[appkeys.LISTENER]
    if cache.ttl > 0:
        await listener.subscribe(CHANNEL, cache.on_notify, cache.on_connect, cache.on_disconnect)
    try:
        yield
    finally:
        cache.live = False
        cache.clear()
