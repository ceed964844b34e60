"""The admin's status page: per-process minute samples summed per minute, and retry/skip of a host's deliveries."""
from __future__ import annotations

import asyncio
import datetime as dt
import re

import asyncpg
import pytest
from web_support import NO_WAIT_LIMITS, PASSWORD, claim, csrf_from, get_csrf, login, make_admin, register

from federation import delivery_store
from federation.workers import RUN_WORKERS
from node.app import create_app
from node.background import SAMPLER
from node.platform.appkeys import CONFIG, METRICS, POOL
from node.platform.db import create_pool
from node.platform.metrics import BUCKETS
from node.platform.samples import RequestTally, quantile
from node.services import node_status
from web import auth as web_auth


@pytest.fixture
async def site(aiohttp_client, make_config):
    app = create_app(make_config(limits=NO_WAIT_LIMITS, claims={"verify_proof": False}))
    app[RUN_WORKERS] = False  # the tests look at the delivery queue the admin changes; no worker sends meanwhile
    client = await aiohttp_client(app)
    # This process's own sampler would write a row whenever a minute ends during the test: stopped here (its
    # last write happens now), so the only rows that appear later are the ones a test writes.
    task = client.server.app[SAMPLER]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return client


def _figures(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-figure="([a-z0-9_]+)">([^<]*)<', html))


async def _admin(site) -> str:
    await make_admin(site, "root@example.org")
    resp = await login(site, "root@example.org")
    assert resp.status == 200
    return csrf_from(await (await site.get("/admin/status")).text())


# --- sampling ------------------------------------------------------------------------------------

async def test_requests_are_tallied_and_the_sampler_writes_one_row_per_process_and_minute(site):
    tally = site.server.app[METRICS].tally
    tally.take()
    for _ in range(3):
        assert (await site.get("/api/v1/health")).status == 200
    assert (await site.get("/api/v1/no-such-thing")).status == 404
    counted = list(tally.minutes.values())
    assert sum(c.requests for c in counted) == 4 and sum(c.errors_4xx for c in counted) == 1
    assert sum(sum(c.buckets) for c in counted) == 4 and len(counted[0].buckets) == len(BUCKETS) + 1

    pool = site.server.app[POOL]
    probe = RequestTally(BUCKETS)
    probe.observe(500, 0.02)
    sampler = asyncio.create_task(node_status.run_sampler(pool, probe, lambda: 3, "probe:1", every=0.05))
    async with asyncio.timeout(10):
        while not await pool.fetchval("SELECT count(*) FROM node_samples WHERE instance = 'probe:1'"):
            await asyncio.sleep(0.02)
    probe.observe(200, 0.002)  # in flight at shutdown: the cancelled sampler writes it on its way out
    await asyncio.sleep(0)
    sampler.cancel()
    await asyncio.gather(sampler, return_exceptions=True)
    rows = await pool.fetch("SELECT * FROM node_samples WHERE instance = 'probe:1'")
    assert sum(r["requests"] for r in rows) == 2 and sum(r["errors_5xx"] for r in rows) == 1
    assert {r["open_sockets"] for r in rows} == {3}
    assert [sum(x) for x in zip(*(r["latency_buckets"] for r in rows))] == [0, 1, 0, 0, 1] + [0] * (len(BUCKETS) - 4)

    # A whole-minute write gives the minute that ended a row even when no request came (the process was up).
    assert await node_status.write_samples(pool, "idle:2", RequestTally(BUCKETS), 0) == 1
    idle = await pool.fetchrow("SELECT minute, requests FROM node_samples WHERE instance = 'idle:2'")
    assert idle["requests"] == 0
    assert idle["minute"] == (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)).replace(second=0, microsecond=0) \
        or dt.datetime.now(dt.timezone.utc).second == 0  # unless the minute turned between the two lines

    # Old samples are pruned (by the background process's hourly job).
    await pool.execute("UPDATE node_samples SET minute = minute - interval '49 hours' WHERE instance = 'idle:2'")
    assert await node_status.prune_samples(pool) == 1


async def test_the_page_sums_two_processes_per_minute_and_takes_p99_from_the_summed_buckets(site):
    pool = site.server.app[POOL]
    at = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0) - dt.timedelta(minutes=5)
    # Given two worker processes in the same minute: one answered 95 fast requests (3 of them 404s), the other
    # 5 slow ones (2 of them 500s).
    web1, web2 = RequestTally(BUCKETS), RequestTally(BUCKETS)
    for i in range(95):
        web1.observe(404 if i < 3 else 200, 0.003, at=at)
    for i in range(5):
        web2.observe(500 if i < 2 else 200, 0.7, at=at)
    await node_status.write_samples(pool, "web-1:100", web1, 2, whole_minute=False)
    await node_status.write_samples(pool, "web-2:200", web2, 5, whole_minute=False)
    # (a second write into the same minute adds up: a flush mid-minute, then the rest)
    extra = RequestTally(BUCKETS)
    extra.observe(200, 0.003, at=at)
    await node_status.write_samples(pool, "web-1:100", extra, 2, whole_minute=False)

    admin, _ = await web_auth.create_admin(pool, "root@example.org", PASSWORD)
    page = await node_status.status_page(pool, site.server.app[CONFIG], admin)
    minute = next(m for m in page.minutes if m.minute == at)
    assert (minute.requests, minute.errors_4xx, minute.errors_5xx, minute.processes) == (101, 3, 2, 2)
    assert minute.open_sockets == 7
    # 96 requests in the 5 ms bucket and 5 in the 1 s one: the 99th percentile (rank 99.99) is in the slow bucket,
    # 0.5 + 0.5 * (99.99 - 96) / 5. One process's own p99 would read 5 ms, the other's 990 ms.
    assert minute.p99_seconds == pytest.approx(0.5 + 0.5 * (0.99 * 101 - 96) / 5)
    assert quantile(BUCKETS, [0] * (len(BUCKETS) + 1), 0.99) is None
    assert len(page.minutes) == node_status.WINDOW_MINUTES and page.minutes[-1].minute > at
    assert page.database_bytes > 1_000_000 and page.disk.total > page.disk.free > 0

    # The HTML shows the hour's figures: the sums of every row in node_samples over the window.
    assert (await login(site, "root@example.org")).status == 200
    for _ in range(3):  # the page and the check below read the same window unless a minute ends between them
        started = await pool.fetchval("SELECT date_trunc('minute', now())")
        html = await (await site.get("/admin/status")).text()
        totals = await pool.fetchrow(
            """SELECT sum(requests) AS r, sum(errors_4xx) AS e4, sum(errors_5xx) AS e5, date_trunc('minute', now()) AS m
               FROM node_samples
               WHERE minute >= date_trunc('minute', now()) - interval '60 minutes' AND minute < date_trunc('minute', now())""")
        if totals["m"] == started:
            break
    figures = _figures(html)
    assert (int(figures["requests"]), int(figures["errors_4xx"]), int(figures["errors_5xx"])) == \
        (totals["r"], totals["e4"], totals["e5"])
    assert totals["r"] >= 101
    assert figures["database_bytes"].endswith("MiB") and figures["disk_free"].endswith("GiB")
    assert html.count('<svg class="chart wide"') == 4
    assert "Requests per minute" in html and "p99 latency per minute" in html



# --- retry and skip ------------------------------------------------------------------------------

async def _queue(pool) -> None:
    """down.example: marked down, 3 deliveries backed off for an hour; other.example: 1, untouched by the tests."""
    async with pool.acquire() as conn:
        await conn.execute("""INSERT INTO peer_hosts (host, status, consecutive_fails, next_probe_at)
                              VALUES ('down.example', 'down', 7, now() + interval '1 hour')""")
        activity = await conn.fetchval(
            "INSERT INTO activities (ap_id, actor_url, type, body) VALUES ('https://x/a/1', 'https://x/u/a', 'Create', '{}') RETURNING id")
        for i in range(3):
            await conn.execute(
                """INSERT INTO deliveries (activity_id, inbox_url, host, attempts, next_attempt_at)
                   VALUES ($1, $2, 'down.example', 4, now() + interval '1 hour')""",
                activity, f"https://down.example/inbox/{i}")
        await conn.execute(
            """INSERT INTO deliveries (activity_id, inbox_url, host, attempts, next_attempt_at)
               VALUES ($1, 'https://other.example/inbox', 'other.example', 2, now() + interval '1 hour')""", activity)


async def _state(pool) -> tuple:
    rows = await pool.fetch(
        """SELECT host, next_attempt_at <= now() AS due, failed_at IS NOT NULL AS failed, last_error
           FROM deliveries ORDER BY id""")
    audit = await pool.fetch("SELECT actor, action, target, details FROM audit_log WHERE action LIKE 'federation.%' ORDER BY id")
    probe = await pool.fetchval("SELECT next_probe_at <= now() FROM peer_hosts WHERE host = 'down.example'")
    return [tuple(r) for r in rows], [tuple(a) for a in audit], probe


class Wakes:
    """Counts pg_notify('reef_delivery') on a LISTEN connection of its own."""

    def __init__(self) -> None:
        self.count = 0
        self.event = asyncio.Event()

    def __call__(self, *_args) -> None:
        self.count += 1
        self.event.set()

    async def wait(self) -> None:
        async with asyncio.timeout(5):
            await self.event.wait()
        self.event.clear()


async def test_retry_and_skip_need_an_admin_session_and_the_csrf_token(site, aiohttp_client, database_url):
    pool = site.server.app[POOL]
    await _queue(pool)
    before = await _state(pool)
    # Nobody logged in: without a token, and with the token of an anonymous visitor's session.
    for action in ("retry", "skip"):
        assert (await site.post(f"/admin/status/queue/{action}", data={"host": "down.example"},
                                allow_redirects=False)).status == 403
        token = await get_csrf(site, "/login")
        assert (await site.post(f"/admin/status/queue/{action}", data={"host": "down.example", "csrf_token": token},
                                allow_redirects=False)).status == 403
    # An owner who is not an admin, with a good token.
    owner = await aiohttp_client(site.server)
    agent = await register(owner, "ownedbot")
    assert (await claim(owner, agent, "owner@example.org")).status == 200
    token = await get_csrf(owner, "/dashboard")
    for action in ("retry", "skip"):
        resp = await owner.post(f"/admin/status/queue/{action}", data={"host": "down.example", "csrf_token": token})
        assert resp.status == 403 and "Only node admins" in await resp.text()
    assert (await owner.get("/admin/status")).status == 403
    # The admin, without the token, with a wrong one, and with another session's token.
    good = await _admin(site)
    for bad in ({}, {"csrf_token": "0" * 40}, {"csrf_token": token}):
        for action in ("retry", "skip"):
            resp = await site.post(f"/admin/status/queue/{action}", data={"host": "down.example", **bad})
            assert resp.status == 403 and "expired or did not come from this site" in await resp.text()
    # A form from another site, with the right token.
    resp = await site.post("/admin/status/queue/skip", data={"host": "down.example", "csrf_token": good},
                           headers={"Origin": "https://evil.example"})
    assert resp.status == 403
    assert await _state(pool) == before


async def test_retry_makes_the_hosts_deliveries_due_and_skip_gives_them_up_both_audited(site, database_url):
    pool = site.server.app[POOL]
    await _queue(pool)
    wakes = Wakes()
    listener = await asyncpg.connect(database_url)
    await listener.add_listener("reef_delivery", wakes)
    try:
        token = await _admin(site)
        html = await (await site.get("/admin/status")).text()
        row = html.split('<tr data-host="down.example">', 1)[1].split("</tr>", 1)[0]
        assert ">down<" in row and "<td>3</td>" in row and "Retry now" in row and "Skip" in row

        resp = await site.post("/admin/status/queue/retry", data={"host": "Down.Example ", "csrf_token": token},
                               allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"].startswith("/admin/status?done=")
        await wakes.wait()
        rows, audit, probed = await _state(pool)
        assert [r[:3] for r in rows] == [("down.example", True, False)] * 3 + [("other.example", False, False)]
        assert probed is True  # the down host is probed at once; its first answer releases the rest
        admin_id = await pool.fetchval("SELECT id FROM web_accounts WHERE email = 'root@example.org'")
        assert audit == [(f"account:{admin_id}", "federation.retry", "host:down.example",
                          {"deliveries": 3, "made_due": 3})]
        # What the delivery worker's next claim takes now: the down host's probe (one), nothing for other.example.
        async with pool.acquire() as conn:
            claimed = await delivery_store.claim_due_deliveries(conn, 10, 5, 30.0, 60.0)
            assert [d.host for d in claimed] == ["down.example"]
            await delivery_store.release_leases(conn, [d.id for d in claimed])
        page = await site.get(resp.headers["Location"])
        assert "3 deliveries to down.example made due now" in await page.text()

        resp = await site.post("/admin/status/queue/skip", data={"host": "down.example", "csrf_token": token})
        assert resp.status == 200 and "3 deliveries to down.example given up" in await resp.text()
        await wakes.wait()
        rows, audit, _ = await _state(pool)
        assert [r[0::2] for r in rows] == [("down.example", True)] * 3 + [("other.example", False)]
        assert {r[3] for r in rows[:3]} == {node_status.SKIPPED}
        assert audit[-1] == (f"account:{admin_id}", "federation.skip", "host:down.example", {"deliveries": 3})
        # Given up like the worker's permanent failures: the queue no longer counts them, the admin page does.
        html = await resp.text()
        row = html.split('<tr data-host="down.example">', 1)[1].split("</tr>", 1)[0]
        assert "<td>0</td>" in row and "<td>3</td>" in row and "Retry now" not in row

        # Nothing left to act on, or no host at all: refused, nothing recorded.
        again = await site.post("/admin/status/queue/skip", data={"host": "down.example", "csrf_token": token})
        assert again.status == 404
        for bad in ("", "a b", "x" * 300, "evil.example/path"):
            resp = await site.post("/admin/status/queue/retry", data={"host": bad, "csrf_token": token})
            assert resp.status == 422, bad
        assert (await site.post("/admin/status/queue/explode", data={"host": "down.example", "csrf_token": token})).status == 404
        assert len((await _state(pool))[1]) == 2
        assert wakes.count == 2
    finally:
        await listener.close()


# --- real processes ------------------------------------------------------------------------------

async def test_two_node_processes_each_write_their_own_rows_and_the_page_adds_them_up(tmp_path, database_url, make_config):
    """Two `reef run` processes on one database (as `reef run --workers 2` makes, but each on its own port so
    the test decides who answers what): each process's sampler writes its own rows (here the last, unfinished
    minute, written as SIGTERM stops it), and the page's minute is their sum."""
    import signal

    import aiohttp
    from test_metrics_processes import _start

    (a, port_a), (b, port_b) = await asyncio.gather(_start(tmp_path, database_url, {}, "a"),
                                                    _start(tmp_path, database_url, {}, "b"))
    try:
        async with aiohttp.ClientSession() as http:
            for port, n in ((port_a, 2), (port_b, 3)):
                for _ in range(n):
                    async with http.get(f"http://127.0.0.1:{port}/api/v1/agents/me") as resp:
                        assert resp.status == 401
    finally:
        for proc in (a, b):
            proc.send_signal(signal.SIGTERM)
        for proc in (a, b):
            await asyncio.wait_for(proc.wait(), 30)
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            """SELECT instance, sum(errors_4xx) AS e4, sum(requests) AS r FROM node_samples
               WHERE substring(instance from ':([0-9]+)$') = ANY($1::text[]) GROUP BY instance ORDER BY 2""",
            [str(a.pid), str(b.pid)])
    finally:
        await conn.close()
    assert [r["instance"].rsplit(":", 1)[1] for r in rows] == [str(a.pid), str(b.pid)]
    assert [r["e4"] for r in rows] == [2, 3]
    assert all(r["r"] > r["e4"] for r in rows)  # and the health checks the start-up waited on

    pool = await create_pool(database_url, 1, 2)  # with the node's codecs
    try:
        admin, _ = await web_auth.create_admin(pool, "root@example.org", PASSWORD)
        later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=2)  # their minutes are whole by then
        page = await node_status.status_page(pool, make_config(), admin, now=later)
    finally:
        await pool.close()
    assert page.errors_4xx == 5 and page.requests == sum(r["r"] for r in rows)
    assert max(m.processes for m in page.minutes) == 2


async def test_a_minute_the_database_refused_is_written_with_the_next_one(site):
    pool = site.server.app[POOL]
    tally = RequestTally(BUCKETS)
    tally.observe(200, 0.003)
    tally.observe(503, 0.2)
    async with pool.acquire() as conn:
        await conn.execute("ALTER TABLE node_samples RENAME TO node_samples_away")
    with pytest.raises(asyncpg.UndefinedTableError):
        await node_status.write_samples(pool, "blip:1", tally, 0, whole_minute=False)
    async with pool.acquire() as conn:
        await conn.execute("ALTER TABLE node_samples_away RENAME TO node_samples")
    tally.observe(200, 0.003)
    await node_status.write_samples(pool, "blip:1", tally, 0, whole_minute=False)
    row = await pool.fetchrow("SELECT sum(requests) AS r, sum(errors_5xx) AS e5 FROM node_samples WHERE instance = 'blip:1'")
    assert (row["r"], row["e5"]) == (3, 1)


async def test_the_app_sampler_records_this_processs_open_sockets(aiohttp_client, make_config):
    app = create_app(make_config(limits=NO_WAIT_LIMITS))
    client = await aiohttp_client(app)
    agent = await register(client, "streamer")
    ws = await client.ws_connect("/api/v1/stream", headers={"Authorization": f"Bearer {agent['api_key']}"})
    try:
        async with asyncio.timeout(5):
            while (await ws.receive_json())["type"] != "ready":
                pass
        task = app[SAMPLER]  # stopped now: its last write carries the register request and the open socket
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        await ws.close()
    row = await app[POOL].fetchrow(
        "SELECT instance, sum(requests) AS r, max(open_sockets) AS s FROM node_samples GROUP BY instance")
    assert row["instance"] == node_status.instance_name() and row["r"] >= 1 and row["s"] == 1
