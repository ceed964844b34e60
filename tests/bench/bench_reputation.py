"""Trust benchmark: recompute trust for 100,000 agents and 1,000,000 attestations; print time and memory.

Run on demand (not part of the test suite):

    .venv/bin/python tests/bench/bench_reputation.py --dsn postgresql://postgres@127.0.0.1:5432/postgres

It (re)creates the database `reef_bench_reputation` (unless --reuse), migrates it, COPYs synthetic
agents (a share of them claimed by their own human), owners and random attestations, then runs the
trust job's function (node.services.trust.recompute_trust) in a fresh child process, so the peak RSS
it reports is the job's, not the seeding's. Goal: under 60 s and under 1 GiB. Then (unless --read-seconds 0)
it starts `python -m node run` on that database and reads GET /api/v1/agents/NAME/reputation of random agents
over --connections keep-alive connections for --read-seconds, and prints req/s, p50 and p99: reads never
compute the graph, so they must stay fast however large it is.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import resource
import socket
import subprocess
import tempfile
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from node.platform.config_types import ReputationConfig  # noqa: E402
from node.platform.migrations import apply_migrations  # noqa: E402
from node.services.trust import recompute_trust  # noqa: E402

BENCH_DB = "reef_bench_reputation"


def _with_db(dsn: str, name: str) -> str:
    base, _, query = dsn.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


async def seed(dsn: str, agents: int, attestations: int, claimed_share: float, reuse: bool) -> None:
    admin = await asyncpg.connect(dsn)
    exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", BENCH_DB)
    if exists and reuse:
        await admin.close()
        return
    if exists:
        await admin.execute(f"DROP DATABASE {BENCH_DB} WITH (FORCE)")
    await admin.execute(f"CREATE DATABASE {BENCH_DB}")
    await admin.close()
    conn = await asyncpg.connect(_with_db(dsn, BENCH_DB), command_timeout=3600)
    await apply_migrations(conn)
    started = time.perf_counter()
    rng = np.random.default_rng(11)
    ids = [uuid.uuid4() for _ in range(agents)]
    now = dt.datetime.now(dt.timezone.utc)
    claimed = rng.random(agents) < claimed_share
    owners = {i: uuid.uuid4() for i in np.flatnonzero(claimed).tolist()}
    await conn.copy_records_to_table("owners", columns=["id", "display_name"],
                                     records=[(o, f"human{i}") for i, o in owners.items()])
    await conn.copy_records_to_table(
        "agents", columns=["id", "name", "display_name", "status", "claimed_at", "owner_id", "created_at"],
        records=[(ids[i], f"bench{i}", f"bench{i}", "claimed" if i in owners else "pending_claim",
                  now if i in owners else None, owners.get(i), now) for i in range(agents)],
    )
    # Random distinct (attester, target) pairs, no self-attestations; a few topics so pairs may repeat.
    src = rng.integers(0, agents, attestations, dtype=np.int64)
    dst = rng.integers(0, agents, attestations, dtype=np.int64)
    topic = rng.integers(0, 3, attestations, dtype=np.int64)
    keep = src != dst
    packed = np.unique((src[keep] * agents + dst[keep]) * 3 + topic[keep])
    topics = ("", "python", "research")
    records = [(ids[int(k // 3 // agents)], ids[int(k // 3 % agents)], topics[int(k % 3)], "good work", now, now)
               for k in packed.tolist()]
    await conn.copy_records_to_table(
        "attestations", columns=["attester_id", "target_id", "topic", "statement", "created_at", "updated_at"],
        records=records,
    )
    await conn.execute("ANALYZE")
    print(f"seeded {agents} agents ({len(owners)} claimed), {len(records)} attestations "
          f"in {time.perf_counter() - started:.1f} s")
    await conn.close()


async def compute(dsn: str) -> None:
    pool = await asyncpg.create_pool(_with_db(dsn, BENCH_DB), min_size=1, max_size=2, command_timeout=3600)
    started = time.perf_counter()
    stats = await recompute_trust(pool, ReputationConfig())
    elapsed = time.perf_counter() - started
    assert stats is not None
    top = await pool.fetchrow("SELECT max(trust) AS top, avg(trust) AS mean, count(*) FILTER (WHERE trust > 0) AS n"
                              " FROM reputation")
    await pool.close()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"agents {stats['agents']}, edges {stats['edges']}, iterations {stats['iterations']}")
    print(f"load {stats['load_s']:.2f} s, compute {stats['compute_s']:.2f} s, save {stats['save_s']:.2f} s")
    print(f"recompute_trust: {elapsed:.2f} s total (goal < 60 s); peak RSS of this process {peak_mib:.0f} MiB (goal < 1024)")
    print(f"trust: max {top['top']:.2f}, mean {top['mean']:.3f}, agents with trust > 0: {top['n']}")


async def read_load(dsn: str, seconds: float, connections: int) -> None:
    import aiohttp

    conn = await asyncpg.connect(_with_db(dsn, BENCH_DB))
    names = [r["name"] for r in await conn.fetch("SELECT name FROM agents ORDER BY random() LIMIT 5000")]
    await conn.close()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("REEF_")} | {
        "REEF_DATABASE__URL": _with_db(dsn, BENCH_DB), "REEF_SERVER__PORT": str(port),
        "REEF_NODE__DATA_DIR": tempfile.mkdtemp(prefix="reef-bench-rep-"), "REEF_LOG__LEVEL": "warning",
        "REEF_LIMITS__UNAUTHENTICATED_PER_MINUTE": "100000000", "REEF_LIMITS__REQUESTS_PER_MINUTE": "100000000",
        "REEF_REPUTATION__RECOMPUTE_SECONDS": "0",  # the load measures reads alone
    }
    node = subprocess.Popen([sys.executable, "-m", "node", "run"], cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    latencies: list[float] = []
    codes: dict[int, int] = {}
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as http:
            for _ in range(240):
                try:
                    async with http.get(f"{base}/api/v1/health") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.5)
            else:
                raise SystemExit("node did not come up")
            rng = random.Random(7)
            deadline = time.perf_counter() + seconds

            async def one_connection() -> None:
                while time.perf_counter() < deadline:
                    started = time.perf_counter()
                    async with http.get(f"{base}/api/v1/agents/{rng.choice(names)}/reputation") as resp:
                        await resp.read()
                        codes[resp.status] = codes.get(resp.status, 0) + 1
                    latencies.append(time.perf_counter() - started)

            began = time.perf_counter()
            await asyncio.gather(*(one_connection() for _ in range(connections)))
            elapsed = time.perf_counter() - began
    finally:
        node.terminate()
        node.wait(30)
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    print(f"GET /reputation under load ({connections} connections, {seconds:.0f} s, python load generator on the "
          f"same machine): {len(latencies) / elapsed:.0f} req/s, p50 {pick(0.5):.1f} ms, p99 {pick(0.99):.1f} ms, "
          f"statuses {codes}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--agents", type=int, default=100_000)
    parser.add_argument("--attestations", type=int, default=1_000_000)
    parser.add_argument("--claimed-share", type=float, default=0.1)
    parser.add_argument("--reuse", action="store_true", help="keep an existing benchmark database")
    parser.add_argument("--read-seconds", type=float, default=10.0, help="read load after the recompute (0: none)")
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--compute-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.compute_only:
        asyncio.run(compute(args.dsn))
        return
    asyncio.run(seed(args.dsn, args.agents, args.attestations, args.claimed_share, args.reuse))
    subprocess.run([sys.executable, __file__, "--dsn", args.dsn, "--compute-only"], check=True)
    if args.read_seconds > 0:
        asyncio.run(read_load(args.dsn, args.read_seconds, args.connections))


if __name__ == "__main__":
    main()
