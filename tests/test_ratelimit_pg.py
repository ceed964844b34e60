"""Rate limits shared through PostgreSQL (PgRateLimiter): exact across processes, leases, pruning, outages."""
from __future__ import annotations

import asyncio
import logging
from typing import Any, AsyncIterator, Callable
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest
import redis.asyncio as aioredis

from node.edge.ratelimit.buckets import Decision, MemoryRateLimiter
from node.edge.ratelimit.leases import lease_chunk
from node.edge.ratelimit.limiters import create_rate_limiter
from node.edge.ratelimit.pg_buckets import PgRateLimiter
from node.edge.ratelimit.redis_buckets import RedisRateLimiter
from node.platform.db import create_pool
from tests.test_ratelimit import FakeClock, TcpProxy, closed_port, limits_config


@pytest.fixture
async def pools(database_url: str) -> AsyncIterator[Callable[[], Any]]:
    """Pools on the test database, one per simulated process, closed at the end."""
    made: list[asyncpg.Pool] = []

    async def make(dsn: str = database_url, min_size: int = 1) -> asyncpg.Pool:
        pool = await create_pool(dsn, min_size, 5)
        made.append(pool)
        return pool

    yield make
    for pool in made:
        await pool.close()


class Counted:
    """Counts the calls of a limiter's store method that reach the database."""

    def __init__(self, rl: PgRateLimiter, name: str) -> None:
        self.inner = getattr(rl, name)
        self.calls = 0
        setattr(rl, name, self)

    async def __call__(self, *args: Any, **kw: Any) -> Any:
        self.calls += 1
        return await self.inner(*args, **kw)


async def row(pool: asyncpg.Pool, key: str) -> asyncpg.Record | None:
    return await pool.fetchrow("SELECT tokens, updated, full_at FROM rate_buckets WHERE key = $1", key)


# ---- bucket math --------------------------------------------------------------------------------


async def test_bucket_math_on_the_databases_clock(pools):
    pool = await pools()
    rl = PgRateLimiter(pool)  # no fallback: any database error fails the test
    decisions = [await rl.hit("k", 3, 60) for _ in range(3)]
    assert [(d.allowed, d.remaining, d.limit) for d in decisions] == [(True, 2, 3), (True, 1, 3), (True, 0, 3)]
    denied = await rl.hit("k", 3, 60)
    db_now = await pool.fetchval("SELECT extract(epoch FROM clock_timestamp())::float8")
    assert not denied.allowed and denied.remaining == 0
    assert 19 < denied.retry_after <= 20
    assert db_now + 58 < denied.reset_at < db_now + 61
    assert denied.next_at == pytest.approx(db_now + denied.retry_after, abs=1)
    saved = await row(pool, "k")
    assert saved is not None and saved["tokens"] < 1 and saved["full_at"] == pytest.approx(denied.reset_at, abs=0.01)
    # The table is UNLOGGED: no WAL for a write on every hit.
    assert await pool.fetchval("SELECT relpersistence::text FROM pg_class WHERE relname = 'rate_buckets'") == "u"


async def test_refund_and_cost(pools):
    rl = PgRateLimiter(await pools())
    assert (await rl.hit("k", 10, 3600, cost=10)).allowed
    assert not (await rl.hit("k", 10, 3600)).allowed
    await rl.refund("k", 10, 3600, cost=3)
    assert (await rl.hit("k", 10, 3600, cost=3)).allowed
    assert not (await rl.hit("k", 10, 3600)).allowed
    await rl.refund("k", 10, 3600, cost=100)  # never above capacity
    assert (await rl.hit("k", 10, 3600)).remaining == 9
    with pytest.raises(ValueError):
        await rl.hit("k", 0, 3600)


def _same(pg: Decision, mem: Decision) -> bool:
    return (pg.allowed, pg.limit, pg.remaining) == (mem.allowed, mem.limit, mem.remaining) and all(
        getattr(pg, f) == pytest.approx(getattr(mem, f), abs=1e-6) for f in ("reset_at", "retry_after", "next_at")
    )


async def test_answers_agree_with_the_memory_limiter(pools):
    clock = FakeClock()
    pg, mem = PgRateLimiter(await pools(), bucket_clock=clock), MemoryRateLimiter(clock=clock)
    # (seconds to wait first, operation, key, capacity, per_seconds, cost)
    steps = [(0, "hit", "a", 3, 60, 1)] * 4 + [
        (5, "hit", "a", 3, 60, 1), (15, "hit", "a", 3, 60, 1), (0.5, "hit", "a", 3, 60, 1),
        (0, "refund", "a", 3, 60, 2), (0, "hit", "a", 3, 60, 1), (0, "hit", "a", 3, 60, 2),
        (0, "hit", "b", 10, 10, 4), (0, "hit", "b", 10, 10, 7), (0.25, "hit", "b", 10, 10, 6),
        (10_000, "hit", "a", 3, 60, 1), (0, "hit", "c", 1, 1800, 1), (0, "hit", "c", 1, 1800, 1),
        (1799, "hit", "c", 1, 1800, 1), (1, "hit", "c", 1, 1800, 1),
    ]
    answers = []
    for wait, op, key, capacity, per_seconds, cost in steps:
        clock.advance(wait)
        if op == "refund":
            await pg.refund(key, capacity, per_seconds, cost)
            await mem.refund(key, capacity, per_seconds, cost)
            continue
        p, m = await pg.hit(key, capacity, per_seconds, cost), await mem.hit(key, capacity, per_seconds, cost)
        assert _same(p, m), (wait, op, key, p, m)
        answers.append(p.allowed)
    # The sequence exercises both answers, and waits that are (almost) long enough.
    assert answers == [True, True, True, False, False, True, False, True, False, True, False, True,
                       True, True, False, False, True]


# ---- two processes --------------------------------------------------------------------------------


async def test_two_processes_admit_exactly_the_bucket(pools):
    # Two limiters on their own pools: what two worker processes have. The first hits race to create the row.
    a, b = PgRateLimiter(await pools()), PgRateLimiter(await pools())
    decisions = await asyncio.gather(*(lim.hit("k", 50, 86400) for _ in range(100) for lim in (a, b)))
    assert sum(d.allowed for d in decisions) == 50
    assert sorted(d.remaining for d in decisions if d.allowed) == list(range(50))
    assert all(d.retry_after > 0 for d in decisions if not d.allowed)

    assert (await a.hit("k2", 4, 3600)).remaining == 3
    assert (await b.hit("k2", 4, 3600)).remaining == 2
    await a.refund("k2", 4, 3600)
    assert (await b.hit("k2", 4, 3600)).remaining == 2  # the refund in a shows in b


async def test_leased_hits_count_down_exactly_in_one_process_with_few_round_trips(pools):
    rl = PgRateLimiter(await pools(), clock=FakeClock())  # a frozen clock: no lease expires
    calls = Counted(rl, "_store_lease")
    decisions = [await rl.hit_leased("k", 100, 86400) for _ in range(100)]
    assert all(d.allowed and d.limit == 100 for d in decisions)
    assert [d.remaining for d in decisions] == list(range(99, -1, -1))
    assert calls.calls == 3 + 17 + 8  # leases of 1, 2, 4, 17 of 5, then 8 of 1 while the bucket is low
    denied = await rl.hit_leased("k", 100, 86400)
    assert not denied.allowed and denied.remaining == 0 and 860 < denied.retry_after <= 864


async def test_leased_hits_over_two_processes_never_exceed_the_bucket(pools):
    a, b = PgRateLimiter(await pools()), PgRateLimiter(await pools())
    calls = Counted(a, "_store_lease"), Counted(b, "_store_lease")
    decisions = await asyncio.gather(*(lim.hit_leased("k", 100, 86400) for _ in range(250) for lim in (a, b)))
    assert sum(d.allowed for d in decisions) == 100
    assert a._leases["k"].tokens == 0 and b._leases["k"].tokens == 0  # nothing parked: all 100 were spent
    assert (await row(await pools(), "k"))["tokens"] < 1
    assert calls[0].calls + calls[1].calls < 80  # vs 500 without leases
    assert all(d.retry_after > 0 for d in decisions if not d.allowed)

    # A busy key in two processes: each leases chunks; together they admit exactly the bucket, no more.
    big, before = 1000, calls[0].calls + calls[1].calls
    decisions = await asyncio.gather(*(lim.hit_leased("big", big, 86400) for _ in range(big) for lim in (a, b)))
    assert sum(d.allowed for d in decisions) == big and lease_chunk(big) == 50
    assert calls[0].calls + calls[1].calls - before < 2 * 6 + big // 50 + 2 * 100  # ramps, chunks, the low end


async def test_leftover_leases_go_back_on_sweep_and_close(pools):
    clock = FakeClock()
    pool = await pools()
    a, b = PgRateLimiter(pool, clock=clock, lease_idle=1.0), PgRateLimiter(await pools(), clock=clock)
    for _ in range(4):  # leases of 1, 2 and 4 tokens: a holds 3 unspent
        assert (await a.hit_leased("k", 100, 86400)).allowed
    assert a._leases["k"].tokens == 3 and (await row(pool, "k"))["tokens"] == pytest.approx(93, abs=0.01)
    admitted_by_b = 0
    while (await b.hit_leased("k", 100, 86400)).allowed:
        admitted_by_b += 1
    assert admitted_by_b == 100 - 4 - 3  # b is refused while a holds 3
    clock.advance(0.5)
    assert await a.sweep() == 0
    clock.advance(0.5)
    assert await a.sweep() == 3 and "k" not in a._leases  # idle: back to the table
    await b.close()
    assert (await row(pool, "k"))["tokens"] == pytest.approx(3, abs=0.01)

    c = PgRateLimiter(pool, lease_idle=60)
    for _ in range(4):
        await c.hit_leased("k3", 100, 86400)
    await c.close()  # shutdown gives back even leases that have not expired
    assert (await row(pool, "k3"))["tokens"] == pytest.approx(96, abs=0.01) and not c._leases


async def test_full_buckets_are_pruned_and_a_missing_row_is_a_full_bucket(pools):
    clock = FakeClock()
    pool = await pools()
    rl = PgRateLimiter(pool, bucket_clock=clock, clock=clock, prune_interval=30)
    await rl.hit("short", 10, 10, cost=5)  # full again in 5 s
    await rl.hit("long", 10, 3600, cost=5)  # full again in 1800 s
    clock.advance(4)
    assert await rl.prune() == 0
    clock.advance(2)
    await rl._housekeep()  # within prune_interval of the last prune: nothing runs
    assert await row(pool, "short") is not None
    assert await rl.prune() == 1
    assert await row(pool, "short") is None and await row(pool, "long") is not None
    assert (await rl.hit("short", 10, 10)).remaining == 9  # gone means full
    clock.advance(30)
    await rl._housekeep()
    assert await pool.fetchval("SELECT array_agg(key) FROM rate_buckets") == ["long"]  # short: full after 0.1 s


async def test_the_background_sweep_prunes(pools):
    pool = await pools()
    rl = PgRateLimiter(pool, lease_idle=0.05, prune_interval=0.05)
    await rl.hit("k", 100, 0.1)  # full again 1 ms later
    rl.start()
    try:
        for _ in range(100):
            await asyncio.sleep(0.02)
            if await row(pool, "k") is None:
                break
        assert await row(pool, "k") is None
    finally:
        await rl.close()
    assert rl._sweeper is None


# ---- the database down: in-process answers ----------------------------------------------------------


async def test_unreachable_database_falls_back_and_warns_once(pools, caplog):
    pool = await pools(f"postgresql://postgres@127.0.0.1:{closed_port()}/postgres", min_size=0)
    clock = FakeClock(0.0)
    rl = PgRateLimiter(pool, fallback=MemoryRateLimiter(), timeout=0.5, retry_interval=5, clock=clock)
    caplog.set_level(logging.WARNING, logger="node.edge.ratelimit.pg_buckets")
    results = [await rl.hit("k", 2, 60) for _ in range(3)]
    assert [d.allowed for d in results] == [True, True, False]  # limits still hold, per process
    assert rl.degraded
    clock.advance(6)  # past retry_interval: tried again, fails again, no second warning within warn_interval
    assert not (await rl.hit_leased("k", 2, 60)).allowed
    assert not (await rl.hit_leased("other", 1, 60, cost=2)).allowed
    assert len([r for r in caplog.records if "PostgreSQL unreachable" in r.getMessage()]) == 1
    assert await rl.prune() == 0  # no error out of the background work either
    await rl.close()

    with pytest.raises(OSError):  # without a fallback the error propagates
        await PgRateLimiter(pool).hit("k", 2, 60)


def proxy_to(dsn: str) -> tuple[TcpProxy, Callable[[int], str]]:
    """A cuttable proxy to the test database's server (TCP, or the embedded cluster's Unix socket), and the
    DSN of the same database through a proxy port."""
    url = urlsplit(dsn)
    query = parse_qs(url.query)
    port = int(query.get("port", [url.port or 5432])[0])
    socket_dir = query.get("host", [""])[0]
    if socket_dir.startswith("/"):
        proxy = TcpProxy(port, lambda: asyncio.open_unix_connection(f"{socket_dir}/.s.PGSQL.{port}"))
    else:
        proxy = TcpProxy(port)
    userinfo = url.netloc.rpartition("@")[0]
    auth = f"{userinfo}@" if userinfo else ""
    return proxy, lambda proxy_port: f"postgresql://{auth}127.0.0.1:{proxy_port}{url.path}"


async def test_outage_mid_run_and_recovery(pools, database_url, caplog):
    proxy, through = proxy_to(database_url)
    await proxy.start()
    pool = await pools(through(proxy.port))
    direct = await pools()
    clock = FakeClock(0.0)
    rl = PgRateLimiter(pool, fallback=MemoryRateLimiter(), timeout=0.5, retry_interval=5, clock=clock)
    caplog.set_level(logging.WARNING, logger="node.edge.ratelimit.pg_buckets")
    try:
        assert (await rl.hit("k", 10, 3600)).remaining == 9
        for _ in range(4):
            await rl.hit_leased("r", 100, 86400)  # 3 leased tokens left in this process
        assert await row(direct, "k") is not None and not rl.degraded

        await proxy.cut()
        d = await rl.hit("k", 10, 3600)
        assert d.allowed and rl.degraded  # the in-process bucket answers (fresh: the lenient side)
        assert all([(await rl.hit_leased("r", 100, 86400)).allowed for _ in range(3)])  # the lease is spent first

        await proxy.start()  # same port
        clock.advance(6)
        d = await rl.hit("k", 10, 3600)
        assert not rl.degraded and d.remaining == 8  # back on the shared bucket
        assert any("PostgreSQL answers again" in r.getMessage() for r in caplog.records)
        assert (await rl.hit_leased("r", 100, 86400)).remaining == 92
    finally:
        await proxy.cut()


# ---- which limiter ----------------------------------------------------------------------------------


async def test_create_rate_limiter_picks_the_shared_store(pools):
    cfg, pool = limits_config(), await pools()
    assert type(create_rate_limiter(cfg, None)) is MemoryRateLimiter
    assert type(create_rate_limiter(cfg, None, pool)) is MemoryRateLimiter  # one process: in-process is exact
    shared = create_rate_limiter(cfg, None, pool, shared=True)
    assert isinstance(shared, PgRateLimiter) and isinstance(shared._fallback, MemoryRateLimiter)
    client = aioredis.from_url(f"redis://127.0.0.1:{closed_port()}/15")
    assert isinstance(create_rate_limiter(cfg, client, pool, shared=True), RedisRateLimiter)  # Redis wins
    with pytest.raises(ValueError):
        create_rate_limiter(cfg, None, None, shared=True)
    await client.aclose()


async def test_a_new_key_raced_by_many_connections_is_created_once(pools):
    # Every take of a key that has no row yet tries to insert it; the losers must take from the winner's row.
    limiters = [PgRateLimiter(await pools()) for _ in range(4)]
    keys = [f"k{i}" for i in range(20)]
    decisions = await asyncio.gather(*(rl.hit(key, 3, 3600) for key in keys for rl in limiters))
    for i, key in enumerate(keys):
        assert sum(d.allowed for d in decisions[4 * i: 4 * i + 4]) == 3, key
    assert await (await pools()).fetchval("SELECT count(*) FROM rate_buckets") == len(keys)
