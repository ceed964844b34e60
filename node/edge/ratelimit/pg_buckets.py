"""Buckets in PostgreSQL (rate_buckets), shared by every process of a node without Redis, with leases."""
from __future__ import annotations

import logging
import math
from typing import Any, Callable, Sequence

import asyncpg

from ...stores import rate_buckets

from .leases import Lease, SharedRateLimiter, lease_chunk

log = logging.getLogger(__name__)


class PgRateLimiter(SharedRateLimiter):
    """Buckets in an UNLOGGED table, one atomic round trip per take (rate_bucket_take), on the database's clock.

    Everything else is SharedRateLimiter's: the fallback while the database fails, and leases for the
    request budget (a busy key costs one round trip per chunk, not per request). A missing row is a full
    bucket; the background sweep deletes rows whose bucket is full again, at most every `prune_interval`
    seconds. `bucket_clock` replaces the database's clock (tests compare answers with MemoryRateLimiter's).
    The default timeout is longer than Redis': takes share the node's pool with the requests, and a wait for
    a free connection under load must not read as an outage (N times the limit while falling back).
    """

    STORE = "PostgreSQL"
    ERRORS = (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
    log = log

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        prune_interval: float = 60.0,
        bucket_clock: Callable[[], float] | None = None,
        **kw: Any,
    ) -> None:
        kw.setdefault("timeout", 2.0)
        super().__init__(**kw)
        self._pool = pool
        self._prune_interval = prune_interval
        self._pruned_at = -math.inf
        self._bucket_clock = bucket_clock

    def _now(self) -> float | None:
        return None if self._bucket_clock is None else self._bucket_clock()

    async def _store_take(self, key: str, capacity: int, per_seconds: float, cost: int) -> tuple[bool, float, float]:
        took = await rate_buckets.take_tokens(self._pool, key, capacity, per_seconds, cost, now=self._now())
        return took.granted >= cost, took.tokens, took.now  # a refund (cost < 0) is always granted

    async def _store_lease(self, key: str, lease: Lease, cost: int, want: int, back: int) -> tuple[int, float, float]:
        took = await rate_buckets.take_tokens(
            self._pool, key, lease.capacity, lease.per_seconds, cost,
            want=want, back=back, chunk=lease_chunk(lease.capacity), now=self._now(),
        )
        return took.granted, took.tokens, took.now

    async def _store_give_back(self, leases: Sequence[tuple[str, Lease]]) -> None:
        await rate_buckets.give_back(
            self._pool, [(key, lease.capacity, lease.per_seconds, lease.tokens) for key, lease in leases], self._now()
        )

    async def prune(self) -> int:
        """Delete the rows of buckets that are full again; returns how many (0 when the database fails)."""
        self._pruned_at = self._clock()
        try:
            return await rate_buckets.delete_full_buckets(self._pool, self._now())
        except self.ERRORS as exc:
            log.info("Could not prune full rate-limit buckets: %s: %s", type(exc).__name__, exc)
            return 0

    async def _housekeep(self) -> None:
        if self._clock() - self._pruned_at >= self._prune_interval:
            await self.prune()
