"""Token buckets: the Decision every limiter answers, the limiter protocol, and the in-process limiter."""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Callable, Literal, Protocol



log = logging.getLogger(__name__)

Action = Literal["post", "comment", "register", "payment"]


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: float  # unix time at which the bucket is full again
    retry_after: float  # seconds until one token is available (0 when allowed)
    next_at: float = 0.0  # unix time at which the next request is admitted (now while tokens remain)


class RateLimiter(Protocol):
    async def hit(self, key: str, capacity: int, per_seconds: float, cost: int = 1) -> Decision: ...

    async def refund(self, key: str, capacity: int, per_seconds: float, cost: int = 1) -> None: ...

    async def hit_leased(self, key: str, capacity: int, per_seconds: float, cost: int = 1) -> Decision: ...


def check_args(capacity: int, per_seconds: float, cost: int) -> None:
    if capacity < 1 or per_seconds <= 0 or cost < 1:
        raise ValueError(f"bad bucket: capacity={capacity} per_seconds={per_seconds} cost={cost}")


class MemoryRateLimiter:
    """In-process buckets: correct for one process. The clock is injectable so tests never wait."""

    def __init__(self, max_keys: int = 100_000, clock: Callable[[], float] = time.time) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}
        self._max_keys = max_keys
        self._clock = clock

    async def hit(self, key: str, capacity: int, per_seconds: float, cost: int = 1) -> Decision:
        check_args(capacity, per_seconds, cost)
        return self._take(key, capacity, per_seconds, cost)

    async def refund(self, key: str, capacity: int, per_seconds: float, cost: int = 1) -> None:
        """Give back tokens taken by hit() (never above capacity): the action they paid for failed."""
        check_args(capacity, per_seconds, cost)
        self._take(key, capacity, per_seconds, -cost)

    async def hit_leased(self, key: str, capacity: int, per_seconds: float, cost: int = 1) -> Decision:
        """In one process every hit is local already: the same as hit()."""
        return await self.hit(key, capacity, per_seconds, cost)

    def start(self) -> None:
        """Nothing runs in the background here (the shared limiters sweep their leases)."""

    async def close(self) -> None:
        """Nothing to give back."""

    def _take(self, key: str, capacity: int, per_seconds: float, cost: int) -> Decision:
        # No await in here: within one event loop this read-modify-write is atomic.
        now = self._clock()
        rate = capacity / per_seconds
        tokens, updated = self._buckets.get(key, (float(capacity), now))
        tokens = min(float(capacity), tokens + max(0.0, now - updated) * rate)
        allowed = tokens >= cost
        if allowed:
            tokens = min(float(capacity), tokens - cost)  # cost < 0 is a refund
        if len(self._buckets) >= self._max_keys and key not in self._buckets:
            self._evict()
        self._buckets[key] = (tokens, now)
        return make_decision(allowed, capacity, tokens, rate, now, cost)

    def _evict(self) -> None:
        # Drop the buckets idle longest; an evicted bucket is full, the lenient side.
        for k, _ in sorted(self._buckets.items(), key=lambda kv: kv[1][1])[: len(self._buckets) // 10 + 1]:
            del self._buckets[k]


def make_decision(allowed: bool, capacity: int, tokens: float, rate: float, now: float, cost: int) -> Decision:
    retry = 0.0 if allowed else (cost - tokens) / rate
    if not allowed:
        next_at = now + retry
    else:  # the next request of one token: now while a whole token is left, else when one has refilled
        next_at = now + max(0.0, 1.0 - tokens) / rate
    return Decision(
        allowed=allowed,
        limit=capacity,
        remaining=max(0, int(math.floor(tokens))),
        reset_at=now + (capacity - tokens) / rate,
        retry_after=retry,
        next_at=next_at,
    )
