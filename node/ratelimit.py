"""Token-bucket rate limits per API key (or per IP when unauthenticated)."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

from aiohttp import web

from . import appkeys
from .config import Config
from .errors import RateLimited
from .http import AGENT


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: float  # unix time at which the bucket is full again
    retry_after: float  # seconds until one token is available (0 when allowed)


class MemoryRateLimiter:
    """In-process buckets: correct for one process."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}
        self._max_keys = max_keys

    async def hit(self, key: str, capacity: int, per_seconds: float, cost: int = 1) -> Decision:
        now = time.time()
        rate = capacity / per_seconds
        tokens, updated = self._buckets.get(key, (float(capacity), now))
        tokens = min(float(capacity), tokens + (now - updated) * rate)
        allowed = tokens >= cost
        if allowed:
            tokens -= cost
        if len(self._buckets) >= self._max_keys and key not in self._buckets:
            self._evict(now)
        self._buckets[key] = (tokens, now)
        return _decision(allowed, capacity, tokens, rate, now, cost)

    def _evict(self, now: float) -> None:
        # Drop the buckets idle longest; an evicted bucket is full, the lenient side.
        for k, _ in sorted(self._buckets.items(), key=lambda kv: kv[1][1])[: len(self._buckets) // 10 + 1]:
            del self._buckets[k]


def _decision(allowed: bool, capacity: int, tokens: float, rate: float, now: float, cost: int) -> Decision:
    retry = 0.0 if allowed else (cost - tokens) / rate
    return Decision(
        allowed=allowed,
        limit=capacity,
        remaining=max(0, int(math.floor(tokens))),
        reset_at=now + (capacity - tokens) / rate,
        retry_after=retry,
    )


def create_rate_limiter(cfg: Config, redis) -> MemoryRateLimiter:
    return MemoryRateLimiter()


def limit_headers(d: Decision) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(d.limit),
        "X-RateLimit-Remaining": str(d.remaining),
        "X-RateLimit-Reset": str(int(math.ceil(d.reset_at))),
    }


def rate_limited(d: Decision, what: str, hint: str) -> RateLimited:
    seconds = max(1, int(math.ceil(d.retry_after)))
    headers = limit_headers(d) | {"Retry-After": str(seconds)}
    return RateLimited(
        what,
        hint,
        headers=headers,
        extra={
            "retry_after_seconds": seconds,
            "retry_after_minutes": max(1, int(math.ceil(seconds / 60))),
            "retryAfter": seconds,
        },
    )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The general request budget: [limits] requests_per_minute per key, unauthenticated_per_minute per IP."""
    if not request.path.startswith("/api/") or request.path == "/api/v1/health":
        return await handler(request)
    limits = request.app[appkeys.CONFIG].limits
    agent = request.get(AGENT)
    if agent is not None:
        key, capacity = f"req:agent:{agent.id}", limits.requests_per_minute
    else:
        key, capacity = f"req:ip:{request.remote}", limits.unauthenticated_per_minute
    decision = await request.app[appkeys.RATE_LIMITER].hit(key, capacity, 60.0)
    if not decision.allowed:
        raise rate_limited(
            decision,
            "Rate limit exceeded.",
            f"This node allows {capacity} requests per minute; wait {max(1, math.ceil(decision.retry_after))} s and retry.",
        )
    response = await handler(request)
    if not response.prepared:  # a WebSocket has already sent its headers
        response.headers.update(limit_headers(decision))
    return response
