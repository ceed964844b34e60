"""Buckets in Redis, shared by every process of the node, with leased tokens for the request budget."""
from __future__ import annotations

import logging
from typing import Any, Sequence

from redis.exceptions import RedisError

from .leases import Lease, SharedRateLimiter, lease_chunk

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


class RedisRateLimiter(SharedRateLimiter):
    """Buckets in Redis, shared by every process of the node, on Redis' clock (see SharedRateLimiter)."""

    STORE = "Redis"
    ERRORS = (TimeoutError, OSError, RedisError)
    log = log

    def __init__(self, redis: Any, *, prefix: str = REDIS_PREFIX, **kw: Any) -> None:
        super().__init__(**kw)
        self._redis = redis
        self._script = redis.register_script(_TOKEN_BUCKET_LUA)  # EVALSHA, SCRIPT LOAD on NOSCRIPT
        self._lease_script = redis.register_script(_LEASE_LUA)
        self._prefix = prefix

    async def _store_take(self, key: str, capacity: int, per_seconds: float, cost: int) -> tuple[bool, float, float]:
        allowed, tokens, now = await self._script(
            keys=[self._prefix + key], args=[capacity, repr(float(per_seconds)), cost]
        )
        return bool(allowed), float(tokens), float(now)

    async def _store_lease(self, key: str, lease: Lease, cost: int, want: int, back: int) -> tuple[int, float, float]:
        granted, tokens, now = await self._lease_script(
            keys=[self._prefix + key],
            args=[lease.capacity, repr(float(lease.per_seconds)), cost, want, back, lease_chunk(lease.capacity)],
        )
        return int(granted), float(tokens), float(now)

    async def _store_give_back(self, leases: Sequence[tuple[str, Lease]]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, lease in leases:
                await self._script(
                    keys=[self._prefix + key],
                    args=[lease.capacity, repr(float(lease.per_seconds)), -lease.tokens],
                    client=pipe,
                )
            await pipe.execute()
