"""Realtime benchmark: sockets per process and memory per socket; DM latency POST -> recipient socket.

Run on demand (not part of the test suite):

    /work/venv/bin/python tests/bench/bench_realtime.py --dsn postgresql://postgres@127.0.0.1:5432/postgres

It creates the database `reef_bench_rt` (dropped at the end), seeds agents, API keys and open
conversations server-side, starts a private redis-server and `python -m node run` processes on free
ports, and then:
  1. opens --sockets WebSockets to one process and reports the process's RSS growth per socket;
  2. with those sockets open, sends DMs over POST at --rate per second for --duration seconds and
     times each from just before its POST to its arrival on the recipient's socket (p50/p99);
  3. starts a second process on the same PostgreSQL and Redis, moves the recipients' sockets there (the
     first process keeps the others), and repeats 2 with the POSTs going to the first process.
Each DM scenario also reports the CPU time of the node processes and of the load generator, as a share
of one core.
Targets (2-core machine): >= 10,000 sockets per process at <= 32 KiB each; p99 <= 25 ms at 500 DMs/s on
one process, <= 50 ms across two. The load generator shares the machine (and its 2 cores) with the nodes,
PostgreSQL and Redis, so the figures are an upper bound on what the node itself adds.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import os
import resource
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from node.platform.migrations import apply_migrations  # noqa: E402
from tests.test_realtime_processes import Node, RedisServer  # noqa: E402

BENCH_DB = "reef_bench_rt"


def _with_db(dsn: str, name: str) -> str:
    base, _, query = dsn.partition("?")
    head = base.rsplit("/", 1)[0]
    return f"{head}/{name}" + (f"?{query}" if query else "")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def gc_figures(http: aiohttp.ClientSession, base: str) -> dict[str, float]:
    """The node's full (generation 2) garbage collections so far and the longest pause, from /metrics."""
    async with http.get(f"{base}/metrics") as resp:
        text = await resp.text()
    out = {}
    for name, key in (("reef_gc_collections", "gc2_collections"), ("reef_gc_pause_max_seconds", "gc2_max_pause_ms")):
        for line in text.splitlines():
            if line.startswith(name + '{generation="2"}'):
                value = float(line.rsplit(" ", 1)[1])
                out[key] = round(value * 1000, 1) if key.endswith("_ms") else int(value)
    return out


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def seed(dsn: str, sockets: int, pairs: int) -> tuple[str, list[str], list[tuple[str, str]]]:
    """Agents 1..sockets hold sockets (the first `pairs` of them receive DMs); `pairs` more agents send.

    Returns the database URL, the keys of the socket agents, and (sender key, conversation id) per pair.
    """
    admin = await asyncpg.connect(dsn)
    await admin.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
    await admin.execute(f"CREATE DATABASE {BENCH_DB}")
    await admin.close()
    db = _with_db(dsn, BENCH_DB)
    conn = await asyncpg.connect(db, command_timeout=600)
    try:
        await apply_migrations(conn)
        total = sockets + pairs
        ids = [r["id"] for r in await conn.fetch(
            """INSERT INTO agents (name, display_name, status, claimed_at, created_at)
               SELECT 'rt_' || g, 'RT ' || g, 'claimed', now(), now() - interval '30 days'
               FROM generate_series(1, $1) g ORDER BY g RETURNING id""", total)]
        keys = [f"reef_sk_bench{i}_{secrets.token_urlsafe(16)}" for i in range(total)]
        await conn.copy_records_to_table(
            "api_keys", columns=["agent_id", "key_hash", "prefix"],
            records=[(ids[i], hashlib.sha256(keys[i].encode()).digest(), keys[i][:14]) for i in range(total)],
        )
        convs = []
        for p in range(pairs):
            recipient, sender = ids[p], ids[sockets + p]
            low, high = sorted([recipient, sender])
            conv = await conn.fetchval(
                """INSERT INTO dm_conversations (agent_low, agent_high, initiator_id, status, approved_at)
                   VALUES ($1, $2, $3, 'approved', now()) RETURNING id""", low, high, sender)
            convs.append((keys[sockets + p], str(conv)))
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return db, keys[:sockets], convs


class Sockets:
    """Many open streams and the arrival time of every dm, keyed by its content."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http
        self.ws: list[aiohttp.ClientWebSocketResponse] = []
        self.keys: list[str] = []  # the key of each socket in self.ws
        self.readers: list[asyncio.Task[None]] = []
        self.arrived: dict[str, float] = {}
        self.waiters: dict[str, asyncio.Future[float]] = {}

    async def open(self, base: str, keys: list[str], concurrency: int = 200) -> float:
        sem = asyncio.Semaphore(concurrency)
        started = time.perf_counter()

        async def one(key: str) -> None:
            async with sem:
                ws = await self.http.ws_connect(f"{base}/api/v1/stream", headers={"Authorization": f"Bearer {key}"},
                                                heartbeat=None, autoping=True)
                while json.loads((await ws.receive()).data)["type"] != "ready":
                    pass
                self.ws.append(ws)
                self.keys.append(key)
                self.readers.append(asyncio.create_task(self._read(ws)))

        await asyncio.gather(*(one(k) for k in keys))
        return time.perf_counter() - started

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            now = time.perf_counter()
            frame = json.loads(msg.data)
            if frame.get("type") == "dm":
                waiter = self.waiters.pop(frame["content"], None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(now)

    async def close(self) -> None:
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in self.ws), return_exceptions=True)
        self.ws.clear()


async def dm_latency(http: aiohttp.ClientSession, post_base: str, listener: Sockets, convs: list[tuple[str, str]],
                     rate: int, duration: float, tag: str, pids: dict[str, int]) -> dict[str, float]:
    total = int(rate * duration)
    latencies: list[float] = []
    errors = 0
    loop = asyncio.get_running_loop()

    async def one(i: int, at: float) -> None:
        nonlocal errors
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        key, conv = convs[i % len(convs)]
        content = f"{tag}:{i}"
        fut: asyncio.Future[float] = loop.create_future()
        listener.waiters[content] = fut
        sent = time.perf_counter()
        try:
            async with http.post(f"{post_base}/api/v1/agents/dm/conversations/{conv}/send",
                                 json={"message": content}, headers={"Authorization": f"Bearer {key}"}) as resp:
                if resp.status != 201:
                    errors += 1
                    listener.waiters.pop(content, None)
                    return
                await resp.read()
            arrived = await asyncio.wait_for(fut, 10)
            latencies.append((arrived - sent) * 1000)
        except (aiohttp.ClientError, asyncio.TimeoutError):
            errors += 1
            listener.waiters.pop(content, None)

    # The load generator must not pause to collect garbage while it times (a full collection with thousands
    # of sockets open takes 100-200 ms here): collect now, then not until the scenario is over.
    gc.collect()
    gc.disable()
    start = time.perf_counter() + 0.2
    began = time.perf_counter()
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    try:
        await asyncio.gather(*(one(i, start + i / rate) for i in range(total)))
    finally:
        gc.enable()
    elapsed = time.perf_counter() - began
    cpu = {f"cpu_{name}": round((cpu_seconds(pid) - cpu_before[name]) / elapsed, 2) for name, pid in pids.items()}
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] if latencies else float("nan")

    return {
        "sent": total, "delivered": len(latencies), "errors": errors, "rate": total / elapsed,
        "p50": pct(50), "p90": pct(90), "p99": pct(99), "max": latencies[-1] if latencies else float("nan"),
        "mean": statistics.fmean(latencies) if latencies else float("nan"),
        **cpu,
    }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres",
                    help="a PostgreSQL server where the benchmark may create a database")
    ap.add_argument("--sockets", type=int, default=10_000)
    ap.add_argument("--pairs", type=int, default=200, help="sender/recipient pairs for the DM scenarios")
    ap.add_argument("--rate", type=int, default=500, help="DMs per second")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per DM scenario")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.sockets + 500 > hard:
        print(f"note: the open-file limit is {hard}; lowering --sockets to {hard - 500}")
        args.sockets = hard - 500

    print(f"seeding {args.sockets + args.pairs} agents and {args.pairs} conversations ...", flush=True)
    db, socket_keys, convs = await seed(args.dsn, args.sockets, args.pairs)
    tmp = Path(tempfile.mkdtemp(prefix="reef-bench-rt-"))
    redis = RedisServer(tmp)
    redis.start()
    await redis.wait_ready()
    env = {"REEF_LOG__LEVEL": "warning", "REEF_LIMITS__REQUESTS_PER_MINUTE": "100000000",
           "REEF_DATABASE__POOL_MAX": "20"}
    nodes: list[Node] = []
    results: dict[str, object] = {}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as http:
        try:
            node_a = Node(tmp, "a", db, redis.url, env)
            nodes.append(node_a)
            await node_a.wait_healthy(http)
            # Warm up (imports, pools, first queries) before measuring the baseline.
            warm = Sockets(http)
            await warm.open(node_a.url, socket_keys[:50])
            await warm.close()
            await asyncio.sleep(1)
            before = rss_kib(node_a.proc.pid)
            held = Sockets(http)
            print(f"opening {args.sockets} sockets to one process ...", flush=True)
            took = await held.open(node_a.url, socket_keys)
            await asyncio.sleep(2)
            after = rss_kib(node_a.proc.pid)
            per = (after - before) / max(1, len(held.ws))
            results["sockets"] = {"open": len(held.ws), "seconds_to_open": round(took, 1), "rss_before_mib": before // 1024,
                                  "rss_after_mib": after // 1024, "kib_per_socket": round(per, 1)}
            print(f"  {len(held.ws)} sockets open in {took:.1f} s; RSS {before // 1024} -> {after // 1024} MiB; "
                  f"{per:.1f} KiB per socket", flush=True)

            print(f"DMs at {args.rate}/s for {args.duration:.0f} s, one process, {len(held.ws)} sockets open ...", flush=True)
            one = await dm_latency(http, node_a.url, held, convs, args.rate, args.duration, "one",
                                   {"node": node_a.proc.pid, "bench": os.getpid()})
            one["gc_node"] = await gc_figures(http, node_a.url)
            results["one_process"] = one
            print("  " + _fmt(one) + f"; node GC since start: {one['gc_node']}", flush=True)

            node_b = Node(tmp, "b", db, redis.url, env)
            nodes.append(node_b)
            await node_b.wait_healthy(http)
            # The recipients move to B: their sockets on A close (A keeps the other sockets open).
            recipients = set(socket_keys[: args.pairs])
            moving = [ws for ws, key in zip(held.ws, held.keys) if key in recipients]
            await asyncio.gather(*(ws.close() for ws in moving))
            remote = Sockets(http)
            await remote.open(node_b.url, socket_keys[: args.pairs])
            print(f"DMs at {args.rate}/s for {args.duration:.0f} s, POST to A, sockets on B (Redis) ...", flush=True)
            two = await dm_latency(http, node_a.url, remote, convs, args.rate, args.duration, "two",
                                   {"node_a": node_a.proc.pid, "node_b": node_b.proc.pid, "bench": os.getpid()})
            two["gc_node_a"] = await gc_figures(http, node_a.url)
            two["gc_node_b"] = await gc_figures(http, node_b.url)
            results["two_processes"] = two
            print("  " + _fmt(two) + f"; A GC: {two['gc_node_a']}, B GC: {two['gc_node_b']}", flush=True)
            await remote.close()
            await held.close()
        finally:
            for n in nodes:
                n.stop()
            redis.stop()
            admin = await asyncpg.connect(args.dsn)
            await admin.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
            await admin.close()
    print(json.dumps(results, indent=2))


def _fmt(r: dict[str, float]) -> str:
    cpu = "  ".join(f"{k[4:]} {v * 100:.0f}%" for k, v in r.items() if k.startswith("cpu_"))
    return (f"sent {r['sent']} delivered {r['delivered']} errors {r['errors']} at {r['rate']:.0f}/s; "
            f"p50 {r['p50']:.1f} ms  p90 {r['p90']:.1f} ms  p99 {r['p99']:.1f} ms  max {r['max']:.1f} ms; "
            f"CPU of a core: {cpu}")


if __name__ == "__main__":
    asyncio.run(main())
