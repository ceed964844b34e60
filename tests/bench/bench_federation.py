"""Federation benchmark: signed deliveries per second from one node process, and the cost of verifying a signature.

Run on demand (not part of the test suite):

    /work/venv/bin/python tests/bench/bench_federation.py --dsn postgresql://postgres@127.0.0.1:5432/postgres

1. Verification cost, in this process: microseconds per verification of a signed POST (draft-cavage
   rsa-sha256 with Digest) with our module (federation.signatures: parse, required headers, date, digest,
   RSA check; key parsed once and cached, as the node does) and with the httpsig package (HeaderVerifier as
   it is used, one per request), both on the same requests.
2. Delivery rate: a sink process listens on --hosts loopback ports, each one a peer host (host:port is the
   host), answers 202 and checks the signature of a sample of what it receives with the key the node's actor
   document publishes. The database `reef_bench_fed` (dropped at the end) gets a local agent followed by
   --followers remote agents spread over those hosts, each with its own inbox (no shared inboxes, so every
   follower is one delivery). One `python -m node run` process then publishes --posts posts through the
   Agent API; each becomes one Create and --followers signed deliveries (outbox worker, delivery rows,
   leased, signed, POSTed with at most [federation] delivery_concurrency_per_host per host). Reported: signed
   deliveries per second from the first POST to the last 2xx, the node's CPU seconds per delivery, and the
   delay from delivery row to 2xx (p50/p99).
Target (2-core machine): >= 500 signed deliveries/s per node process. The sink, PostgreSQL and this driver share
the machine with the node, so the figure is a lower bound on what the node alone does.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "federation"))

BENCH_DB = "reef_bench_fed"


def _with_db(dsn: str, name: str) -> str:
    base, _, query = dsn.partition("?")
    head = base.rsplit("/", 1)[0]
    return f"{head}/{name}" + (f"?{query}" if query else "")


# --- 1. verification cost ---------------------------------------------------------------------------------


def bench_verify(n: int) -> dict[str, float]:
    from httpsig import HeaderVerifier

    from federation import signatures as sig, sigcore

    private, public = sigcore.generate_rsa_keypair()
    url = "http://127.0.0.1:8080/inbox"
    key_id = "http://127.0.0.1:9090/u/alice#main-key"
    body = json.dumps({"id": "http://127.0.0.1:9090/activities/1", "type": "Create", "actor": "x",
                       "object": {"type": "Note", "content": "x" * 600}}).encode()
    headers = sig.sign_request("POST", url, key_id=key_id, private_key_pem=private, body=body)

    def ours() -> None:
        parsed = sig.parse_signature("POST", url, headers)
        sig.required_components_present(parsed, "POST")
        sig.check_freshness(parsed, headers, window=3600)
        sigcore.verify_digest(headers, body)
        sig.verify_signature(parsed, public)

    def ours_rsa_only() -> None:
        sig.verify_signature(parsed_once, public)

    def theirs() -> None:
        verifier = HeaderVerifier(headers=headers, secret=public.encode(), method="POST", path="/inbox",
                                  sign_header="Signature", required_headers=["(request-target)", "host", "date", "digest"])
        assert verifier.verify()

    parsed_once = sig.parse_signature("POST", url, headers)
    ours()  # warm the key cache, as a node does after its first request from a peer
    theirs()
    out = {}
    for name, fn in (("ours", ours), ("ours_rsa_only", ours_rsa_only), ("httpsig", theirs)):
        best = min(timeit.repeat(fn, number=n, repeat=3))
        out[name] = best / n * 1e6
    sign_n = max(200, n // 5)
    out["sign_ours"] = min(timeit.repeat(
        lambda: sig.sign_request("POST", url, key_id=key_id, private_key_pem=private, body=body), number=sign_n, repeat=3,
    )) / sign_n * 1e6
    return out


# --- 2. the sink: many peer hosts in one process -------------------------------------------------------------


def run_sink(hosts: int, sample: int) -> None:
    """Listen on `hosts` free loopback ports; print them as JSON; count POSTs; verify every `sample`-th one."""
    from aiohttp import web

    from federation import signatures as sig, sigcore

    stats: dict[str, Any] = {"received": 0, "verified": 0, "bad": 0, "first": None, "last": None, "errors": []}
    keys: dict[str, str] = {}

    async def public_key(key_id: str) -> str:
        if key_id not in keys:
            async with aiohttp.ClientSession() as s:
                async with s.get(key_id.split("#")[0], headers={"Accept": "application/activity+json"}) as r:
                    keys[key_id] = (await r.json(content_type=None))["publicKey"]["publicKeyPem"]
        return keys[key_id]

    async def inbox(request: web.Request) -> web.Response:
        body = await request.read()
        now = time.time()
        stats["received"] += 1
        stats["first"] = stats["first"] or now
        stats["last"] = now
        if stats["received"] % sample == 0:
            try:
                parsed = sig.parse_signature("POST", f"http://{request.host}{request.path_qs}", request.headers)
                sig.check_freshness(parsed, request.headers, window=300)
                sigcore.verify_digest(request.headers, body)
                sig.verify_signature(parsed, await public_key(parsed.key_id))
                stats["verified"] += 1
            except (sig.SignatureError, aiohttp.ClientError, KeyError, ValueError) as exc:
                stats["bad"] += 1
                stats["errors"] = (stats["errors"] + [str(exc)])[-5:]
        return web.Response(status=202)

    async def get_stats(request: web.Request) -> web.Response:
        return web.json_response(stats)

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/users/{name}/inbox", inbox)
        app.router.add_get("/stats", get_stats)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        ports = []
        for _ in range(hosts):
            site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
            await site.start()
            ports.append(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        print(json.dumps({"ports": ports}), flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


# --- the database --------------------------------------------------------------------------------------------


async def prepare(dsn: str, ports: list[str], followers: int) -> tuple[str, str]:
    """A fresh migrated database with agent `bench` (its API key returned) followed by `followers` remote agents."""
    from node.edge.auth import hash_key, key_display_prefix, new_api_key
    from node.platform.migrations import apply_migrations
    from node.stores import agents as agents_store

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    finally:
        await conn.close()
    url = _with_db(dsn, BENCH_DB)
    conn = await asyncpg.connect(url)
    try:
        await apply_migrations(conn)
        key = new_api_key()
        async with conn.transaction():
            agent = await agents_store.insert_agent(conn, name="bench")
            await agents_store.insert_api_key(conn, agent.id, hash_key(key), key_display_prefix(key))
            rows = []
            for i in range(followers):
                host = f"127.0.0.1:{ports[i % len(ports)]}"
                actor = f"http://{host}/users/f{i}"
                rows.append((f"f{i}", f"Follower {i}", actor, host, f"{actor}/inbox"))
            await conn.executemany(
                """INSERT INTO agents (name, display_name, is_local, actor_url, domain, inbox_url, fetched_at, status)
                   VALUES ($1, $2, false, $3, $4, $5, now(), 'claimed')""",
                rows,
            )
            await conn.execute(
                """INSERT INTO follows (follower_id, followee_id, accepted)
                   SELECT a.id, $1, true FROM agents a WHERE NOT a.is_local""",
                agent.id,
            )
            await conn.execute("UPDATE agents SET follower_count = $2 WHERE id = $1", agent.id, followers)
    finally:
        await conn.close()
    return url, key


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wait_delivered(url: str, expected: int, timeout: float) -> float:
    conn = await asyncpg.connect(url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            done = await conn.fetchval("SELECT count(*) FROM deliveries WHERE delivered_at IS NOT NULL")
            if done >= expected:
                return time.time()
            failed = await conn.fetchval("SELECT count(*) FROM deliveries WHERE failed_at IS NOT NULL")
            if failed or time.monotonic() > deadline:
                errors = await conn.fetch("SELECT last_error, count(*) FROM deliveries WHERE last_error IS NOT NULL GROUP BY 1")
                rows = await conn.fetchval("SELECT count(*) FROM deliveries")
                events = await conn.fetch("SELECT kind, processed_at IS NOT NULL AS done, data FROM outbox_events ORDER BY id")
                raise SystemExit(f"only {done}/{expected} delivered ({failed} failed, {rows} rows): "
                                 f"{[tuple(r) for r in errors]} events {[tuple(r) for r in events]}")
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


async def bench_delivery(args: argparse.Namespace) -> dict[str, Any]:
    from conftest import ReefNode

    sink = subprocess.Popen(
        [sys.executable, __file__, "--sink", "--hosts", str(args.hosts), "--sample", str(args.sample)],
        stdout=subprocess.PIPE, text=True,
    )
    tmp = Path(tempfile.mkdtemp(prefix="reef-bench-fed-"))
    node = None
    try:
        ports = json.loads(sink.stdout.readline())["ports"]  # type: ignore[union-attr]
        url, key = await prepare(args.dsn, ports, args.followers)
        async with aiohttp.ClientSession() as http:
            env = {"REEF_LOG__LEVEL": "warning", "REEF_DATABASE__POOL_MAX": str(args.pool_max)}
            node = ReefNode("bench", tmp, url, http, env=env)
            node.start()
            await node.wait_healthy()
            headers = {"Authorization": f"Bearer {key}"}

            async def post(title: str) -> None:
                async with http.post(f"{node.url}/api/v1/posts", headers=headers,
                                     json={"submolt_name": "general", "title": title}) as resp:
                    assert resp.status == 201, await resp.text()

            # warm-up: the actor's key pair is made, connections to every host are opened
            await post("warm-up")
            await wait_delivered(url, args.followers, args.timeout)
            conn = await asyncpg.connect(url)
            await conn.execute("DELETE FROM deliveries")
            await conn.close()

            expected = args.posts * args.followers
            assert node.proc is not None
            cpu0, sink0, t0 = cpu_seconds(node.proc.pid), cpu_seconds(sink.pid), time.time()
            for i in range(args.posts):
                await post(f"post {i}")
            t1 = await wait_delivered(url, expected, args.timeout)
            cpu1, sink1 = cpu_seconds(node.proc.pid), cpu_seconds(sink.pid)
            async with http.get(f"http://127.0.0.1:{ports[0]}/stats") as resp:
                stats = await resp.json()
        conn = await asyncpg.connect(url)
        try:
            delays = [r["d"] for r in await conn.fetch(
                "SELECT extract(epoch FROM delivered_at - created_at) AS d FROM deliveries ORDER BY 1")]
            span = await conn.fetchval("SELECT extract(epoch FROM max(delivered_at) - min(created_at)) FROM deliveries")
            attempts = await conn.fetchval("SELECT max(attempts) FROM deliveries")
        finally:
            await conn.close()
        return {
            "deliveries": expected,
            "seconds": t1 - t0,
            "per_second": expected / (t1 - t0),
            "per_second_queue": expected / float(span),
            "node_cpu_seconds": cpu1 - cpu0,
            "cpu_us_per_delivery": (cpu1 - cpu0) / expected * 1e6,
            "node_cpu_share": (cpu1 - cpu0) / (t1 - t0),
            "sink_cpu_seconds": sink1 - sink0,
            "delay_p50_ms": statistics.median(delays) * 1000,
            "delay_p99_ms": delays[int(len(delays) * 0.99) - 1] * 1000,
            "max_attempts": attempts,
            "sink": {k: stats[k] for k in ("received", "verified", "bad", "errors")},
        }
    finally:
        if node is not None:
            node.stop()
        sink.terminate()
        sink.wait(10)
        conn = await asyncpg.connect(args.dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        finally:
            await conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsn", default=os.environ.get("REEF_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
                    help="a PostgreSQL server where the benchmark may create and drop its database")
    ap.add_argument("--hosts", type=int, default=100, help="peer hosts (loopback ports of the sink)")
    ap.add_argument("--followers", type=int, default=1000, help="remote followers, each with its own inbox")
    ap.add_argument("--posts", type=int, default=5, help="posts published (each: one delivery per follower)")
    ap.add_argument("--verify-n", type=int, default=2000, help="verifications per timing run")
    ap.add_argument("--sample", type=int, default=20, help="the sink checks every n-th signature")
    ap.add_argument("--pool-max", type=int, default=10, help="the node's [database] pool_max")
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.sink:
        run_sink(args.hosts, args.sample)
        return

    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (shared with other work)")
    v = bench_verify(args.verify_n)
    print("signature verification (draft-cavage rsa-sha256, RSA-2048, signed POST with Digest):")
    print(f"  ours   : {v['ours']:8.1f} us per verify (parse, headers, date, digest, RSA; key cached)")
    print(f"  ours   : {v['ours_rsa_only']:8.1f} us of which the RSA check")
    print(f"  httpsig: {v['httpsig']:8.1f} us per verify (HeaderVerifier per request)  -> {v['httpsig'] / v['ours']:.1f}x ours")
    print(f"  signing: {v['sign_ours']:8.1f} us per signed POST (ours)")
    r = asyncio.run(bench_delivery(args))
    print(f"delivery: {r['deliveries']} signed deliveries to {args.followers} inboxes on {args.hosts} hosts, "
          f"{args.posts} posts, one node process")
    print(f"  {r['per_second']:8.0f} deliveries/s  (first POST to last 2xx: {r['seconds']:.2f} s; "
          f"first row to last 2xx: {r['per_second_queue']:.0f}/s)   target >= 500/s")
    print(f"  node CPU {r['node_cpu_seconds']:.2f} s = {r['cpu_us_per_delivery']:.0f} us per delivery "
          f"(it had {r['node_cpu_share']:.0%} of a core: at 100% that is {1e6 / r['cpu_us_per_delivery']:.0f}/s); "
          f"sink CPU {r['sink_cpu_seconds']:.2f} s")
    print(f"  row-to-2xx delay p50 {r['delay_p50_ms']:.0f} ms, p99 {r['delay_p99_ms']:.0f} ms "
          f"(all rows are queued at once); max attempts {r['max_attempts']}")
    s = r["sink"]
    print(f"  sink: {s['received']} received, {s['verified']} sampled signatures verified, {s['bad']} bad {s['errors'] or ''}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
