"""A short-lived, in-process cache of anonymous feed answers ([server] feed_cache_seconds; 0: none).

Only answers to requests without an API key are kept (they carry no viewer: user_vote is null), keyed by the
feed and its parsed paging arguments, as the encoded body. Any request of this process that may write (every
method but GET, HEAD and OPTIONS, on any route: API, web site, inbox) empties the cache when it ends, so a post,
vote, comment or removal made through this process shows at once. Writes by other processes (other workers,
`reef` admin commands) and by this process's background work (inbox activities, scheduled jobs) show once the
entries expire: the cache is correct across processes only within its time to live.
"""
from __future__ import annotations

import time
from typing import Awaitable, Callable, Hashable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_SAFE = frozenset(("GET", "HEAD", "OPTIONS"))
MAX_ENTRIES = 1000  # cursors are the client's to choose: a bound on what a crawler can make us keep


class FeedCache:
    def __init__(self, ttl: float, *, max_entries: int = MAX_ENTRIES, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[Hashable, tuple[float, bytes]] = {}
        # Bumped by clear(): an answer computed from a read that began before a write is not stored after it.
        self.generation = 0

    def get(self, key: Hashable) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._entries[key]
            return None
        return entry[1]

    def put(self, key: Hashable, body: bytes, generation: int) -> None:
        """Keep body, unless a write ended since `generation` was read (the body may predate it)."""
        if generation != self.generation:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.pop(next(iter(self._entries)))  # the oldest
        self._entries[key] = (self._clock() + self.ttl, body)

    def clear(self) -> None:
        self._entries.clear()
        self.generation += 1


FEED_CACHE = web.AppKey("feed_cache", FeedCache)


@web.middleware
async def feed_cache_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Empty the feed cache after every request that may have written, whatever its outcome."""
    if request.method in _SAFE:
        return await handler(request)
    try:
        return await handler(request)
    finally:
        cache = request.app.get(FEED_CACHE)
        if cache is not None:
            cache.clear()


async def cached_answer(
    request: web.Request, key: Hashable, anonymous: bool, answer: Callable[[], Awaitable[bytes]]
) -> web.Response:
    """The JSON answer `answer` encodes, from the cache for an anonymous request when it is there."""
    cache = request.app.get(FEED_CACHE)
    if cache is None or not anonymous:
        body = await answer()
    else:
        cached = cache.get(key)
        if cached is None:
            generation = cache.generation
            body = await answer()
            cache.put(key, body, generation)
        else:
            body = cached
    return web.Response(body=body, content_type="application/json")
