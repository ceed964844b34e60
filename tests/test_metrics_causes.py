"""Each metric of /metrics moves when its cause happens: a 500, a query, a wait for the pool, a cache hit, a
socket, a failed delivery, a waiting inbox activity, a blocked event loop, retention, Redis going away."""
from __future__ import annotations

import asyncio
import os
import time
import uuid

from aiohttp import web

from ap_peer import start_node
from factories import auth, create_agent
from federation import outbox, urls
from metrics_support import names, scrape, value
from node.app import create_app
from node.platform import appkeys
from node.platform.db import create_pool
from node.platform.errors import ReefError
from node.platform.metrics import Metrics
from node.realtime import app as realtime_app
from node.realtime.state import REALTIME


def _app_with_failing_routes(cfg):
    app = create_app(cfg)

    async def boom(request: web.Request) -> web.Response:
        raise ZeroDivisionError("forced by the test")

    async def refused(request: web.Request) -> web.Response:
        raise ReefError("No.", "A test refusal.", status=409)

    app.router.add_get("/test/boom/{n}", boom)
    app.router.add_get("/test/refused", refused)
    return app


async def test_errors_are_counted_by_route_status_class_and_type(aiohttp_client, make_config):
    client = await aiohttp_client(_app_with_failing_routes(make_config()))
    before = await scrape(client)
    assert value(before, "reef_http_errors_total") == 0
    for n in range(3):
        assert (await client.get(f"/test/boom/{n}")).status == 500
    assert (await client.get("/test/refused")).status == 409
    assert (await client.get("/api/v1/nowhere")).status == 404
    text = await scrape(client)
    assert value(text, "reef_http_errors_total", route="/test/boom/{n}", status="500", **{"class": "5xx"},
                 error="ZeroDivisionError") == 3
    assert value(text, "reef_http_errors_total", route="/test/refused", status="409", error="ReefError") == 1
    assert value(text, "reef_http_errors_total", route="unmatched", status="404", error="HTTPNotFound") == 1
    assert value(text, "reef_http_errors_total", **{"class": "5xx"}) == 3
    assert value(text, "reef_http_requests_total", route="/test/boom/{n}", status="500") == 3


async def test_database_statements_and_slow_ones_are_counted(aiohttp_client, make_config):
    client = await aiohttp_client(create_app(make_config(metrics={"slow_query_seconds": 0.05})))
    pool = client.server.app[appkeys.POOL]
    before = await scrape(client)
    async with pool.acquire() as conn:
        for _ in range(10):
            await conn.fetchval("SELECT 1")
        await conn.execute("SELECT pg_sleep(0.08)")
        try:
            await conn.execute("SELECT * FROM no_such_table")
        except Exception:  # noqa: BLE001 - the failing statement is the point
            pass
    await asyncio.sleep(0)  # asyncpg hands each record to the logger with call_soon
    text = await scrape(client)
    # 11 good statements and a failing one here, plus whatever the node ran meanwhile (the scrape's ping).
    ok = value(text, "reef_db_queries_total", outcome="ok") - value(before, "reef_db_queries_total", outcome="ok")
    assert ok >= 11
    assert value(text, "reef_db_queries_total", outcome="error") - value(before, "reef_db_queries_total", outcome="error") == 1
    assert value(text, "reef_db_slow_queries_total") - value(before, "reef_db_slow_queries_total") == 1
    assert value(text, "reef_db_query_duration_seconds_count") >= 12
    assert value(text, "reef_database_up") == 1 and value(text, "reef_database_ping_seconds") > 0


async def test_pool_waits_are_counted_when_every_connection_is_lent(database_url):
    metrics = Metrics()
    pool = await create_pool(database_url, 1, 2, metrics=metrics)
    try:
        a, b = await pool.acquire(), await pool.acquire()
        metrics.sample_pool(pool)
        text = metrics.exposition().decode()
        assert value(text, "reef_db_pool_in_use") == 2 and value(text, "reef_db_pool_max") == 2
        assert value(text, "reef_db_pool_waits_total") == 0
        waiter = asyncio.ensure_future(pool.acquire())
        await asyncio.sleep(0.05)
        assert not waiter.done()
        await pool.release(a)
        c = await waiter
        await pool.release(b)
        await pool.release(c)
        metrics.sample_pool(pool)
        text = metrics.exposition().decode()
        assert value(text, "reef_db_pool_waits_total") == 1
        assert value(text, "reef_db_pool_acquire_seconds_count") == 3
        assert value(text, "reef_db_pool_acquire_seconds_sum") >= 0.04
        assert value(text, "reef_db_pool_in_use") == 0
    finally:
        await pool.close()


async def test_api_key_cache_hits_and_misses(client):
    pool = client.server.app[appkeys.POOL]
    _, key = await create_agent(pool)
    for _ in range(3):
        assert (await client.get("/api/v1/agents/me", headers=auth(key))).status == 200
    text = await scrape(client)
    assert value(text, "reef_cache_requests_total", cache="api_key", result="miss") == 1
    assert value(text, "reef_cache_requests_total", cache="api_key", result="hit") == 2


async def test_websocket_connections_and_queue_drops(aiohttp_client, make_config):
    client = await aiohttp_client(create_app(make_config(limits={"stream_queue_size": 1})))
    pool = client.server.app[appkeys.POOL]
    _, key = await create_agent(pool)
    assert value(await scrape(client), "reef_websocket_connections") == 0
    ws = await client.ws_connect("/api/v1/stream", headers=auth(key))
    while True:
        if (await ws.receive_json(timeout=5))["type"] == "ready":
            break
    assert value(await scrape(client), "reef_websocket_connections") == 1
    # Two frames at once into a queue of one: the session is closed as a slow consumer.
    [session] = [s for group in client.server.app[REALTIME].hub.sessions.values() for s in group]
    session.push('{"type": "x"}')
    session.push('{"type": "y"}')
    for _ in range(100):
        if ws.closed:
            break
        await ws.receive(timeout=5)
    text = await scrape(client)
    assert value(text, "reef_websocket_queue_drops_total", reason="slow_consumer") == 1
    for _ in range(100):
        if value(await scrape(client), "reef_websocket_connections") == 0:
            break
        await asyncio.sleep(0.02)
    assert value(await scrape(client), "reef_websocket_connections") == 0


async def test_failed_deliveries_queue_depth_and_age_per_host(aiohttp_server, aiohttp_client, make_config, peer):
    node = await start_node(aiohttp_server, aiohttp_client, make_config)
    await create_agent(node.pool, "sender")
    actor = urls.agent_url(node.cfg, "sender")
    for i in range(2):
        activity = {"@context": "https://www.w3.org/ns/activitystreams", "id": outbox.new_activity_id(node.cfg),
                    "type": "Create", "actor": actor,
                    "object": {"type": "Note", "id": f"{actor}/notes/{uuid.uuid4()}", "content": f"n{i}"}}
        async with node.pool.acquire() as conn, conn.transaction():
            await outbox.publish(conn, node.cfg, activity, [peer.shared_inbox])
    async with node.pool.acquire() as conn:
        await conn.execute("UPDATE deliveries SET created_at = now() - interval '90 seconds'")
    text = await scrape(node.client)
    assert value(text, "reef_federation_queue_depth", host=peer.host) == 2
    assert 89 <= value(text, "reef_federation_queue_oldest_age_seconds", host=peer.host) < 200
    peer.script = [400, 500]
    assert await node.workers.delivery.run_once() == 2
    text = await scrape(node.client)
    assert value(text, "reef_federation_deliveries_total", outcome="failed") == 1
    assert value(text, "reef_federation_deliveries_total", outcome="retry") == 1
    assert value(text, "reef_federation_delivery_duration_seconds_count") == 2
    assert value(text, "reef_federation_queue_depth", host=peer.host) == 1  # the 400 left the queue
    peer.script = []
    async with node.pool.acquire() as conn:
        await conn.execute("UPDATE deliveries SET next_attempt_at = now()")
    assert await node.workers.delivery.run_once() == 1
    text = await scrape(node.client)
    assert value(text, "reef_federation_deliveries_total", outcome="delivered") == 1
    assert value(text, "reef_federation_queue_depth", host=peer.host) == 0  # emptied hosts read 0, not stale
    assert value(text, "reef_federation_queue_oldest_age_seconds", host=peer.host) == 0


async def test_inbox_backlog_lag_and_processing(aiohttp_server, aiohttp_client, make_config, peer):
    node = await start_node(aiohttp_server, aiohttp_client, make_config)
    async with node.pool.acquire() as conn:
        await conn.execute(
            """INSERT INTO inbox_activities (ap_id, actor_url, type, body, received_at)
               VALUES ($1, $2, 'Undo', $3, now() - interval '2 minutes')""",
            peer.new_id(), peer.actor("alice"), {"type": "Undo", "actor": peer.actor("alice"), "object": "x"},
        )
    text = await scrape(node.client)
    assert value(text, "reef_inbox_backlog") == 1
    assert 119 <= value(text, "reef_inbox_lag_seconds") < 300
    assert await node.workers.inbox.run_once() == 1
    text = await scrape(node.client)
    assert value(text, "reef_inbox_backlog") == 0 and value(text, "reef_inbox_lag_seconds") == 0
    assert value(text, "reef_inbox_processed_total") == 1
    assert value(text, "reef_inbox_processing_delay_seconds_sum") >= 119


async def test_event_loop_lag_is_measured(client):
    time.sleep(0.6)  # block the loop: the lag probe's timer fires late
    for _ in range(50):
        text = await scrape(client)
        if value(text, "reef_event_loop_lag_seconds_sum") >= 0.1:
            break
        await asyncio.sleep(0.05)
    assert value(text, "reef_event_loop_lag_seconds_sum") >= 0.1
    assert value(text, "reef_event_loop_lag_seconds_count") >= 1


async def test_stream_retention_counts_pruned_events(aiohttp_client, make_config, monkeypatch):
    monkeypatch.setattr(realtime_app, "PRUNE_FIRST_DELAY", 0.0)
    monkeypatch.setattr(realtime_app, "PRUNE_EVERY", 0.01)
    client = await aiohttp_client(create_app(make_config(limits={"stream_retention_hours": 1})))
    pool = client.server.app[appkeys.POOL]
    agent, _ = await create_agent(pool)
    async with pool.acquire() as conn:
        await conn.execute(
            """INSERT INTO stream_events (agent_id, id, type, payload, created_at)
               SELECT $1, g, 'test', '{}'::jsonb, now() - interval '2 hours' FROM generate_series(1001, 1003) g""",
            agent.id,
        )
    for _ in range(200):
        if value(await scrape(client), "reef_stream_events_pruned_total") >= 3:
            break
        await asyncio.sleep(0.02)
    text = await scrape(client)
    assert value(text, "reef_stream_events_pruned_total") == 3
    assert time.time() - value(text, "reef_stream_retention_last_run_timestamp_seconds") < 30


async def test_redis_up_and_down(aiohttp_client, make_config, redis_url):
    up = await aiohttp_client(create_app(make_config(redis={"url": redis_url})))
    assert value(await scrape(up), "reef_redis_up") == 1
    assert "reef_redis_up" not in names(await scrape(await aiohttp_client(create_app(make_config()))))
    # A Redis that went away after start: the scrape says so instead of hanging.
    import redis.asyncio as aioredis

    app = up.server.app
    real, app[appkeys.REDIS] = app[appkeys.REDIS], aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    try:
        assert value(await scrape(up), "reef_redis_up") == 0
    finally:
        await app[appkeys.REDIS].aclose()
        app[appkeys.REDIS] = real


async def test_database_down_reads_zero(client):
    pool = client.server.app[appkeys.POOL]
    pool.terminate()  # the server is gone for this node: every connection drops
    assert value(await scrape(client), "reef_database_up") == 0


async def test_data_dir_disk_space_in_metrics_and_health(client):
    data_dir = client.server.app[appkeys.CONFIG].data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    st = os.statvfs(data_dir)
    text = await scrape(client)
    assert value(text, "reef_data_dir_size_bytes") == st.f_blocks * st.f_frsize
    assert abs(value(text, "reef_data_dir_free_bytes") - st.f_bavail * st.f_frsize) < 64 * 2**20
    disk = (await (await client.get("/api/v1/health")).json())["checks"]["disk"]
    assert disk["ok"] is True and disk["path"] == str(data_dir)
    assert disk["total_bytes"] == st.f_blocks * st.f_frsize and 0 < disk["free_ratio"] <= 1


async def test_process_and_gc_collectors_are_exported(client):
    text = await scrape(client)
    assert value(text, "process_resident_memory_bytes") > 10 * 2**20
    assert value(text, "python_gc_collections_total") > 0
    assert value(text, "reef_uptime_seconds") >= 0
