"""Rate-limit benchmark: hits/s and store calls per hit, one store call per hit (hit) vs leasing (hit_leased).

Run on demand (not part of the test suite), with Redis or PostgreSQL running:

    .venv/bin/python tests/bench/bench_ratelimit.py --redis redis://127.0.0.1:6379/15 --hits 20000
    .venv/bin/python tests/bench/bench_ratelimit.py --backend pg --database postgresql://postgres@127.0.0.1/postgres

One process, sequential hits as the request middleware makes them: on one key (one busy agent) and
round-robin over 100 keys (many agents), with a bucket large enough that every hit is admitted.
Redis keys get a random prefix and expire on their own; with --backend pg the run creates a scratch
database on that server (migrated, dropped at the end).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import asyncpg
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from node.edge.ratelimit.leases import SharedRateLimiter  # noqa: E402
from node.edge.ratelimit.pg_buckets import PgRateLimiter  # noqa: E402
from node.edge.ratelimit.redis_buckets import RedisRateLimiter  # noqa: E402
from node.platform.db import create_pool  # noqa: E402
from node.platform.migrations import apply_migrations  # noqa: E402
from tests.conftest import _with_db  # noqa: E402


def count_store_calls(rl: SharedRateLimiter) -> Callable[[], int]:
    """Wrap the limiter's store methods on the instance; returns a function giving the calls so far."""
    calls = [0]
    for name in ("_store_take", "_store_lease", "_store_give_back"):
        inner = getattr(rl, name)

        async def counted(*args: Any, _inner: Any = inner, **kw: Any) -> Any:
            calls[0] += 1
            return await _inner(*args, **kw)

        setattr(rl, name, counted)
    return lambda: calls[0]


async def run(make: Callable[[], SharedRateLimiter], mode: str, hits: int, keys: int, capacity: int) -> tuple[float, float]:
    rl = make()
    calls = count_store_calls(rl)
    names = [f"bench:{uuid.uuid4().hex}:{i}" for i in range(keys)]
    take = rl.hit if mode == "hit" else rl.hit_leased
    started = time.perf_counter()
    for i in range(hits):
        d = await take(names[i % keys], capacity, 60.0)
        assert d.allowed
    elapsed = time.perf_counter() - started
    await rl.close()  # gives the leftover leases back (counted too)
    return hits / elapsed, calls() / hits


@contextlib.asynccontextmanager
async def scratch_database(server: str) -> AsyncIterator[str]:
    name = f"reef_bench_rl_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(server)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    dsn = _with_db(server, name)
    try:
        conn = await asyncpg.connect(dsn)
        await apply_migrations(conn)
        await conn.close()
        yield dsn
    finally:
        conn = await asyncpg.connect(server)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


@contextlib.asynccontextmanager
async def limiter_factory(args: argparse.Namespace) -> AsyncIterator[Callable[[], SharedRateLimiter]]:
    if args.backend == "redis":
        client = aioredis.from_url(args.redis)
        try:
            await client.ping()
            yield lambda: RedisRateLimiter(client)
        finally:
            await client.aclose()
        return
    async with scratch_database(args.database) as dsn:
        pool = await create_pool(dsn, 1, 10)
        try:
            yield lambda: PgRateLimiter(pool)
        finally:
            await pool.close()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", choices=("redis", "pg"), default="redis")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    ap.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/postgres",
                    help="with --backend pg: a server where the run may create a scratch database")
    ap.add_argument("--hits", type=int, default=20_000)
    ap.add_argument("--capacity", type=int, default=1_000_000)
    args = ap.parse_args()
    async with limiter_factory(args) as make:
        await run(make, "hit", 500, 1, args.capacity)  # warm up: connections, script load, prepared statements
        print(f"{args.hits} hits, capacity {args.capacity}/min, one process, {args.backend}")
        print(f"{'path':<12}{'keys':>6}{'hits/s':>12}{'store calls/hit':>18}")
        for keys in (1, 100):
            for mode in ("hit", "hit_leased"):
                rate, per_hit = await run(make, mode, args.hits, keys, args.capacity)
                print(f"{mode:<12}{keys:>6}{rate:>12,.0f}{per_hit:>18.4f}")


if __name__ == "__main__":
    asyncio.run(main())
