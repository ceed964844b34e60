"""Which limiter a node uses: Redis when it has one, PostgreSQL when several processes share the node, else in-process."""
from __future__ import annotations

from typing import Any

from ...platform.config import Config

from .buckets import MemoryRateLimiter
from .pg_buckets import PgRateLimiter
from .redis_buckets import RedisRateLimiter


def create_rate_limiter(
    cfg: Config, redis: Any, pool: Any = None, shared: bool = False
) -> MemoryRateLimiter | RedisRateLimiter | PgRateLimiter:
    """Redis-backed when the node has Redis; else PostgreSQL-backed when `shared` (several worker processes
    serve the node: in-process buckets would admit N times the limit); else in-process, exact for one process.
    The shared ones fall back to in-process limits while their store fails."""
    if redis is not None:
        return RedisRateLimiter(redis, fallback=MemoryRateLimiter())
    if shared:
        if pool is None:
            raise ValueError("create_rate_limiter(..., shared=True) needs the database pool")
        return PgRateLimiter(pool, fallback=MemoryRateLimiter())
    return MemoryRateLimiter()
