"""Agent-network benchmark: seed a large data set, run a node, load it from outside, print a table.

Run on demand (not part of the test suite):

    .venv/bin/python tests/bench/bench_network.py --dsn postgresql://postgres@127.0.0.1:5432/postgres

It (re)creates the database `reef_bench` (unless --reuse), seeds it server-side with
generate_series (1,000,000 posts, 10,000 agents, 100 submolts, 5,000,000 votes by default),
starts `python -m node run` on a free port as a separate process, and loads it with wrk
(Debian's `wrk`, installed if missing and possible) or, failing that, with a multi-process
aiohttp load generator. Each scenario runs --duration seconds at --connections connections.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from multiprocessing import Process, Queue
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from node.platform.migrations import apply_migrations  # noqa: E402

# REEF_BENCH_DB: another name, so that benches of several checkouts on one server do not drop each other's data
BENCH_DB = os.environ.get("REEF_BENCH_DB", "reef_bench")
N_KEYS = 2000


def _with_db(dsn: str, name: str) -> str:
    base, _, query = dsn.partition("?")
    head = base.rsplit("/", 1)[0]
    return f"{head}/{name}" + (f"?{query}" if query else "")


async def seed(dsn: str, agents: int, submolts: int, posts: int, votes: int, reuse: bool) -> dict:
    admin = await asyncpg.connect(dsn)
    exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", BENCH_DB)
    if exists and not reuse:
        await admin.execute(f"DROP DATABASE {BENCH_DB} WITH (FORCE)")
    if not exists or not reuse:
        await admin.execute(f"CREATE DATABASE {BENCH_DB}")
    await admin.close()
    db = _with_db(dsn, BENCH_DB)
    conn = await asyncpg.connect(db, command_timeout=3600)
    await apply_migrations(conn)
    meta_path = Path(tempfile.gettempdir()) / f"{BENCH_DB}_meta.json"
    if reuse and exists and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        await conn.close()
        print(f"reusing seeded database {BENCH_DB}", flush=True)
        return meta
    timings: dict[str, float] = {}

    async def step(name: str, sql: str, *args) -> None:
        t = time.perf_counter()
        await conn.execute(sql, *args)
        timings[name] = time.perf_counter() - t
        print(f"  seeded {name:<10} in {timings[name]:7.1f} s", flush=True)

    print(f"seeding {agents} agents, {submolts} submolts, {posts} posts, {votes} votes", flush=True)
    await step(
        "agents",
        """INSERT INTO agents (name, display_name, description, status, created_at)
           SELECT 'bench_' || g, 'Bench agent ' || g, 'A benchmark agent', 'claimed', now() - interval '60 days'
           FROM generate_series(1, $1) g""",
        agents,
    )
    await step(
        "submolts",
        """INSERT INTO submolts (name, display_name, description, creator_id)
           SELECT 'bench' || g, 'Bench ' || g, 'Submolt number ' || g,
                  (SELECT id FROM agents ORDER BY name LIMIT 1)
           FROM generate_series(1, $1) g""",
        submolts,
    )
    await step(
        "posts",
        """WITH s AS (SELECT array_agg(id) ids FROM submolts), a AS (SELECT array_agg(id) ids FROM agents)
           INSERT INTO posts (submolt_id, author_id, title, content, content_html, created_at)
           SELECT s.ids[(1 + g % cardinality(s.ids))::int], a.ids[(1 + (g * 7919) % cardinality(a.ids))::int],
                  'Post number ' || g || ' about agents and reefs',
                  'The body of post ' || g || ', with some words to search for: coral, tide, kelp.',
                  '<p>The body of post ' || g || ', with some words to search for: coral, tide, kelp.</p>',
                  now() - random() * interval '30 days'
           FROM generate_series(1::bigint, $1::bigint) g, s, a""",
        posts,
    )
    # Votes: skewed towards a minority of posts, as real votes are; duplicates are dropped.
    await step(
        "votes",
        """WITH p AS (SELECT array_agg(id) ids FROM posts), a AS (SELECT array_agg(id) ids FROM agents)
           INSERT INTO post_votes (post_id, agent_id, value)
           SELECT p.ids[1 + floor(power(random(), 2) * cardinality(p.ids))::int],
                  a.ids[1 + floor(random() * cardinality(a.ids))::int],
                  CASE WHEN random() < 0.8 THEN 1 ELSE -1 END
           FROM generate_series(1, $1) g, p, a
           ON CONFLICT DO NOTHING""",
        votes,
    )
    await step(
        "counters",
        """UPDATE posts p SET upvotes = v.up, downvotes = v.down, score = v.up - v.down
           FROM (SELECT post_id, count(*) FILTER (WHERE value = 1) up, count(*) FILTER (WHERE value = -1) down
                 FROM post_votes GROUP BY post_id) v
           WHERE p.id = v.post_id""",
    )
    await step(
        "karma",
        """UPDATE agents a SET karma = k.karma, posts_count = k.n
           FROM (SELECT author_id, sum(score) karma, count(*) n FROM posts GROUP BY author_id) k
           WHERE a.id = k.author_id""",
    )
    await step(
        "sub_counts",
        """UPDATE submolts s SET post_count = c.n FROM (SELECT submolt_id, count(*) n FROM posts GROUP BY submolt_id) c
           WHERE s.id = c.submolt_id""",
    )
    # One post with 200 comments: 40 top-level comments with a chain of 4 replies each.
    post_id = await conn.fetchval("SELECT id FROM posts ORDER BY hot_rank DESC LIMIT 1")
    agent_ids = [r["id"] for r in await conn.fetch("SELECT id FROM agents ORDER BY name LIMIT 200")]
    t = time.perf_counter()
    async with conn.transaction():
        for i in range(40):
            parent = None
            for depth in range(5):
                parent = await conn.fetchval(
                    """INSERT INTO comments (post_id, parent_id, author_id, content, content_html, depth, score, upvotes)
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id""",
                    post_id, parent, agent_ids[(i * 5 + depth) % len(agent_ids)],
                    f"Comment {i}.{depth}", f"<p>Comment {i}.{depth}</p>", depth, (i * 7 + depth) % 13,
                )
        await conn.execute("UPDATE posts SET comment_count = 200 WHERE id = $1", post_id)
    timings["comments"] = time.perf_counter() - t
    # API keys for the first N_KEYS agents, written to a file for the load generator.
    keys = []
    rows = await conn.fetch("SELECT id FROM agents ORDER BY name LIMIT $1", N_KEYS)
    records = []
    for r in rows:
        key = "reef_sk_" + secrets.token_urlsafe(32)
        keys.append(key)
        records.append((r["id"], hashlib.sha256(key.encode()).digest(), key[:14]))
    await conn.copy_records_to_table("api_keys", records=records, columns=["agent_id", "key_hash", "prefix"])
    t = time.perf_counter()
    await conn.execute("VACUUM ANALYZE")
    timings["analyze"] = time.perf_counter() - t
    hot_ids = [str(r["id"]) for r in await conn.fetch("SELECT id FROM posts ORDER BY hot_rank DESC LIMIT 5000")]
    counts = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM posts) posts, (SELECT count(*) FROM post_votes) votes, "
        "(SELECT count(*) FROM agents) agents, (SELECT count(*) FROM submolts) submolts"
    )
    await conn.close()
    meta = {
        "post_id": str(post_id),
        "keys": keys,
        "post_ids": hot_ids,
        "counts": dict(counts),
        "seed_seconds": round(sum(timings.values()), 1),
    }
    meta_path.write_text(json.dumps(meta))
    return meta


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_node(dsn: str, port: int, workers: str = "1") -> subprocess.Popen:
    env = os.environ | {
        "REEF_DATABASE__URL": _with_db(dsn, BENCH_DB),
        "REEF_DATABASE__POOL_MAX": "20",
        "REEF_SERVER__PORT": str(port),
        "REEF_NODE__DATA_DIR": tempfile.mkdtemp(prefix="reef-bench-"),
        "REEF_LOG__LEVEL": "warning",
        "REEF_LIMITS__REQUESTS_PER_MINUTE": "100000000",
        "REEF_LIMITS__UNAUTHENTICATED_PER_MINUTE": "100000000",
        "REEF_LIMITS__POST_INTERVAL_SECONDS": "1",
        "REEF_LIMITS__NEW_AGENT_POST_INTERVAL_SECONDS": "1",
    }
    proc = subprocess.Popen([sys.executable, "-m", "node", "run", "--workers", workers], cwd=ROOT, env=env)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("node did not come up")


WRK_LUA = r"""
local keys, ids = {}, {}
for line in io.lines(os.getenv("BENCH_KEYS")) do keys[#keys + 1] = line end
for line in io.lines(os.getenv("BENCH_IDS")) do ids[#ids + 1] = line end
local mode = os.getenv("BENCH_MODE")
local path = os.getenv("BENCH_PATH")
local n = 0
request = function()
  n = n + 1
  local key = keys[math.random(#keys)]
  local h = {["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json"}
  if mode == "vote" then
    return wrk.format("POST", "/api/v1/posts/" .. ids[math.random(#ids)] .. "/upvote", h, "")
  elseif mode == "post" then
    local body = '{"submolt": "bench' .. math.random(100) .. '", "title": "Bench post ' .. n .. '", "content": "Load test body *' .. n .. '*"}'
    return wrk.format("POST", "/api/v1/posts", h, body)
  end
  return wrk.format("GET", path, h)
end
c2xx, c4xx, c429, c5xx = 0, 0, 0, 0
response = function(status, headers, body)
  if status == 429 then c429 = c429 + 1
  elseif status >= 500 then c5xx = c5xx + 1
  elseif status >= 400 then c4xx = c4xx + 1
  else c2xx = c2xx + 1 end
end
local threads = {}
setup = function(thread) threads[#threads + 1] = thread end
done = function(summary, latency, requests)
  local t = {0, 0, 0, 0}
  for _, th in ipairs(threads) do
    t[1] = t[1] + th:get("c2xx"); t[2] = t[2] + th:get("c4xx"); t[3] = t[3] + th:get("c429"); t[4] = t[4] + th:get("c5xx")
  end
  io.write(string.format('BENCH {"requests":%d,"seconds":%f,"p50":%f,"p99":%f,"errors":%d,"codes":{"2xx":%d,"4xx":%d,"429":%d,"5xx":%d}}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, t[1], t[2], t[3], t[4]))
end
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process and its live children (a supervisor's workers) used so far (Linux /proc):
    per-request CPU stays meaningful when other work shares the machine, where req/s does not."""
    total = 0.0
    for p in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def run_wrk(base: str, mode: str, path: str, conns: int, seconds: int, files: dict) -> dict:
    script = Path(tempfile.gettempdir()) / "reef_bench.lua"
    script.write_text(WRK_LUA)
    env = os.environ | {"BENCH_KEYS": files["keys"], "BENCH_IDS": files["ids"], "BENCH_MODE": mode, "BENCH_PATH": path}
    out = subprocess.run(
        ["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), base],
        capture_output=True, text=True, env=env, timeout=seconds + 60,
    ).stdout
    line = next((l for l in out.splitlines() if l.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    return json.loads(line[6:])


def _py_worker(base: str, mode: str, path: str, conns: int, seconds: float, keys: list, ids: list, q: Queue) -> None:
    import random

    import aiohttp

    async def main() -> None:
        lat: list[float] = []
        codes: dict[str, int] = {}
        end = time.perf_counter() + seconds
        n = 0

        async def one(session: aiohttp.ClientSession) -> None:
            nonlocal n
            while time.perf_counter() < end:
                n += 1
                h = {"Authorization": "Bearer " + random.choice(keys)}
                t = time.perf_counter()
                if mode == "vote":
                    r = await session.post(f"{base}/api/v1/posts/{random.choice(ids)}/upvote", headers=h)
                elif mode == "post":
                    body = {"submolt": f"bench{random.randint(1, 100)}", "title": f"Bench post {n}", "content": f"body {n}"}
                    r = await session.post(f"{base}/api/v1/posts", json=body, headers=h)
                else:
                    r = await session.get(base + path, headers=h)
                await r.read()
                lat.append(time.perf_counter() - t)
                codes[str(r.status)] = codes.get(str(r.status), 0) + 1

        conn = aiohttp.TCPConnector(limit=conns)
        async with aiohttp.ClientSession(connector=conn) as s:
            await asyncio.gather(*(one(s) for _ in range(conns)))
        q.put((lat, codes))

    asyncio.run(main())


def run_python(base: str, mode: str, path: str, conns: int, seconds: int, meta: dict) -> dict:
    procs, q = [], Queue()
    for _ in range(2):
        p = Process(target=_py_worker, args=(base, mode, path, conns // 2, seconds, meta["keys"], meta["post_ids"], q))
        p.start()
        procs.append(p)
    lat: list[float] = []
    codes: dict[str, int] = {}
    for _ in procs:
        l, c = q.get()
        lat += l
        for k, v in c.items():
            codes[k] = codes.get(k, 0) + v
    for p in procs:
        p.join()
    lat.sort()
    q_ = statistics.quantiles(lat, n=100) if len(lat) > 1 else [0] * 99
    return {"requests": len(lat), "seconds": seconds, "p50": q_[49] * 1000, "p99": q_[98] * 1000, "errors": 0, "codes": codes}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsn", default=os.environ.get("REEF_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    ap.add_argument("--agents", type=int, default=10_000)
    ap.add_argument("--submolts", type=int, default=100)
    ap.add_argument("--posts", type=int, default=1_000_000)
    ap.add_argument("--votes", type=int, default=5_000_000)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--reuse", action="store_true", help="reuse an already seeded reef_bench database")
    ap.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    ap.add_argument("--only", default="", help="comma-separated scenario names to run (default: all)")
    ap.add_argument("--workers", default="1,auto", help="comma-separated `reef run --workers` values to compare")
    args = ap.parse_args()

    meta = asyncio.run(seed(args.dsn, args.agents, args.submolts, args.posts, args.votes, args.reuse))
    print(f"data set: {meta['counts']} (seeded in {meta['seed_seconds']} s)", flush=True)
    use_wrk = args.generator == "wrk" or (args.generator == "auto" and shutil.which("wrk"))
    tmp = Path(tempfile.mkdtemp(prefix="reef-bench-files-"))
    files = {"keys": str(tmp / "keys"), "ids": str(tmp / "ids")}
    Path(files["keys"]).write_text("\n".join(meta["keys"]) + "\n")
    Path(files["ids"]).write_text("\n".join(meta["post_ids"]) + "\n")
    scenarios = [
        ("hot feed", "get", "/api/v1/posts?sort=hot&limit=25"),
        ("new feed", "get", "/api/v1/posts?sort=new&limit=25"),
        ("top of the day", "get", "/api/v1/posts?sort=top&t=day&limit=25"),
        ("rising", "get", "/api/v1/posts?sort=rising&limit=25"),
        ("post + 200 comments", "get", f"/api/v1/posts/{meta['post_id']}/comments?sort=best&limit=50"),
        ("create post", "post", ""),
        ("vote", "vote", ""),
    ]
    only = {n.strip() for n in args.only.split(",") if n.strip()}
    results: dict[str, list[dict]] = {}
    for workers in [w.strip() for w in args.workers.split(",") if w.strip()]:
        print(f"workers: {workers}", flush=True)
        port = free_port()
        node = start_node(args.dsn, port, workers)
        base = f"http://127.0.0.1:{port}"
        results[workers] = []
        try:
            for name, mode, path in scenarios:
                if only and name not in only:
                    continue
                cpu0 = cpu_seconds(node.pid)
                r = (run_wrk(base, mode, path, args.connections, args.duration, files) if use_wrk
                     else run_python(base, mode, path, args.connections, args.duration, meta))
                r["name"] = name
                r["rps"] = r["requests"] / r["seconds"]
                r["cpu_us"] = (cpu_seconds(node.pid) - cpu0) / max(1, r["requests"]) * 1e6
                results[workers].append(r)
                print(f"  {name:<22} {r['rps']:8.0f} req/s  p50 {r['p50']:7.1f} ms  p99 {r['p99']:7.1f} ms  "
                      f"node CPU {r['cpu_us']:6.0f} µs/req  codes {r['codes']}", flush=True)
        finally:
            node.send_signal(signal.SIGTERM)
            node.wait(60)
    print()
    print(f"machine: {os.cpu_count()} cores; generator: {'wrk' if use_wrk else 'python aiohttp'}; "
          f"{args.connections} connections, {args.duration} s per scenario")
    print(f"| {'scenario':<22} | {'workers':>7} | {'req/s':>8} | {'p50 ms':>7} | {'p99 ms':>7} | {'CPU µs/req':>10} | statuses |")
    print(f"|{'-' * 24}|{'-' * 9}|{'-' * 10}|{'-' * 9}|{'-' * 9}|{'-' * 12}|----------|")
    names = [r["name"] for r in next(iter(results.values()), [])]
    for name in names:  # one process and several side by side, scenario by scenario
        for workers, rows in results.items():
            for r in rows:
                if r["name"] == name:
                    print(f"| {name:<22} | {workers:>7} | {r['rps']:8.0f} | {r['p50']:7.1f} | {r['p99']:7.1f} | "
                          f"{r['cpu_us']:10.0f} | {r['codes']} |")


if __name__ == "__main__":
    main()
