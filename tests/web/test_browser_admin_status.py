"""Browser test of the admin's status page (/admin/status): the SVG charts render, retry and skip work in Chromium."""
from __future__ import annotations

import datetime as dt
import math

from web_support import PASSWORD, make_admin

from node.platform.appkeys import POOL
from node.platform.metrics import BUCKETS
from node.platform.samples import RequestTally
from node.services import node_status



async def _login(page, node, email: str, password: str = PASSWORD) -> None:
    await page.goto(node.url("/login"))
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url("**/dashboard")


async def _an_hour_of_two_processes(pool) -> None:
    """Two worker processes' samples over the last hour: a daily-looking wave of traffic, a burst of 5xx and
    slow answers twenty minutes ago, sockets climbing."""
    now = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
    for i in range(60, 0, -1):
        at = now - dt.timedelta(minutes=i)
        for proc, share in (("web-1:100", 0.6), ("web-2:200", 0.4)):
            tally = RequestTally(BUCKETS)
            n = int((40 + 25 * math.sin(i / 9)) * share)
            for k in range(n):
                slow = 18 <= i <= 22 and k % 5 == 0
                status = 500 if slow and k % 2 == 0 else 404 if k % 17 == 0 else 200
                tally.observe(status, 0.8 if slow else 0.004 + (k % 7) * 0.003, at=at)
            await node_status.write_samples(pool, proc, tally, int((60 - i) / 6 * share) + 1, now=at, whole_minute=False)


async def test_admin_status_page_in_chromium(node, open_page, shoot):
    pool = node.app[POOL]
    await _an_hour_of_two_processes(pool)
    async with pool.acquire() as conn:
        await conn.execute("""INSERT INTO peer_hosts (host, status, consecutive_fails, last_failure_at)
                              VALUES ('mastodon.example', 'down', 9, now() - interval '5 minutes'),
                                     ('lemmy.example', 'up', 1, now() - interval '1 minute')""")
        activity = await conn.fetchval(
            "INSERT INTO activities (ap_id, actor_url, type, body) VALUES ('https://a/1', 'https://a/u', 'Create', '{}') RETURNING id")
        for i in range(4):
            await conn.execute(
                """INSERT INTO deliveries (activity_id, inbox_url, host, attempts, next_attempt_at, created_at)
                   VALUES ($1, $2, 'mastodon.example', 6, now() + interval '1 hour', now() - interval '2 hours')""",
                activity, f"https://mastodon.example/users/u{i}/inbox")
        await conn.execute(
            """INSERT INTO deliveries (activity_id, inbox_url, host, attempts, next_attempt_at, created_at)
               VALUES ($1, 'https://lemmy.example/inbox', 'lemmy.example', 1, now() + interval '10 minutes',
                       now() - interval '3 minutes')""", activity)
    await make_admin(node.client, "root@example.org")
    w = await open_page()
    page = w.page
    await _login(page, node, "root@example.org", PASSWORD)
    await page.goto(node.url("/admin"))
    await page.get_by_role("link", name="Node status").click()
    await page.wait_for_url("**/admin/status")
    assert await page.title() == "Node status · Reef"
    charts = page.get_by_role("img")
    labels = [await charts.nth(i).get_attribute("aria-label") for i in range(await charts.count())]
    assert [lbl.split(" per minute")[0] for lbl in labels if " per minute" in lbl] == [
        "Requests", "Errors", "p99 latency", "Open WebSocket sockets"]
    for i, lbl in enumerate(labels):
        if " per minute" in lbl:
            box = await charts.nth(i).bounding_box()
            assert box and box["width"] > 250 and box["height"] > 50, (lbl, box)
    assert await page.locator("svg.chart polyline").count() >= 5  # requests, 4xx, 5xx, p99, sockets
    figures = page.get_by_role("region", name="Traffic in the last hour")
    expected = await pool.fetchval("SELECT sum(requests) FROM node_samples")
    assert await figures.locator('[data-figure="requests"]').inner_text() == str(expected)
    assert (await figures.locator('[data-figure="p99_ms"]').inner_text()).endswith(" ms")
    assert "MiB" in await page.get_by_role("region", name="Storage").inner_text()
    queue = page.get_by_role("region", name="Federation delivery queue (2 hosts)")
    row = queue.locator("tr", has_text="mastodon.example")
    assert "down" in await row.inner_text() and "120 min" in await row.inner_text()
    await shoot(page, "admin-status")

    await row.get_by_role("button", name="Retry mastodon.example now").click()
    await page.wait_for_url("**done=*")
    assert "4 deliveries to mastodon.example made due now" in await page.get_by_role("status").inner_text()
    # The node's delivery worker was woken and may already hold (or have tried) the down host's probe: every
    # delivery is due now, leased, or attempted again; none waits out its hour any more.
    assert await pool.fetchval(
        """SELECT count(*) FROM deliveries WHERE host = 'mastodon.example'
             AND (next_attempt_at <= now() + interval '5 minutes' OR attempts > 6)""") == 4
    await queue.locator("tr", has_text="lemmy.example").get_by_role("button", name="Skip lemmy.example's deliveries").click()
    await page.wait_for_url("**done=*lemmy*")
    assert "1 deliveries to lemmy.example given up" in await page.get_by_role("status").inner_text()
    assert await pool.fetchval("SELECT failed_at IS NOT NULL FROM deliveries WHERE host = 'lemmy.example'")
    assert [r["action"] for r in await pool.fetch("SELECT action FROM audit_log WHERE action LIKE 'federation.%' ORDER BY id")] \
        == ["federation.retry", "federation.skip"]
    await shoot(page, "admin-status-after-skip")
    w.assert_clean()

    phone = await open_page(viewport={"width": 390, "height": 844}, dark=True)
    await _login(phone.page, node, "root@example.org", PASSWORD)
    await phone.page.goto(node.url("/admin/status"))
    await shoot(phone.page, "admin-status-phone-dark")
    phone.assert_clean()
