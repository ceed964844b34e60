"""Owners and their agents' wallets over HTTP: the dashboard shows balance, history and an SVG chart; the owner
sets a daily spending limit (CSRF form), and approves or rejects a payment over it; another owner cannot."""
from __future__ import annotations

import datetime as dt
import re

import pytest
from web_support import NO_WAIT_LIMITS, claim, csrf_from, register

from node.app import create_app
from node.platform.appkeys import CONFIG, POOL
from node.stores import agents as agents_store
from tests.factories import auth
from tests.payments_support import assert_ledger_sound, balance, fund, ledger_count, make_post
from web.owner_wallet import balance_series
from node.stores.spending import DayDelta


@pytest.fixture
async def site(aiohttp_client, make_config):
    return await aiohttp_client(create_app(make_config(limits=NO_WAIT_LIMITS, claims={"verify_proof": False},
                                                       payments={"payments_per_minute": 0})))


async def _agent(site, name: str):
    async with site.server.app[POOL].acquire() as conn:
        return await agents_store.get_agent_by_handle(conn, name)


def test_balance_series_walks_back_from_todays_balance():
    today = dt.date(2026, 12, 8)
    days, values = balance_series(7000, [DayDelta(dt.date(2026, 12, 6), 5000), DayDelta(today, 2000)], today, days=4)
    assert days == [dt.date(2026, 12, 5), dt.date(2026, 12, 6), dt.date(2026, 12, 7), today]
    assert values == [0.0, 5.0, 5.0, 7.0]


async def test_dashboard_shows_the_wallet_and_the_owner_controls_spending(site):
    mine = await register(site, "spender")
    payee = await register(site, "earner")
    await claim(site, mine, "wallet@example.org")
    pool, cfg = site.server.app[POOL], site.server.app[CONFIG].payments
    agent, other = await _agent(site, "spender"), await _agent(site, "earner")
    await fund(pool, cfg, agent, 5000)
    post_id = await make_post(pool, other)
    tipped = await site.post(f"/api/v1/posts/{post_id}/tip", json={"amount_sat": 100}, headers=auth(mine["api_key"]))
    assert tipped.status == 200

    page = await site.get("/dashboard/agents/spender")
    html = await page.text()
    assert page.status == 200 and "4,900 sat" in html and "No limit" in html
    assert re.search(r'<svg class="chart"[^>]*aria-label="Balance \(sat\): 4900 on ', html)
    assert "<polyline" in html and ">tip<" in html and ">deposit<" in html and "-100.000" in html

    # The limit: without the CSRF token refused; with it saved.
    assert (await site.post("/dashboard/agents/spender/spending-limit", data={"daily_limit_sat": "150"})).status == 403
    token = csrf_from(html)
    saved = await site.post("/dashboard/agents/spender/spending-limit",
                            data={"csrf_token": token, "daily_limit_sat": "150"}, allow_redirects=False)
    assert saved.status == 303 and saved.headers["Location"] == "/dashboard/agents/spender?limit=1#wallet"
    bad = await site.post("/dashboard/agents/spender/spending-limit", data={"csrf_token": token, "daily_limit_sat": "-3"})
    assert bad.status == 422

    # 100 spent + 100 > 150: the tip waits; the owner sees it and approves it; it pays once.
    waiting = await site.post(f"/api/v1/posts/{post_id}/tip", json={"amount_sat": 100}, headers=auth(mine["api_key"]))
    body = await waiting.json()
    assert waiting.status == 202 and body["status"] == "awaiting_approval"
    html = await (await site.get("/dashboard/agents/spender")).text()
    assert "150 sat per 24 hours; 100 sat spent" in html and "Approve and pay" in html
    action = f"/dashboard/agents/spender/approvals/{body['approval_id']}/approve"
    assert action in html
    txs = await ledger_count(pool)
    done = await site.post(action, data={"csrf_token": token}, allow_redirects=False)
    assert done.status == 303 and "paid=1" in done.headers["Location"]
    assert await balance(pool, agent) == 4_800_000 and await ledger_count(pool) == txs + 1
    again = await site.post(action, data={"csrf_token": token})
    assert again.status == 409 and await balance(pool, agent) == 4_800_000

    # A second one, rejected: nothing moves.
    second = await (await site.post(f"/api/v1/posts/{post_id}/tip", json={"amount_sat": 100},
                                    headers=auth(mine["api_key"]))).json()
    rejected = await site.post(f"/dashboard/agents/spender/approvals/{second['approval_id']}/reject",
                               data={"csrf_token": token}, allow_redirects=False)
    assert rejected.status == 303 and "declined=1" in rejected.headers["Location"]
    assert await balance(pool, agent) == 4_800_000
    listed = await (await site.get("/api/v1/wallet/approvals", headers=auth(mine["api_key"]))).json()
    assert [a["status"] for a in listed["approvals"]] == ["rejected", "approved"]

    # Another owner sees neither the page nor can decide.
    third = await (await site.post(f"/api/v1/posts/{post_id}/tip", json={"amount_sat": 100},
                                   headers=auth(mine["api_key"]))).json()
    site.session.cookie_jar.clear()
    await claim(site, payee, "someone@example.org")
    assert (await site.get("/dashboard/agents/spender")).status == 404
    other_token = csrf_from(await (await site.get("/dashboard")).text())
    for path in (f"/dashboard/agents/spender/approvals/{third['approval_id']}/approve",
                 f"/dashboard/agents/earner/approvals/{third['approval_id']}/approve",
                 "/dashboard/agents/spender/spending-limit"):
        assert (await site.post(path, data={"csrf_token": other_token, "daily_limit_sat": "0"})).status == 404, path
    assert await balance(pool, agent) == 4_800_000
    await assert_ledger_sound(pool)


async def test_history_pages(site):
    mine = await register(site, "pager")
    await claim(site, mine, "pager@example.org")
    pool, cfg = site.server.app[POOL], site.server.app[CONFIG].payments
    agent = await _agent(site, "pager")
    for _ in range(22):
        await fund(pool, cfg, agent, 1)
    html = await (await site.get("/dashboard/agents/pager")).text()
    assert html.count(">deposit<") == 20 and "Older transactions" in html
    link = re.search(r'href="(/dashboard/agents/pager\?tx=[^"#]+)#wallet"', html)
    assert link
    older = await (await site.get(link.group(1).replace("&amp;", "&"))).text()
    assert older.count(">deposit<") == 2 and "Older transactions" not in older
