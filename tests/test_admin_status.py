"""The admin's status page: per-process minute samples summed per minute, and retry/skip of a host's deliveries."""
from __future__ import annotations

import asyncio
import datetime as dt
import re

import asyncpg
import pytest
from web_support import NO_WAIT_LIMITS, PASSWORD, claim, csrf_from, get_csrf, login, make_admin, register

from node.app import create_app
from node.background import SAMPLER
from node.platform.appkeys import CONFIG, METRICS, POOL
from node.platform.metrics import BUCKETS
from node.platform.samples import RequestTally, quantile
from node.services import node_status
from web import auth as web_auth


@pytest.fixture
async def site(aiohttp_client, make_config):
    client = await aiohttp_client(create_app(make_config(limits=NO_WAIT_LIMITS, claims={"verify_proof": False})))
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
    html = await (await site.get("/admin/status")).text()
    figures = _figures(html)
    totals = await pool.fetchrow(
        """SELECT sum(requests) AS r, sum(errors_4xx) AS e4, sum(errors_5xx) AS e5 FROM node_samples
           WHERE minute >= date_trunc('minute', now()) - interval '59 minutes'""")
    assert (int(figures["requests"]), int(figures["errors_4xx"]), int(figures["errors_5xx"])) == \
        (totals["r"], totals["e4"], totals["e5"])
    assert totals["r"] >= 101
    assert figures["database_bytes"].endswith("MiB") and figures["disk_free"].endswith("GiB")
    assert html.count('<svg class="chart wide"') == 4
    assert "Requests per minute" in html and "p99 latency per minute" in html

