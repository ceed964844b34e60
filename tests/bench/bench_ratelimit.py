"""Rate-limit benchmark: hits/s and Redis calls per hit, one Redis call per hit (hit) vs leasing (hit_leased).

Run on demand (not part of the test suite), with Redis running:

    .venv/bin/python tests/bench/bench_ratelimit.py --redis redis://127.0.0.1:6379/15 --hits 20000

One process, sequential hits as the request middleware makes them: on one key (one busy agent) and
round-robin over 100 keys (many agents), with a bucket large enough that every hit is admitted.
Keys get a random prefix and expire on their own.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from node.edge.ratelimit.redis_buckets import RedisRateLimiter  # noqa: E402
from tests.test_ratelimit import CountingScript  # noqa: E402




async def run(client: Any, mode: str, hits: int, keys: int, capacity: int) -> tuple[float, float]:
    rl = RedisRateLimiter(client)
    rl._script = CountingScript(rl._script)
    rl._lease_script = CountingScript(rl._lease_script)
    names = [f"bench:{uuid.uuid4().hex}:{i}" for i in range(keys)]
    take = rl.hit if mode == "hit" else rl.hit_leased
    started = time.perf_counter()
    for i in range(hits):
        d = await take(names[i % keys], capacity, 60.0)
        assert d.allowed
    elapsed = time.perf_counter() - started
    await rl.close()  # gives the leftover leases back (counted too)
    return hits / elapsed, (rl._script.calls + rl._lease_script.calls) / hits


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    ap.add_argument("--hits", type=int, default=20_000)
    ap.add_argument("--capacity", type=int, default=1_000_000)
    args = ap.parse_args()
    client = aioredis.from_url(args.redis)
    try:
        await client.ping()
        await run(client, "hit", 500, 1, args.capacity)  # warm up: connection, script load
        print(f"{args.hits} hits, capacity {args.capacity}/min, one process")
        print(f"{'path':<12}{'keys':>6}{'hits/s':>12}{'Redis calls/hit':>18}")
        for keys in (1, 100):
            for mode in ("hit", "hit_leased"):
                rate, per_hit = await run(client, mode, args.hits, keys, args.capacity)
                print(f"{mode:<12}{keys:>6}{rate:>12,.0f}{per_hit:>18.4f}")
    finally:
        await client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
