"""Buckets in Redis, shared by every process of the node, with leased tokens for the request budget."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from typing import Any, Callable

from redis.exceptions import RedisError

from ...platform.config import Config

from .buckets import Decision, MemoryRateLimiter, check_args, make_decision

log = logging.getLogger(__name__)

REDIS_PREFIX = "reef:rl:"

# One atomic read-modify-write per hit, on Redis' clock so that every process agrees on "now".
# State is a hash {t: tokens, ts: unix seconds}; a missing key is a full bucket, so the key
# expires once the bucket would be full again (plus a second) and idle buckets cost nothing.
# Numbers go back as strings: Redis truncates Lua numbers to integers.
# Both scripts: refill the bucket (ARGV[1] tokens per ARGV[2] seconds) by Redis' clock, then save it.
_REFILL_LUA = """
local capacity = tonumber(ARGV[1])
local rate = capacity / tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens, ts = tonumber(state[1]), tonumber(state[2])
if tokens == nil or ts == nil then tokens, ts = capacity, now end
if now > ts then tokens = math.min(capacity, tokens + (now - ts) * rate) end
"""
_SAVE_LUA = """
local t_str, now_str = string.format('%.17g', tokens), string.format('%.6f', now)
redis.call('HSET', KEYS[1], 't', t_str, 'ts', now_str)
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate * 1000) + 1000)
"""
_TOKEN_BUCKET_LUA = _REFILL_LUA + """
local cost = tonumber(ARGV[3])
local allowed = 0
if tokens >= cost then
  tokens = math.min(capacity, tokens - cost)
  allowed = 1
end
""" + _SAVE_LUA + """
return {allowed, t_str, now_str}
"""


# A lease: take up to ARGV[4] tokens at once (at least the cost, or nothing) for a process to spend
# locally. ARGV[5] tokens of an expired lease come back first (in the same round trip). While the
# bucket is low (fewer than two chunks, ARGV[6]) only the cost is granted, so the last tokens are not
# parked in one process while another is refused.
_LEASE_LUA = _REFILL_LUA + """
local cost, want, back, chunk = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
tokens = math.min(capacity, tokens + back)
local granted = 0
if tokens >= cost then
  granted = math.max(cost, math.min(want, math.floor(tokens)))
  if tokens < 2 * chunk then granted = cost end
  tokens = tokens - granted
end
""" + _SAVE_LUA + """
return {granted, t_str, now_str}
"""


class _Lease:
    """Tokens one process took from a shared bucket and spends locally (mutable, one per key)."""

    __slots__ = ("capacity", "per_seconds", "tokens", "size", "redis_tokens", "server_now", "fetched_at",
                 "used_at", "fetching")

    def __init__(self, capacity: int, per_seconds: float, size: int) -> None:
        self.capacity = capacity
        self.per_seconds = per_seconds
        self.tokens = 0  # leased, not yet spent
        self.size = size  # tokens to ask for next time
        self.redis_tokens = 0.0  # what Redis had left when the lease was granted
        self.server_now = 0.0  # Redis' clock then
        self.fetched_at = -math.inf  # our clock then
        self.used_at = -math.inf
        self.fetching: asyncio.Future[Decision | None] | None = None  # the lease request in flight


def lease_chunk(capacity: int, cap: int = 50) -> int:
    """The most tokens one process leases at once for a bucket: a twentieth of it, at most `cap`."""
    return max(1, min(cap, capacity // 20))


class RedisRateLimiter:
    """Buckets in Redis, shared by every process of the node.

    When Redis fails (refused, timed out, read-only replica...) and a fallback is given, the
    limiter answers from the in-process fallback so the API stays up: an outage of a shared
    cache must not turn into an outage of the node. The price is that, meanwhile, each process
    enforces the limits on its own (N processes allow up to N times the limit) from fresh
    buckets. It then skips Redis for `retry_interval` seconds (so requests do not each wait for
    a dead server), logs a warning at most once per `warn_interval`, and logs when Redis is back.
    Every call is bounded by `timeout`, because redis-py's own retries with backoff would
    otherwise hold a request for seconds. Without a fallback, Redis errors propagate.

    hit() asks Redis every time (the per-action limits, where capacities are small and exactness
    matters). hit_leased(), for the general request budget, leases tokens instead: the process
    takes a chunk from the shared bucket in one atomic step (at most lease_chunk(capacity), a
    twentieth of the bucket capped at 50; only the cost while the bucket is below two chunks) and
    spends it locally, going back to Redis when the lease is spent, idle for `lease_idle` seconds,
    or older than `lease_max_age`. The lease size starts at the cost and doubles each time a lease
    is spent within `lease_idle`, so a key hit now and then leases one token at a time (one call
    per hit, nothing left over to give back) and only busy keys lease chunks. Unspent tokens of
    an expired lease go back to Redis with that key's next lease request or by sweep(), which
    start() runs every `lease_idle` seconds and close() runs for every lease.

    Trade-off: leases are taken atomically, so across processes no more than the bucket allows is
    ever admitted; but a process may refuse while another holds leased tokens it has not spent yet,
    at most lease_chunk(capacity) - 1 per process per key and only until that lease expires (about
    `lease_idle` seconds after its key goes quiet). X-RateLimit-Remaining from a lease is what
    Redis had left when the lease was granted plus the unspent leased tokens, so it is exact for one
    process and approximate with several. Concurrent hits of one key in one process share a single
    lease request; if Redis refuses it, they are all refused with its answer.
    """

    def __init__(
        self,
        redis: Any,
        *,
        fallback: MemoryRateLimiter | None = None,
        prefix: str = REDIS_PREFIX,
        timeout: float = 0.5,
        retry_interval: float = 5.0,
        warn_interval: float = 60.0,
        lease_idle: float = 1.0,
        lease_max_age: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._script = redis.register_script(_TOKEN_BUCKET_LUA)  # EVALSHA, SCRIPT LOAD on NOSCRIPT
        self._lease_script = redis.register_script(_LEASE_LUA)
        self._leases: dict[str, _Lease] = {}
        self._lease_idle = lease_idle
        self._lease_max_age = lease_max_age
        self._sweeper: asyncio.Task[None] | None = None
        self._fallback = fallback
        self._prefix = prefix
        self._timeout = timeout
        self._retry_interval = retry_interval
        self._warn_interval = warn_interval
        self._clock = clock
        self._down_until = -math.inf
        self._last_warning = -math.inf
        self._failing = False

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
                allowed, tokens, now = await self._script(
                    keys=[self._prefix + key], args=[capacity, repr(float(per_seconds)), cost]
                )
        except (TimeoutError, OSError, RedisError) as exc:
            if self._fallback is None:
                raise
            self._note_failure(exc)
            return self._fallback._take(key, capacity, per_seconds, cost)
        if self._failing:
            self._failing = False
            log.warning("Redis answers again; rate limits are shared between processes again")
        return make_decision(bool(allowed), capacity, float(tokens), capacity / per_seconds, float(now), cost)

    async def hit_leased(self, key: str, capacity: int, per_seconds: float, cost: int = 1) -> Decision:
        """Like hit(), from a locally held lease of the shared bucket: most calls do not reach Redis."""
        check_args(capacity, per_seconds, cost)
        lease = self._leases.get(key)
        if lease is None:
            lease = self._leases[key] = _Lease(capacity, per_seconds, cost)
        lease.capacity, lease.per_seconds = capacity, per_seconds
        while True:
            now = self._clock()
            if lease.tokens >= cost and not self._expired(lease, now):
                lease.tokens -= cost
                lease.used_at = now
                return make_decision(
                    True, capacity, lease.redis_tokens + lease.tokens, capacity / per_seconds,
                    lease.server_now + (now - lease.fetched_at), cost,
                )
            if lease.fetching is not None:
                # Another hit of this key is asking Redis: share its answer instead of asking too.
                refused = await asyncio.shield(lease.fetching)
                if refused is not None:
                    return refused
                continue
            if self._fallback is not None and now < self._down_until:
                return self._fallback._take(key, capacity, per_seconds, cost)
            return await self._fetch_lease(key, lease, cost)

    async def _fetch_lease(self, key: str, lease: _Lease, cost: int) -> Decision:
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
                granted, tokens, server_now = await self._lease_script(
                    keys=[self._prefix + key],
                    args=[capacity, repr(float(per_seconds)), cost, max(cost, lease.size), back,
                          lease_chunk(capacity)],
                )
        except (TimeoutError, OSError, RedisError) as exc:
            if self._fallback is None:
                raise
            self._note_failure(exc)  # `back` is lost: the bucket refills anyway (the strict side)
            return self._fallback._take(key, capacity, per_seconds, cost)
        else:
            if self._failing:
                self._failing = False
                log.warning("Redis answers again; rate limits are shared between processes again")
            granted = int(granted)
            lease.redis_tokens, lease.server_now = float(tokens), float(server_now)
            lease.fetched_at = lease.used_at = self._clock()
            if granted < cost:
                refused = make_decision(False, capacity, float(tokens), capacity / per_seconds, float(server_now), cost)
                return refused
            lease.tokens = granted - cost
            return make_decision(
                True, capacity, lease.redis_tokens + lease.tokens, capacity / per_seconds, lease.server_now, cost
            )
        finally:
            lease.fetching = None
            fetching.set_result(refused)

    def _expired(self, lease: _Lease, now: float) -> bool:
        return now - lease.used_at >= self._lease_idle or now - lease.fetched_at >= self._lease_max_age

    async def sweep(self, *, everything: bool = False) -> int:
        """Give the unspent tokens of expired leases (or of all, on shutdown) back to Redis; returns how many."""
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
                async with self._redis.pipeline(transaction=False) as pipe:
                    for key, lease in back:
                        await self._script(
                            keys=[self._prefix + key],
                            args=[lease.capacity, repr(float(lease.per_seconds)), -lease.tokens],
                            client=pipe,
                        )
                    await pipe.execute()
        except (TimeoutError, OSError, RedisError) as exc:
            # Lost tokens only make those buckets stricter until they refill.
            log.warning("Could not give %d leased rate-limit tokens back to Redis: %s: %s",
                        sum(lease.tokens for _, lease in back), type(exc).__name__, exc)
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
            except Exception:  # a bug here must not stop the sweeping for the life of the process
                log.exception("Sweeping rate-limit leases failed")

    def _note_failure(self, exc: BaseException) -> None:
        now = self._clock()
        self._failing = True
        self._down_until = now + self._retry_interval
        if now - self._last_warning >= self._warn_interval:
            self._last_warning = now
            log.warning(
                "Redis unreachable for rate limits (%s: %s); using in-process limits, retrying every %.0f s",
                type(exc).__name__, exc, self._retry_interval,
            )


def create_rate_limiter(cfg: Config, redis: Any) -> MemoryRateLimiter | RedisRateLimiter:
    """Redis-backed (with an in-process fallback) when the node has Redis, else in-process."""
    if redis is None:
        return MemoryRateLimiter()
    return RedisRateLimiter(redis, fallback=MemoryRateLimiter())
