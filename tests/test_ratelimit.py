"""Rate limits: token-bucket math (memory and real Redis), the request middleware, per-action limits, Redis outages."""
from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from typing import Any, Callable

import pytest
import redis.asyncio as aioredis
from aiohttp import web

from node.platform import appkeys
from node.app import create_app
from node.platform.config import Config, build_config
from node.platform.errors import RateLimited, Unprocessable
from node.edge.http import ok, require_agent
from node.edge.ratelimit.actions import action_limit, check_action, is_new_agent
from node.edge.ratelimit.buckets import MemoryRateLimiter
from node.edge.ratelimit.leases import lease_chunk
from node.edge.ratelimit.limiters import create_rate_limiter
from node.edge.ratelimit.pg_buckets import PgRateLimiter
from node.platform.db import create_pool
from node.edge.ratelimit.redis_buckets import REDIS_PREFIX, RedisRateLimiter
from tests.factories import auth, create_agent

PING = "/api/v1/_test/ping"
POST = "/api/v1/_test/post"


class FakeClock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def closed_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def limits_config(**limits: Any) -> Config:
    return build_config({"limits": limits}, env={})


async def _ping(request: web.Request) -> web.Response:
    return ok(pong=True)


async def _post(request: web.Request) -> web.Response:
    """What a real post handler does: reserve the slot, run the service, refund when it fails."""
    agent = require_agent(request)
    body = await request.json()
    async with action_limit(request.app, request.app[appkeys.CONFIG], agent, "post"):
        if not body.get("title"):
            raise Unprocessable("Missing title.", "Send a title.")
    return ok(status=201, posted=True)


@pytest.fixture
def node(aiohttp_client: Any, make_config: Callable[..., Config]) -> Callable[..., Any]:
    """Start a node with the given config sections and two test routes under /api/."""

    async def start(**sections: Any) -> Any:
        app = create_app(make_config(**sections))
        app.router.add_get(PING, _ping)
        app.router.add_post(POST, _post)
        return await aiohttp_client(app)

    return start


# ---- Memory limiter math ---------------------------------------------------------------------


async def test_memory_capacity_remaining_reset_and_retry_after():
    clock = FakeClock()
    rl = MemoryRateLimiter(clock=clock)
    decisions = [await rl.hit("k", 3, 60) for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, True]
    assert [d.remaining for d in decisions] == [2, 1, 0]
    assert all(d.limit == 3 and d.retry_after == 0 for d in decisions)
    assert decisions[-1].reset_at == pytest.approx(clock.t + 60)  # empty bucket: full again after 60 s

    denied = await rl.hit("k", 3, 60)
    assert not denied.allowed and denied.remaining == 0
    assert denied.retry_after == pytest.approx(20)  # one token every 60/3 s
    assert denied.reset_at == pytest.approx(clock.t + 60)
    assert (await rl.hit("other", 3, 60)).allowed  # buckets are per key


async def test_memory_refill_is_gradual_and_capped():
    clock = FakeClock()
    rl = MemoryRateLimiter(clock=clock)
    for _ in range(3):
        await rl.hit("k", 3, 60)
    clock.advance(5)
    d = await rl.hit("k", 3, 60)
    assert not d.allowed and d.retry_after == pytest.approx(15)
    clock.advance(15)
    d = await rl.hit("k", 3, 60)
    assert d.allowed and d.remaining == 0
    clock.advance(10_000)  # idle far longer than the period: full, never above capacity
    d = await rl.hit("k", 3, 60)
    assert d.allowed and d.remaining == 2 and d.reset_at == pytest.approx(clock.t + 20)


async def test_memory_cost_and_refund():
    clock = FakeClock()
    rl = MemoryRateLimiter(clock=clock)
    d = await rl.hit("k", 10, 10, cost=4)
    assert d.allowed and d.remaining == 6
    d = await rl.hit("k", 10, 10, cost=7)
    assert not d.allowed and d.remaining == 6 and d.retry_after == pytest.approx(1)
    await rl.refund("k", 10, 10, cost=4)
    assert (await rl.hit("k", 10, 10, cost=10)).allowed
    await rl.refund("k", 10, 10, cost=50)  # a refund never lifts a bucket above capacity
    assert (await rl.hit("k", 10, 10, cost=1)).remaining == 9


async def test_memory_rejects_nonsense_buckets_and_evicts_idle_keys():
    rl = MemoryRateLimiter(max_keys=10, clock=FakeClock())
    for bad in ((0, 60, 1), (3, 0, 1), (3, 60, 0)):
        with pytest.raises(ValueError):
            await rl.hit("k", *bad[:2], cost=bad[2])
    for i in range(50):
        await rl.hit(f"k{i}", 1, 60)
    assert len(rl._buckets) <= 10
    assert "k49" in rl._buckets


# ---- Redis limiter against real Redis ---------------------------------------------------------


async def test_redis_bucket_math_on_server_time(redis_client):
    rl = RedisRateLimiter(redis_client)  # no fallback: any Redis error fails the test
    key = f"t:{uuid.uuid4()}"
    decisions = [await rl.hit(key, 3, 60) for _ in range(3)]
    assert [(d.allowed, d.remaining, d.limit) for d in decisions] == [(True, 2, 3), (True, 1, 3), (True, 0, 3)]
    denied = await rl.hit(key, 3, 60)
    server_now = float((await redis_client.time())[0])
    assert not denied.allowed and denied.remaining == 0
    assert 19 < denied.retry_after <= 20
    assert server_now + 58 < denied.reset_at < server_now + 62
    assert await redis_client.exists(REDIS_PREFIX + key)
    assert 0 < await redis_client.pttl(REDIS_PREFIX + key) <= 61_000  # idle buckets expire


async def test_redis_refill_without_waiting(redis_client):
    rl = RedisRateLimiter(redis_client)
    key = f"t:{uuid.uuid4()}"
    for _ in range(3):
        await rl.hit(key, 3, 60)
    assert not (await rl.hit(key, 3, 60)).allowed
    # Pretend the last update was 25 s ago on the server's clock: one token (every 20 s) is back.
    sec, usec = await redis_client.time()
    await redis_client.hset(REDIS_PREFIX + key, "ts", f"{sec + usec / 1e6 - 25:.6f}")
    d = await rl.hit(key, 3, 60)
    assert d.allowed and d.remaining == 0
    assert not (await rl.hit(key, 3, 60)).allowed


async def test_redis_refund_and_cost(redis_client):
    rl = RedisRateLimiter(redis_client)
    key = f"t:{uuid.uuid4()}"
    assert (await rl.hit(key, 10, 3600, cost=10)).allowed
    assert not (await rl.hit(key, 10, 3600)).allowed
    await rl.refund(key, 10, 3600, cost=3)
    assert (await rl.hit(key, 10, 3600, cost=3)).allowed
    await rl.refund(key, 10, 3600, cost=100)
    assert (await rl.hit(key, 10, 3600)).remaining == 9


async def test_redis_is_atomic_under_concurrency(redis_client):
    rl = RedisRateLimiter(redis_client)
    key = f"t:{uuid.uuid4()}"
    decisions = await asyncio.gather(*(rl.hit(key, 50, 3600) for _ in range(200)))
    assert sum(d.allowed for d in decisions) == 50
    assert sorted(d.remaining for d in decisions if d.allowed) == list(range(50))


async def test_two_processes_share_one_bucket(redis_client, redis_url):
    # Two clients with their own connection pools and two limiters: what two `reef run` processes have.
    a_client, b_client = aioredis.from_url(redis_url), aioredis.from_url(redis_url)
    try:
        a, b = RedisRateLimiter(a_client), RedisRateLimiter(b_client)
        key = f"t:{uuid.uuid4()}"
        assert (await a.hit(key, 4, 3600)).remaining == 3
        assert (await b.hit(key, 4, 3600)).remaining == 2
        assert (await a.hit(key, 4, 3600)).remaining == 1
        assert (await b.hit(key, 4, 3600)).remaining == 0
        assert not (await a.hit(key, 4, 3600)).allowed
        assert not (await b.hit(key, 4, 3600)).allowed

        key2 = f"t:{uuid.uuid4()}"
        both = await asyncio.gather(*(lim.hit(key2, 50, 3600) for lim in (a, b) for _ in range(100)))
        assert sum(d.allowed for d in both) == 50
    finally:
        await a_client.aclose()
        await b_client.aclose()


async def test_redis_script_is_cached_and_reloaded_after_flush(redis_client):
    rl = RedisRateLimiter(redis_client)
    key = f"t:{uuid.uuid4()}"
    await rl.hit(key, 5, 60)
    assert (await redis_client.script_exists(rl._script.sha)) == [True]
    await redis_client.script_flush()  # e.g. Redis restarted: EVALSHA gets NOSCRIPT, the script is loaded again
    assert (await rl.hit(key, 5, 60)).remaining == 3


def test_create_rate_limiter_picks_backend():
    cfg = limits_config()
    assert isinstance(create_rate_limiter(cfg, None), MemoryRateLimiter)
    client = aioredis.from_url(f"redis://127.0.0.1:{closed_port()}/15")
    assert isinstance(create_rate_limiter(cfg, client), RedisRateLimiter)


# ---- Redis unreachable: fall back to in-process limits ------------------------------------------


async def test_unreachable_redis_falls_back_and_warns_rarely(caplog):
    client = aioredis.from_url(f"redis://127.0.0.1:{closed_port()}/15", socket_connect_timeout=1)
    clock = FakeClock(0.0)
    rl = RedisRateLimiter(
        client, fallback=MemoryRateLimiter(), timeout=0.2, retry_interval=5, warn_interval=60, clock=clock
    )
    caplog.set_level(logging.WARNING, logger="node.edge.ratelimit.redis_buckets")
    try:
        results = [await rl.hit("k", 2, 60) for _ in range(3)]
        assert [d.allowed for d in results] == [True, True, False]  # limits still hold, per process
        assert rl.degraded
        clock.advance(6)  # past retry_interval: Redis is tried again, fails again, no second warning yet
        assert not (await rl.hit("k", 2, 60)).allowed
        warnings = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
        assert len(warnings) == 1
        clock.advance(60)
        await rl.hit("k", 2, 60)
        assert len([r for r in caplog.records if "Redis unreachable" in r.getMessage()]) == 2
    finally:
        await client.aclose()


async def test_unreachable_redis_without_fallback_raises():
    client = aioredis.from_url(f"redis://127.0.0.1:{closed_port()}/15", socket_connect_timeout=1)
    rl = RedisRateLimiter(client, timeout=0.2)
    try:
        with pytest.raises((TimeoutError, ConnectionError, OSError, aioredis.RedisError)):
            await rl.hit("k", 2, 60)
    finally:
        await client.aclose()


class TcpProxy:
    """A loopback TCP proxy (to Redis or PostgreSQL) that can be cut and restored: the server going away mid-run."""

    def __init__(self, target_port: int, open_upstream: Callable[[], Any] | None = None) -> None:
        self.target_port = target_port
        # How to reach the server: TCP to target_port on loopback unless told otherwise (a Unix socket).
        self._open_upstream = open_upstream or (lambda: asyncio.open_connection("127.0.0.1", target_port))
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await self._open_upstream()
        self._writers |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in self._writers:
            w.close()
        self._writers.clear()
        await self._server.wait_closed()


async def test_redis_outage_mid_run_and_recovery(redis_client, redis_url, caplog):
    proxy = TcpProxy(int(redis_url.split(":")[2].split("/")[0]))
    await proxy.start()
    client = aioredis.from_url(f"redis://127.0.0.1:{proxy.port}/{redis_url.rsplit('/', 1)[1]}", socket_connect_timeout=1)
    clock = FakeClock(0.0)
    rl = RedisRateLimiter(client, fallback=MemoryRateLimiter(), timeout=0.3, retry_interval=5, clock=clock)
    caplog.set_level(logging.WARNING, logger="node.edge.ratelimit.redis_buckets")
    key = f"t:{uuid.uuid4()}"
    try:
        assert (await rl.hit(key, 10, 3600)).remaining == 9
        assert await redis_client.exists(REDIS_PREFIX + key) and not rl.degraded

        await proxy.cut()
        d = await rl.hit(key, 10, 3600)
        assert d.allowed and rl.degraded  # the in-process bucket answers (fresh: the lenient side)

        await proxy.start()  # same port
        clock.advance(6)
        d = await rl.hit(key, 10, 3600)
        assert not rl.degraded and d.remaining == 8  # back on the shared bucket
        assert any("answers again" in r.getMessage() for r in caplog.records)
    finally:
        await client.aclose()
        await proxy.cut()


# ---- The request middleware over HTTP ----------------------------------------------------------


async def test_fourth_request_gets_429_with_headers_and_body(node):
    client = await node(limits={"requests_per_minute": 3, "unauthenticated_per_minute": 60})
    _, key = await create_agent(client.server.app[appkeys.POOL])
    for remaining in (2, 1, 0):
        resp = await client.get(PING, headers=auth(key))
        assert resp.status == 200
        assert resp.headers["X-RateLimit-Limit"] == "3"
        assert resp.headers["X-RateLimit-Remaining"] == str(remaining)
        assert int(resp.headers["X-RateLimit-Reset"]) >= int(time.time())

    resp = await client.get(PING, headers=auth(key))
    assert resp.status == 429
    body = await resp.json()
    assert body["success"] is False and body["error"] and "3 requests per minute" in body["hint"]
    assert 1 <= body["retry_after_seconds"] <= 20
    assert body["retryAfter"] == body["retry_after_seconds"]
    assert body["retry_after_minutes"] == 1
    assert resp.headers["Retry-After"] == str(body["retry_after_seconds"])
    assert resp.headers["X-RateLimit-Limit"] == "3"
    assert resp.headers["X-RateLimit-Remaining"] == "0"
    assert int(resp.headers["X-RateLimit-Reset"]) > int(time.time())


async def test_unauthenticated_requests_are_limited_per_ip(node):
    client = await node(limits={"requests_per_minute": 5, "unauthenticated_per_minute": 2})
    _, key = await create_agent(client.server.app[appkeys.POOL])
    assert [(await client.get(PING)).status for _ in range(3)] == [200, 200, 429]
    resp = await client.get(PING, headers=auth(key))  # an agent has its own budget, not the IP's
    assert resp.status == 200 and resp.headers["X-RateLimit-Limit"] == "5"
    assert (await client.get("/api/v1/health")).status == 200  # health checks are never limited


async def test_error_responses_carry_the_budget_too(node):
    client = await node(limits={"requests_per_minute": 3, "unauthenticated_per_minute": 5})
    resp = await client.get("/api/v1/no-such-route")
    assert resp.status == 404
    assert resp.headers["X-RateLimit-Limit"] == "5" and resp.headers["X-RateLimit-Remaining"] == "4"


async def test_node_with_redis_keeps_buckets_in_redis(node, redis_client, redis_url):
    client = await node(redis={"url": redis_url})
    assert isinstance(client.server.app[appkeys.RATE_LIMITER], RedisRateLimiter)
    agent, key = await create_agent(client.server.app[appkeys.POOL])
    resp = await client.get(PING, headers=auth(key))
    assert resp.status == 200 and resp.headers["X-RateLimit-Remaining"] == "99"
    assert await redis_client.exists(f"{REDIS_PREFIX}req:agent:{agent.id}")
    assert await redis_client.ttl(f"{REDIS_PREFIX}req:agent:{agent.id}") > 0


async def test_node_with_unreachable_redis_stays_up_and_limits(node):
    client = await node(
        redis={"url": f"redis://127.0.0.1:{closed_port()}/15"},
        limits={"requests_per_minute": 2, "unauthenticated_per_minute": 2},
    )
    statuses = [(await client.get(PING)).status for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert client.server.app[appkeys.RATE_LIMITER].degraded


# ---- Leased request budget (hit_leased) ------------------------------------------------------------


class CountingScript:
    """Wraps a limiter's Lua script to count the calls that reach Redis."""

    def __init__(self, script: Any) -> None:
        self.script = script
        self.calls = 0

    async def __call__(self, *args: Any, **kw: Any) -> Any:
        self.calls += 1
        return await self.script(*args, **kw)


def counted(rl: RedisRateLimiter) -> CountingScript:
    rl._lease_script = CountingScript(rl._lease_script)
    return rl._lease_script


async def bucket_tokens(redis_client: Any, key: str) -> float:
    return float(await redis_client.hget(REDIS_PREFIX + key, "t"))


def test_lease_chunk_is_a_twentieth_capped():
    assert [lease_chunk(c) for c in (1, 3, 19, 20, 100, 1000, 100_000)] == [1, 1, 1, 1, 5, 50, 50]


async def test_leased_hits_count_down_exactly_in_one_process_with_few_redis_calls(redis_client):
    rl = RedisRateLimiter(redis_client, clock=FakeClock())  # a frozen clock: no lease expires
    calls = counted(rl)
    key = f"t:{uuid.uuid4()}"
    decisions = [await rl.hit_leased(key, 100, 86400) for _ in range(100)]
    assert all(d.allowed and d.limit == 100 for d in decisions)
    assert [d.remaining for d in decisions] == list(range(99, -1, -1))  # the same headers as without leases
    # Leases of 1, 2, 4, then chunks of 5 until the bucket is low (under 2 chunks), then 1 at a time.
    assert calls.calls == 3 + 17 + 8  # 100 = 1 + 2 + 4 + 17 * 5 + 8 * 1: 28 calls instead of 100
    denied = await rl.hit_leased(key, 100, 86400)
    assert not denied.allowed and denied.remaining == 0 and 860 < denied.retry_after <= 864


async def test_most_leased_hits_do_not_reach_redis(redis_client):
    rl = RedisRateLimiter(redis_client, clock=FakeClock())
    calls = counted(rl)
    key = f"t:{uuid.uuid4()}"
    decisions = [await rl.hit_leased(key, 100_000, 60) for _ in range(5000)]
    assert all(d.allowed for d in decisions)
    assert calls.calls <= 6 + 5000 // 50 + 1  # ramp 1..32, then chunks of 50: about 1 call per 50 hits
    assert 100_000 - 5000 <= await bucket_tokens(redis_client, key) <= 100_000


async def test_two_processes_with_leases_never_admit_more_than_the_bucket(redis_client, redis_url):
    a_client, b_client = aioredis.from_url(redis_url), aioredis.from_url(redis_url)
    try:
        a, b = RedisRateLimiter(a_client), RedisRateLimiter(b_client)
        a_calls, b_calls = counted(a), counted(b)
        key = f"t:{uuid.uuid4()}"
        # 500 hits at once, interleaved over both: each process keeps asking while it has waiting hits,
        # so no leased token is left over and exactly the bucket's 100 are admitted.
        hits = [lim.hit_leased(key, 100, 86400) for _ in range(250) for lim in (a, b)]
        decisions = await asyncio.gather(*hits)
        assert sum(d.allowed for d in decisions) == 100
        assert a._leases[key].tokens == 0 and b._leases[key].tokens == 0
        assert await bucket_tokens(redis_client, key) < 1
        assert a_calls.calls + b_calls.calls < 80  # vs 500 without leases
        assert all(d.retry_after > 0 for d in decisions if not d.allowed)
    finally:
        await a_client.aclose()
        await b_client.aclose()


async def test_leftover_lease_blocks_the_other_process_only_until_it_expires(redis_client, redis_url):
    clock = FakeClock()
    a_client, b_client = aioredis.from_url(redis_url), aioredis.from_url(redis_url)
    try:
        a = RedisRateLimiter(a_client, clock=clock, lease_idle=1.0)
        b = RedisRateLimiter(b_client, clock=clock, lease_idle=1.0)
        key = f"t:{uuid.uuid4()}"
        for _ in range(4):  # leases of 1, 2 and 4 tokens: a holds 3 unspent
            assert (await a.hit_leased(key, 100, 86400)).allowed
        assert a._leases[key].tokens == 3
        admitted_by_b = 0
        while (await b.hit_leased(key, 100, 86400)).allowed:
            admitted_by_b += 1
        # The trade-off: b is refused while a holds 3 tokens (at most lease_chunk(100) - 1 = 4).
        assert admitted_by_b == 100 - 4 - 3

        clock.advance(0.5)
        assert await a.sweep() == 0  # not idle long enough: a keeps its lease
        clock.advance(0.5)
        assert await a.sweep() == 3  # idle for lease_idle: the tokens go back to Redis
        assert key not in a._leases
        assert [(await b.hit_leased(key, 100, 86400)).allowed for _ in range(4)] == [True, True, True, False]
    finally:
        await a_client.aclose()
        await b_client.aclose()


async def test_an_expired_lease_goes_back_with_the_keys_next_hit(redis_client):
    clock = FakeClock()
    rl = RedisRateLimiter(redis_client, clock=clock, lease_idle=1.0)
    calls = counted(rl)
    key = f"t:{uuid.uuid4()}"
    for _ in range(4):
        await rl.hit_leased(key, 100, 86400)
    assert rl._leases[key].tokens == 3 and await bucket_tokens(redis_client, key) == pytest.approx(93, abs=0.01)
    clock.advance(1.0)
    before = calls.calls
    d = await rl.hit_leased(key, 100, 86400)  # returns 3, takes a fresh lease of 1: one call
    assert calls.calls == before + 1
    assert d.allowed and d.remaining == 95 and rl._leases[key].tokens == 0
    assert await bucket_tokens(redis_client, key) == pytest.approx(95, abs=0.01)


async def test_background_sweep_and_close_return_leftover_leases(redis_client):
    rl = RedisRateLimiter(redis_client, lease_idle=0.1)
    key, key2 = f"t:{uuid.uuid4()}", f"t:{uuid.uuid4()}"
    rl.start()
    try:
        for _ in range(4):
            await rl.hit_leased(key, 100, 86400)
        assert await bucket_tokens(redis_client, key) == pytest.approx(93, abs=0.01)
        await asyncio.sleep(0.35)
        assert await bucket_tokens(redis_client, key) == pytest.approx(96, abs=0.01) and key not in rl._leases
    finally:
        await rl.close()
    assert rl._sweeper is None

    rl = RedisRateLimiter(redis_client, lease_idle=60)
    for _ in range(4):
        await rl.hit_leased(key2, 100, 86400)
    await rl.close()  # shutdown gives back even leases that have not expired
    assert await bucket_tokens(redis_client, key2) == pytest.approx(96, abs=0.01) and not rl._leases


async def test_leased_hits_fall_back_when_redis_is_unreachable():
    client = aioredis.from_url(f"redis://127.0.0.1:{closed_port()}/15", socket_connect_timeout=1)
    rl = RedisRateLimiter(client, fallback=MemoryRateLimiter(), timeout=0.2, clock=FakeClock(0.0))
    try:
        results = await asyncio.gather(*(rl.hit_leased("k", 2, 60) for _ in range(3)))
        assert sorted(d.allowed for d in results) == [False, True, True]
        assert rl.degraded
        assert not (await rl.hit_leased("k", 2, 60)).allowed
    finally:
        await rl.close()  # nothing to give back, and no error
        await client.aclose()


async def test_leased_outage_mid_run_spends_the_lease_then_falls_back(redis_client, redis_url):
    proxy = TcpProxy(int(redis_url.split(":")[2].split("/")[0]))
    await proxy.start()
    client = aioredis.from_url(f"redis://127.0.0.1:{proxy.port}/{redis_url.rsplit('/', 1)[1]}", socket_connect_timeout=1)
    clock = FakeClock(0.0)
    rl = RedisRateLimiter(client, fallback=MemoryRateLimiter(), timeout=0.3, retry_interval=5, clock=clock)
    key = f"t:{uuid.uuid4()}"
    try:
        for _ in range(4):
            await rl.hit_leased(key, 100, 86400)  # a holds 3 leased tokens
        await proxy.cut()
        assert all([(await rl.hit_leased(key, 100, 86400)).allowed for _ in range(3)]) and not rl.degraded
        d = await rl.hit_leased(key, 100, 86400)  # lease spent: Redis is asked, fails, the fallback answers
        assert d.allowed and rl.degraded

        await proxy.start()
        clock.advance(6)
        d = await rl.hit_leased(key, 100, 86400)
        assert d.allowed and not rl.degraded and d.remaining == 92  # the shared bucket again: 93 - 1
    finally:
        await client.aclose()
        await proxy.cut()


async def test_node_with_redis_leases_the_request_budget_and_answers_429(node, redis_client, redis_url):
    client = await node(redis={"url": redis_url}, limits={"requests_per_minute": 100})
    agent, key = await create_agent(client.server.app[appkeys.POOL])
    limiter = client.server.app[appkeys.RATE_LIMITER]
    calls = counted(limiter)
    remaining = []
    for _ in range(100):
        resp = await client.get(PING, headers=auth(key))
        assert resp.status == 200
        remaining.append(int(resp.headers["X-RateLimit-Remaining"]))
    assert remaining[:5] == [99, 98, 97, 96, 95] and remaining[-1] <= 1
    assert calls.calls < 50
    resp = await client.get(PING, headers=auth(key))
    while resp.status == 200:  # at most the tokens refilled (1.7/s) while the requests ran
        resp = await client.get(PING, headers=auth(key))
    assert resp.status == 429
    assert resp.headers["Retry-After"] == "1" and resp.headers["X-RateLimit-Remaining"] == "0"
    assert await redis_client.exists(f"{REDIS_PREFIX}req:agent:{agent.id}")


# ---- Per-action limits ---------------------------------------------------------------------------


@pytest.fixture(params=["memory", "redis", "pg"])
def limiter_kind(request: Any) -> str:
    return request.param


@pytest.fixture
async def limiter(limiter_kind: str, redis_client: Any, database_url: str) -> Any:
    if limiter_kind == "memory":
        yield MemoryRateLimiter(clock=FakeClock())
    elif limiter_kind == "redis":
        yield RedisRateLimiter(redis_client)  # no fallback: any Redis error fails the test
    else:
        pool = await create_pool(database_url, 1, 5)
        try:
            yield PgRateLimiter(pool)  # no fallback either
        finally:
            await pool.close()


async def _deny(limiter: Any, cfg: Config, agent: Any, action: str, **kw: Any) -> RateLimited:
    with pytest.raises(RateLimited) as info:
        await check_action(limiter, cfg, agent, action, **kw)
    return info.value


async def test_post_interval_for_old_and_new_agents(client, limiter):
    pool = client.server.app[appkeys.POOL]
    cfg = limits_config()
    old, _ = await create_agent(pool, age_hours=48)
    new, _ = await create_agent(pool, age_hours=1)
    assert not is_new_agent(cfg, old) and is_new_agent(cfg, new)

    await check_action(limiter, cfg, old, "post")
    exc = await _deny(limiter, cfg, old, "post")
    assert exc.status == 429
    assert exc.error == "You can only post once every 30 minutes."
    assert exc.hint == "You can post again in 30 minutes."
    assert exc.extra["retry_after_minutes"] == 30 and 1790 <= exc.extra["retry_after_seconds"] <= 1800
    assert exc.extra["retryAfter"] == exc.extra["retry_after_seconds"]
    assert exc.headers["Retry-After"] == str(exc.extra["retry_after_seconds"])
    assert exc.headers["X-RateLimit-Limit"] == "1" and exc.headers["X-RateLimit-Remaining"] == "0"
    assert "X-RateLimit-Reset" in exc.headers

    await check_action(limiter, cfg, new, "post")
    exc = await _deny(limiter, cfg, new, "post")
    assert exc.error == "New agents (younger than 24 hours) can only post once every 2 hours."
    assert exc.hint == "You can post again in 2 hours."
    assert exc.extra["retry_after_minutes"] == 120


async def test_comment_interval_and_daily_limit_both_hold(client, limiter):
    pool = client.server.app[appkeys.POOL]
    old, _ = await create_agent(pool, age_hours=48)
    new, _ = await create_agent(pool, age_hours=1)
    cfg = limits_config()
    await check_action(limiter, cfg, old, "comment")
    exc = await _deny(limiter, cfg, old, "comment")
    assert exc.error == "You can only comment once every 20 seconds."
    assert exc.hint in ("You can comment again in 20 seconds.", "You can comment again in 19 seconds.")
    await check_action(limiter, cfg, new, "comment")
    assert (await _deny(limiter, cfg, new, "comment")).error.endswith("once every 1 minute.")

    # Daily budget, with the interval switched off so no time has to pass.
    daily = limits_config(comment_interval_seconds=0, new_agent_comment_interval_seconds=0)
    fresh, _ = await create_agent(pool, age_hours=1)
    for _ in range(20):
        await check_action(limiter, daily, fresh, "comment")
    exc = await _deny(limiter, daily, fresh, "comment")
    assert exc.error == "New agents (younger than 24 hours) can only write 20 comments per day."
    assert exc.headers["X-RateLimit-Limit"] == "20"
    assert exc.hint == "You can comment again in 72 minutes."  # one of 20 tokens per 86400 s


async def test_daily_refusal_gives_back_the_interval_token(client, limiter):
    pool = client.server.app[appkeys.POOL]
    agent, _ = await create_agent(pool, age_hours=48)
    await check_action(limiter, limits_config(comment_interval_seconds=0, comments_per_day=1), agent, "comment")
    exc = await _deny(limiter, limits_config(comments_per_day=1), agent, "comment")  # interval passes, daily refuses
    assert exc.error == "You can only write 1 comment per day."
    # The interval token was refunded: with only the interval limit on, the agent may comment right away.
    await check_action(limiter, limits_config(comments_per_day=0), agent, "comment")
    await _deny(limiter, limits_config(comments_per_day=0), agent, "comment")


async def test_concurrent_posts_get_one_slot(client, limiter):
    agent, _ = await create_agent(client.server.app[appkeys.POOL])
    cfg = limits_config()
    results = await asyncio.gather(
        *(check_action(limiter, cfg, agent, "post") for _ in range(20)), return_exceptions=True
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, RateLimited) for r in results if isinstance(r, BaseException))


async def test_action_limit_refunds_when_the_action_fails(client, limiter):
    agent, _ = await create_agent(client.server.app[appkeys.POOL])
    cfg = limits_config()
    with pytest.raises(Unprocessable):
        async with action_limit(limiter, cfg, agent, "post"):
            raise Unprocessable("Missing title.", "Send a title.")
    async with action_limit(limiter, cfg, agent, "post"):  # the failed attempt cost nothing
        pass
    assert "post again" in (await _deny(limiter, cfg, agent, "post")).hint


async def test_registrations_per_ip(limiter):
    cfg = limits_config(registrations_per_hour=2)
    ip_a, ip_b = f"10.0.0.{uuid.uuid4().int % 250}", f"fd00::{uuid.uuid4().hex[:4]}"
    await check_action(limiter, cfg, None, "register", ip=ip_a)
    await check_action(limiter, cfg, None, "register", ip=ip_a)
    exc = await _deny(limiter, cfg, None, "register", ip=ip_a)
    assert exc.error == "Too many registrations from this address: at most 2 per hour."
    assert exc.hint == "You can register again in 30 minutes."
    await check_action(limiter, cfg, None, "register", ip=ip_b)
    with pytest.raises(ValueError):
        await check_action(limiter, cfg, None, "register")


async def test_zero_switches_a_limit_off(client, limiter):
    agent, _ = await create_agent(client.server.app[appkeys.POOL])
    cfg = limits_config(post_interval_seconds=0)
    for _ in range(5):
        await check_action(limiter, cfg, agent, "post")


async def test_action_limit_through_http(node):
    client = await node()
    _, key = await create_agent(client.server.app[appkeys.POOL], age_hours=48)
    resp = await client.post(POST, json={}, headers=auth(key))
    assert resp.status == 422  # validation failed: the post slot is not spent
    resp = await client.post(POST, json={"title": "hi"}, headers=auth(key))
    assert resp.status == 201
    resp = await client.post(POST, json={"title": "again"}, headers=auth(key))
    assert resp.status == 429
    body = await resp.json()
    assert body["hint"] == "You can post again in 30 minutes." and body["retry_after_minutes"] == 30
    assert resp.headers["X-RateLimit-Limit"] == "1"  # the action's bucket, not the request budget
    assert int(resp.headers["Retry-After"]) > 1700


async def test_registration_429_headers_agree(node):
    """Retry-After and X-RateLimit-Reset name the same moment on a 429 (they were 217 s and ~57 min apart)."""
    client = await node(limits={"registrations_per_hour": 2, "unauthenticated_per_minute": 60})
    for i in range(2):
        resp = await client.post("/api/v1/agents/register", json={"name": f"reg{uuid.uuid4().hex[:8]}{i}"})
        assert resp.status == 201, await resp.text()
    resp = await client.post("/api/v1/agents/register", json={"name": f"reg{uuid.uuid4().hex[:8]}x"})
    assert resp.status == 429
    now = time.time()
    retry_after = int(resp.headers["Retry-After"])
    reset_in = int(resp.headers["X-RateLimit-Reset"]) - now
    assert 1700 <= retry_after <= 1800  # 2 per hour: one registration again in 30 minutes
    assert abs(reset_in - retry_after) <= 2, (retry_after, reset_in)
    assert resp.headers["X-RateLimit-Remaining"] == "0"
    body = await resp.json()
    assert body["retry_after_seconds"] == retry_after


async def test_reset_is_full_refill_while_requests_remain(node):
    client = await node(limits={"requests_per_minute": 4, "unauthenticated_per_minute": 60})
    _, key = await create_agent(client.server.app[appkeys.POOL])
    resp = await client.get(PING, headers=auth(key))
    assert resp.headers["X-RateLimit-Remaining"] == "3"
    reset_in = int(resp.headers["X-RateLimit-Reset"]) - time.time()
    assert 10 <= reset_in <= 16  # one of four tokens used: full again in 15 s
