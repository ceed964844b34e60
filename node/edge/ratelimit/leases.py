"""Buckets in a shared store (Redis or PostgreSQL): the fallback when it fails, and leased tokens for the request budget.

A subclass says how to take tokens from its store (_store_take, _store_lease, _store_give_back) and which
errors mean the store is unreachable; everything else, the leases and the fallback, lives here once."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from typing import Callable, ClassVar, Sequence

from .buckets import Decision, MemoryRateLimiter, check_args, make_decision

log = logging.getLogger(__name__)


class Lease:
    """Tokens one process took from a shared bucket and spends locally (mutable, one per key)."""

    __slots__ = ("capacity", "per_seconds", "tokens", "size", "store_tokens", "server_now", "fetched_at",
                 "used_at", "fetching")

    def __init__(self, capacity: int, per_seconds: float, size: int) -> None:
        self.capacity = capacity
        self.per_seconds = per_seconds
        self.tokens = 0  # leased, not yet spent
        self.size = size  # tokens to ask for next time
        self.store_tokens = 0.0  # what the shared bucket had left when the lease was granted
        self.server_now = 0.0  # the store's clock then
        self.fetched_at = -math.inf  # our clock then
        self.used_at = -math.inf
        self.fetching: asyncio.Future[Decision | None] | None = None  # the lease request in flight


def lease_chunk(capacity: int, cap: int = 50) -> int:
    """The most tokens one process leases at once for a bucket: a twentieth of it, at most `cap`."""
    return max(1, min(cap, capacity // 20))


class SharedRateLimiter:
    """Buckets in a store shared by every process of the node.

    When the store fails (refused, timed out, read-only...) and a fallback is given, the limiter
    answers from the in-process fallback so the API stays up: an outage of the shared store must
    not turn into an outage of the node. The price is that, meanwhile, each process enforces the
    limits on its own (N processes allow up to N times the limit) from fresh buckets. It then skips
    the store for `retry_interval` seconds (so requests do not each wait for a dead server), logs a
    warning at most once per `warn_interval`, and logs when the store is back. Every call is bounded
    by `timeout`, because client-side retries with backoff would otherwise hold a request for
    seconds. Without a fallback, the store's errors propagate.

    hit() asks the store every time (the per-action limits, where capacities are small and exactness
    matters). hit_leased(), for the general request budget, leases tokens instead: the process
    takes a chunk from the shared bucket in one atomic step (at most lease_chunk(capacity), a
    twentieth of the bucket capped at 50; only the cost while the bucket is below two chunks) and
    spends it locally, going back to the store when the lease is spent, idle for `lease_idle`
    seconds, or older than `lease_max_age`. The lease size starts at the cost and doubles each time
    a lease is spent within `lease_idle`, so a key hit now and then leases one token at a time (one
    call per hit, nothing left over to give back) and only busy keys lease chunks. Unspent tokens of
    an expired lease go back with that key's next lease request or by sweep(), which start() runs
    every `lease_idle` seconds and close() runs for every lease.

    Trade-off: leases are taken atomically, so across processes no more than the bucket allows is
    ever admitted; but a process may refuse while another holds leased tokens it has not spent yet,
    at most lease_chunk(capacity) - 1 per process per key and only until that lease expires (about
    `lease_idle` seconds after its key goes quiet). X-RateLimit-Remaining from a lease is what the
    store had left when the lease was granted plus the unspent leased tokens, so it is exact for one
    process and approximate with several. Concurrent hits of one key in one process share a single
    lease request; if the store refuses it, they are all refused with its answer.
    """

    STORE: ClassVar[str] = "the shared store"  # its name in log lines
    ERRORS: ClassVar[tuple[type[BaseException], ...]] = (TimeoutError, OSError)  # the store is unreachable
    log: ClassVar[logging.Logger] = log

    def __init__(
        self,
        *,
        fallback: MemoryRateLimiter | None = None,
        timeout: float = 0.5,
        retry_interval: float = 5.0,
        warn_interval: float = 60.0,
        lease_idle: float = 1.0,
        lease_max_age: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._leases: dict[str, Lease] = {}
        self._lease_idle = lease_idle
        self._lease_max_age = lease_max_age
        self._sweeper: asyncio.Task[None] | None = None
        self._fallback = fallback
        self._timeout = timeout
        self._retry_interval = retry_interval
        self._warn_interval = warn_interval
        self._clock = clock
        self._down_until = -math.inf
        self._last_warning = -math.inf
        self._failing = False

    # ---- what a store provides ----------------------------------------------------------------------

    async def _store_take(self, key: str, capacity: int, per_seconds: float, cost: int) -> tuple[bool, float, float]:
        """Take `cost` tokens (a negative cost gives them back): (allowed, tokens left, the store's now)."""
        raise NotImplementedError

    async def _store_lease(self, key: str, lease: Lease, cost: int, want: int, back: int) -> tuple[int, float, float]:
        """Give `back` tokens, then take at least `cost`, up to `want`: (granted, tokens left, the store's now)."""
        raise NotImplementedError

    async def _store_give_back(self, leases: Sequence[tuple[str, Lease]]) -> None:
        """Return the unspent tokens of these leases, in one round trip."""
        raise NotImplementedError

    async def _housekeep(self) -> None:
        """Periodic upkeep of the store, run with every background sweep (nothing by default)."""

    # ---- the limiter ----------------------------------------------------------------------------------

    @property
    def degraded(self) -> bool:
        """True while answers come from the in-process fallback."""
        return self._failing

    async def hit(self, key: str, capacity: int, per_seconds: float, cost: int = 1) -> Decision:
        check_args(capacity, per_seconds, cost)
        return await self._take(key, capacity, per_seconds, cost)

    async def refund(self, key: str, capacity: int, per_seconds: float, cost: int = 1) -> None:
        """Give back tokens taken by hit() (never above capacity): the action they paid for failed."""
        check_args(capacity, per_seconds, cost)
        await self._take(key, capacity, per_seconds, -cost)

    async def _take(self, key: str, capacity: int, per_seconds: float, cost: int) -> Decision:
        if self._fallback is not None and self._clock() < self._down_until:
            return self._fallback._take(key, capacity, per_seconds, cost)
        try:
            async with asyncio.timeout(self._timeout):
                allowed, tokens, now = await self._store_take(key, capacity, per_seconds, cost)
        except self.ERRORS as exc:
            if self._fallback is None:
                raise
            self._note_failure(exc)
            return self._fallback._take(key, capacity, per_seconds, cost)
        self._note_success()
        return make_decision(allowed, capacity, tokens, capacity / per_seconds, now, cost)

    async def hit_leased(self, key: str, capacity: int, per_seconds: float, cost: int = 1) -> Decision:
        """Like hit(), from a locally held lease of the shared bucket: most calls do not reach the store."""
        check_args(capacity, per_seconds, cost)
        lease = self._leases.get(key)
        if lease is None:
            lease = self._leases[key] = Lease(capacity, per_seconds, cost)
        lease.capacity, lease.per_seconds = capacity, per_seconds
        while True:
            now = self._clock()
            if lease.tokens >= cost and not self._expired(lease, now):
                lease.tokens -= cost
                lease.used_at = now
                return make_decision(
                    True, capacity, lease.store_tokens + lease.tokens, capacity / per_seconds,
                    lease.server_now + (now - lease.fetched_at), cost,
                )
            if lease.fetching is not None:
                # Another hit of this key is asking the store: share its answer instead of asking too.
                refused = await asyncio.shield(lease.fetching)
                if refused is not None:
                    return refused
                continue
            if self._fallback is not None and now < self._down_until:
                return self._fallback._take(key, capacity, per_seconds, cost)
            return await self._fetch_lease(key, lease, cost)

    async def _fetch_lease(self, key: str, lease: Lease, cost: int) -> Decision:
        capacity, per_seconds = lease.capacity, lease.per_seconds
        now = self._clock()
        if now - lease.used_at >= self._lease_idle:
            lease.size = cost  # the key went quiet: start small again
        elif now - lease.fetched_at < self._lease_idle:
            lease.size = min(lease_chunk(capacity), lease.size * 2)  # spent quickly: lease more
        else:
            lease.size = max(cost, lease.size // 2)
        back, lease.tokens = lease.tokens, 0  # the unspent rest of the lease goes back with this request
        fetching = lease.fetching = asyncio.get_running_loop().create_future()
        refused: Decision | None = None
        try:
            async with asyncio.timeout(self._timeout):
                granted, tokens, server_now = await self._store_lease(key, lease, cost, max(cost, lease.size), back)
        except self.ERRORS as exc:
            if self._fallback is None:
                raise
            self._note_failure(exc)  # `back` is lost: the bucket refills anyway (the strict side)
            return self._fallback._take(key, capacity, per_seconds, cost)
        else:
            self._note_success()
            lease.store_tokens, lease.server_now = tokens, server_now
            lease.fetched_at = lease.used_at = self._clock()
            if granted < cost:
                refused = make_decision(False, capacity, tokens, capacity / per_seconds, server_now, cost)
                return refused
            lease.tokens = granted - cost
            return make_decision(
                True, capacity, lease.store_tokens + lease.tokens, capacity / per_seconds, lease.server_now, cost
            )
        finally:
            lease.fetching = None
            fetching.set_result(refused)

    def _expired(self, lease: Lease, now: float) -> bool:
        return now - lease.used_at >= self._lease_idle or now - lease.fetched_at >= self._lease_max_age

    async def sweep(self, *, everything: bool = False) -> int:
        """Give the unspent tokens of expired leases (or of all, on shutdown) back to the store; returns how many."""
        now = self._clock()
        done = [
            (key, lease) for key, lease in self._leases.items()
            if lease.fetching is None and (everything or self._expired(lease, now))
        ]
        for key, _ in done:
            del self._leases[key]
        back = [(key, lease) for key, lease in done if lease.tokens > 0]
        if not back:
            return 0
        try:
            async with asyncio.timeout(self._timeout):
                await self._store_give_back(back)
        except self.ERRORS as exc:
            # Lost tokens only make those buckets stricter until they refill.
            self.log.warning("Could not give %d leased rate-limit tokens back to %s: %s: %s",
                             sum(lease.tokens for _, lease in back), self.STORE, type(exc).__name__, exc)
            return 0
        return sum(lease.tokens for _, lease in back)

    def start(self) -> None:
        """Sweep expired leases every `lease_idle` seconds, until close()."""
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="ratelimit-lease-sweeper")

    async def close(self) -> None:
        """Stop sweeping and give every unspent leased token back (the node is stopping)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        await self.sweep(everything=True)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._lease_idle)
            try:
                await self.sweep()
                await self._housekeep()
            except Exception:  # a bug here must not stop the sweeping for the life of the process
                self.log.exception("Sweeping rate-limit leases failed")

    def _note_success(self) -> None:
        if self._failing:
            self._failing = False
            self.log.warning("%s answers again; rate limits are shared between processes again", self.STORE)

    def _note_failure(self, exc: BaseException) -> None:
        now = self._clock()
        self._failing = True
        self._down_until = now + self._retry_interval
        if now - self._last_warning >= self._warn_interval:
            self._last_warning = now
            self.log.warning(
                "%s unreachable for rate limits (%s: %s); using in-process limits, retrying every %.0f s",
                self.STORE, type(exc).__name__, exc, self._retry_interval,
            )
