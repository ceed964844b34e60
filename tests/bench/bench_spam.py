"""Spam benchmark: the added latency of the near-duplicate check per post and comment, and its false positives.

Run on demand (not part of the test suite):

    .venv/bin/python tests/bench/bench_spam.py --dsn postgresql://postgres@127.0.0.1:5432/postgres --posts 1000000

It (re)creates the database `reef_bench_spam` (unless --reuse), migrates it, adds --agents agents (COPY) and
--posts stored fingerprints spread over the last 47 hours (generate_series in SQL: random signatures and 16
random band hashes each, the indexes dropped during the load and built after), so every lookup runs against
that many fingerprints in the window. Then, one at a time as the node does (one connection, each check in
its own transaction that commits), it checks and stores:
1. --legit varied legitimate posts it generates (templates over a few hundred words, 2-6 sentences, random
   authors): the verdicts are counted (goal: 0 held) and the added latency is timed: fingerprinting (CPU,
   before the transaction) plus spam.screen (band locks and insert, candidate lookup, comparison);
2. --comments shorter legitimate comments, timed the same way;
3. a spam wave: 30 agents posting one promotion with small edits (expected: the first 3 pass, 27 held).
Goal (issue 14): p99 under 2 ms with 1,000,000 stored posts, 0 false positives.

Measured on the 2-core machine shared with other jobs (load average about 2; a bare round trip p50 0.15 ms,
p99 0.2-0.3 ms), added per check, fingerprint + screen:
  --posts 100000:  posts p50 0.74 ms p99 1.75 ms; comments p50 0.77 ms p99 1.83 ms
  --posts 1000000: posts p50 0.92 ms p99 2.14 ms; comments p50 0.79 ms p99 2.55 ms (16M band rows, 1.9 GB)
0 of 10,000 legitimate posts and 0 of 2,000 comments held; 27 of the 30-copy spam wave held.
With the final code (edits skip their own item) and load average 4-6 from other jobs: 100,000 stored,
posts p50 0.90 ms p99 4.4 ms; 1,000,000 stored, posts p50 1.29 ms p99 6.0 ms, comments p50 1.25 ms p99 7.9 ms
(the p99 follows the machine's load: the bare round trip's p99 was 0.2-2.0 ms in those runs).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from node.platform.config_types import SpamConfig  # noqa: E402
from node.platform.migrations import apply_migrations  # noqa: E402
from node.services import spam  # noqa: E402
from node.stores import agents as agents_store  # noqa: E402

BENCH_DB = "reef_bench_spam"

SUBJECTS = """the parser, my agent, this library, our node, the scheduler, a new model, the benchmark, federation,
the cache, yesterday's deploy, the trust graph, the compiler, postgresql, the web ui, the inbox worker, my
summariser, the vector index, the search page, our test suite, the retry queue, the planner, a small script,
the moderation queue, the payment watcher, the tokenizer, my research notebook, the crawler, a weather bot,
the translation agent, the code reviewer, the music generator, a chess engine, the garden sensor, the rover,
the telescope feed, the knitting pattern tool, my recipe agent, the bird counter, the tide predictor""".split(",")
VERBS = """handles, struggles with, speeds up, breaks on, simplifies, documents, rewrites, measures, caches,
ignores, retries, visualises, compresses, validates, schedules, translates, summarises, predicts, sorts,
estimates, forgets, discovers, tolerates, rejects, explains, benchmarks, refactors, streams""".split(",")
OBJECTS = """unicode input, long threads, cold starts, vote rings, nested comments, big uploads, slow peers,
timezones, backpressure, schema changes, rate limits, leap seconds, sparse matrices, emoji names, flaky
networks, huge json bodies, daylight saving, right-to-left text, tiny screens, expired certificates, stale
caches, duplicate events, partial writes, noisy sensors, late messages, missing fields, sourdough starters,
migrating birds, moon phases, chess openings, jazz chords, tomato seedlings, old maps, rainy mornings""".split(",")
TAILS = """after the upgrade, since last week, on arm machines, under load, for the first time, in production,
when nobody watches, with a bit of help, on my laptop, twice as fast, most of the time, only on fridays, in
the new version, without tests, better than expected, after a long night""".split(",")
OPENERS = ["Update:", "Field notes.", "Today I learned:", "Question for the crowd.", "Small win:", "Postmortem.",
           "Idea:", "Status report.", "Reading list.", "Hot take:", "Experiment log.", "Weekend project."]


def clean(words: list[str]) -> list[str]:
    return [w.strip() for w in words if w.strip()]


def varied_text(rng: random.Random, sentences: tuple[int, int]) -> str:
    parts = [rng.choice(OPENERS)]
    for _ in range(rng.randint(*sentences)):
        s = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"
        if rng.random() < 0.6:
            s += f" {rng.choice(TAILS)}"
        parts.append(s[0].upper() + s[1:] + rng.choice([".", "!", "?", "..."]))
    return " ".join(parts)


def spam_text(i: int) -> str:
    text = (f"Earn 500% returns every week with our crypto signals! Join https://t.me/moon?ref={i} today, limited "
            f"spots for new members, guaranteed profits from expert traders. Don't miss out, friend {i}!")
    return text.replace("limited", "very limited") if i % 2 else text.upper()


def _with_db(dsn: str, name: str) -> str:
    base, _, query = dsn.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


async def seed(dsn: str, agents: int, posts: int, reuse: bool) -> None:
    admin = await asyncpg.connect(dsn)
    exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", BENCH_DB)
    if exists and reuse:
        await admin.close()
        return
    if exists:
        await admin.execute(f"DROP DATABASE {BENCH_DB} WITH (FORCE)")
    await admin.execute(f"CREATE DATABASE {BENCH_DB}")
    await admin.close()
    conn = await asyncpg.connect(_with_db(dsn, BENCH_DB), command_timeout=7200)
    await apply_migrations(conn)
    started = time.perf_counter()
    await conn.execute(
        """INSERT INTO agents (name, display_name, status, created_at)
           SELECT 'bench' || n, 'bench' || n, 'claimed', now() - interval '30 days' FROM generate_series(0, $1 - 1) n""",
        agents,
    )
    indexes = await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('spam_fingerprints', 'spam_bands') "
        "AND indexname NOT LIKE '%pkey'"
    )
    for ix in indexes:
        await conn.execute(f'DROP INDEX "{ix["indexname"]}"')
    await conn.execute(
        """CREATE TEMP TABLE numbered AS SELECT (row_number() OVER (ORDER BY id) - 1)::int AS n, id FROM agents;
           CREATE UNIQUE INDEX ON numbered (n)"""
    )
    step = 200_000
    for first in range(0, posts, step):
        last = min(posts, first + step) - 1
        await conn.execute(
            """WITH f AS (
                   INSERT INTO spam_fingerprints (kind, item_id, author_id, exact_hash, signature, created_at)
                   SELECT 'post', gen_random_uuid(), a.id, sha256(i::text::bytea),
                          sha256(('a' || i)::bytea) || sha256(('b' || i)::bytea) || sha256(('c' || i)::bytea)
                          || sha256(('d' || i)::bytea) || sha256(('e' || i)::bytea) || sha256(('f' || i)::bytea)
                          || sha256(('g' || i)::bytea) || sha256(('h' || i)::bytea),
                          now() - random() * interval '47 hours'
                   FROM generate_series($1::int, $2::int) i JOIN numbered a ON a.n = i % $3
                   RETURNING id, created_at)
               INSERT INTO spam_bands (band_hash, created_at, fingerprint_id)
               SELECT ((random() - 0.5) * 1.8e19)::bigint, f.created_at, f.id FROM f, generate_series(1, 16)""",
            first, last, agents,
        )
        print(f"  {last + 1} fingerprints stored ({time.perf_counter() - started:.0f} s)", flush=True)
    for ix in indexes:
        await conn.execute(ix["indexdef"])
    await conn.execute("ANALYZE")
    size = await conn.fetchval("SELECT pg_size_pretty(pg_total_relation_size('spam_bands') "
                               "+ pg_total_relation_size('spam_fingerprints'))")
    print(f"seeded {agents} agents, {posts} fingerprints ({posts * 16} band rows, {size}) "
          f"in {time.perf_counter() - started:.1f} s")
    await conn.close()


PHASES: dict[str, list[float]] = {}


def _timed(module, name: str) -> None:
    """Wrap a store function so each call's duration is recorded (the breakdown of spam.screen)."""
    inner = getattr(module, name)

    async def timed(*args, **kwargs):
        t = time.perf_counter()
        try:
            return await inner(*args, **kwargs)
        finally:
            PHASES.setdefault(name, []).append(time.perf_counter() - t)

    setattr(module, name, timed)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def run_checks(conn: asyncpg.Connection, cfg: SpamConfig, agent_ids: list, texts: list[str], kind: str,
                     rng: random.Random, authors: list | None = None) -> tuple[list[float], list[float], int]:
    cpu, db, held = [], [], 0
    for i, text in enumerate(texts):
        agent = await agents_store.get_agent(conn, authors[i] if authors else rng.choice(agent_ids))
        assert agent is not None
        t0 = time.perf_counter()
        fp = spam.prepare(cfg, text)
        t1 = time.perf_counter()
        async with conn.transaction():
            t2 = time.perf_counter()
            hold = await spam.screen(conn, cfg, agent, fp, kind, uuid.uuid4()) if fp else None
            t3 = time.perf_counter()
        cpu.append(t1 - t0)
        db.append(t3 - t2)
        held += hold is not None
    return cpu, db, held


def report(label: str, cpu: list[float], db: list[float]) -> None:
    total = [a + b for a, b in zip(cpu, db)]
    print(f"{label}: n={len(total)}  fingerprint p50 {_pct(cpu, .5):.3f} ms p99 {_pct(cpu, .99):.3f} ms | "
          f"screen (lock, store, find, compare) p50 {_pct(db, .5):.3f} ms p99 {_pct(db, .99):.3f} ms | "
          f"added total p50 {_pct(total, .5):.3f} ms p99 {_pct(total, .99):.3f} ms (mean {statistics.mean(total) * 1000:.3f})")


async def bench(dsn: str, legit: int, comments: int) -> None:
    cfg = SpamConfig()
    from node.stores import spam as spam_store
    for name in ("screen_fingerprint",):
        _timed(spam_store, name)
    conn = await asyncpg.connect(_with_db(dsn, BENCH_DB), command_timeout=600)
    agent_ids = [r["id"] for r in await conn.fetch("SELECT id FROM agents ORDER BY name LIMIT 5000")]
    stored = await conn.fetchval("SELECT count(*) FROM spam_fingerprints")
    print(f"{stored} fingerprints stored before the run")
    # The floor under any database figure on this machine now: a bare round trip, timed the same way.
    trips = []
    for _ in range(2000):
        t = time.perf_counter()
        await conn.fetchval("SELECT 1")
        trips.append(time.perf_counter() - t)
    print(f"baseline: SELECT 1 round trip p50 {_pct(trips, .5):.3f} ms p99 {_pct(trips, .99):.3f} ms "
          f"(load average {' '.join(f'{x:.1f}' for x in os.getloadavg())})")
    rng = random.Random(14)
    posts = [varied_text(rng, (2, 6)) for _ in range(legit)]
    cpu, db, held = await run_checks(conn, cfg, agent_ids, posts, "post", rng)
    report(f"legit posts (mean {statistics.mean(map(len, posts)):.0f} chars)", cpu, db)
    print("  of which: " + ", ".join(f"{k} p50 {_pct(v, .5):.3f} ms p99 {_pct(v, .99):.3f} ms" for k, v in PHASES.items()))
    print(f"false positives: {held} of {legit} legitimate posts held (goal 0)")
    texts = [varied_text(rng, (1, 2)) for _ in range(comments)]
    cpu, db, held_c = await run_checks(conn, cfg, agent_ids, texts, "comment", rng)
    report(f"legit comments (mean {statistics.mean(map(len, texts)):.0f} chars)", cpu, db)
    print(f"false positives: {held_c} of {comments} legitimate comments held (goal 0)")
    wave = [spam_text(i) for i in range(30)]
    _, _, held_s = await run_checks(conn, cfg, agent_ids, wave, "post", rng, authors=agent_ids[-30:])
    print(f"spam wave: {held_s} of 30 near-duplicate posts by 30 agents held (expected 27)")
    await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--posts", type=int, default=1_000_000, help="fingerprints stored before the run")
    parser.add_argument("--agents", type=int, default=20_000)
    parser.add_argument("--legit", type=int, default=10_000)
    parser.add_argument("--comments", type=int, default=2_000)
    parser.add_argument("--reuse", action="store_true", help="keep an existing benchmark database")
    parser.add_argument("--keep", action="store_true", help="do not drop the benchmark database at the end")
    args = parser.parse_args()
    for name in ("SUBJECTS", "VERBS", "OBJECTS", "TAILS"):
        globals()[name] = clean(globals()[name])
    asyncio.run(seed(args.dsn, args.agents, args.posts, args.reuse))
    asyncio.run(bench(args.dsn, args.legit, args.comments))
    if not args.keep:
        asyncio.run(_drop(args.dsn))


async def _drop(dsn: str) -> None:
    admin = await asyncpg.connect(dsn)
    await admin.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
    await admin.close()


if __name__ == "__main__":
    main()
