"""Bounties over HTTP: escrow, award (one comment, or split), cancel, expiry refunded by the job, the list and
the post JSON, and the refusals that move nothing."""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from node.platform.appkeys import CONFIG, POOL
from node.services import bounties as bounties_service
from tests.factories import auth, create_agent
from tests.payments_support import assert_ledger_sound, balance, fees, fund, ledger_count, make_comment, make_post


async def call(client, method: str, url: str, status: int = 200, **kw: Any) -> dict[str, Any]:
    resp = await client.request(method, url, **kw)
    body = await resp.json()
    assert resp.status == status, body
    return body


def later(**kw: float) -> str:
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(**kw)).isoformat()


@pytest.fixture
async def node(aiohttp_client, make_config):
    from node.app import create_app

    return await aiohttp_client(create_app(make_config(payments={"payments_per_minute": 0})))


@pytest.fixture
async def scene(node):
    pool, cfg = node.server.app[POOL], node.server.app[CONFIG].payments
    asker, asker_key = await create_agent(pool, "asker")
    a, _ = await create_agent(pool, "answerer_a")
    b, _ = await create_agent(pool, "answerer_b")
    await fund(pool, cfg, asker, 10_000)
    post_id = await make_post(pool, asker)
    return {"pool": pool, "asker": asker, "key": auth(asker_key), "a": a, "b": b, "post": post_id,
            "ca": await make_comment(pool, a, post_id, "Answer A"), "cb": await make_comment(pool, b, post_id, "B")}


async def test_bounty_escrow_then_award_to_one_comment(node, scene):
    pool, key = scene["pool"], scene["key"]
    made = await call(node, "POST", f"/api/v1/posts/{scene['post']}/bounty", 201,
                      json={"amount_sat": 3333, "expires_at": later(days=1)}, headers=key)
    bounty = made["bounty"]
    assert bounty["status"] == "open" and bounty["amount_msat"] == 3_333_000 and bounty["poster"] == "asker"
    assert await balance(pool, scene["asker"]) == 10_000_000 - 3_333_000
    post = await call(node, "GET", f"/api/v1/posts/{scene['post']}")
    assert [b["id"] for b in post["post"]["bounties"]] == [bounty["id"]]
    page = await (await node.get(f"/posts/{scene['post']}")).text()
    assert "Bounties" in page and "3333 sat</span> open, offered by asker" in page

    done = await call(node, "POST", f"/api/v1/bounties/{bounty['id']}/award", json={"comment_id": str(scene["ca"])},
                      headers=key)
    assert done["bounty"]["status"] == "awarded" and done["bounty"]["awarded_msat"] == 3_333_000
    assert [(w["agent"], w["payee_msat"], w["fee_msat"]) for w in done["bounty"]["awards"]] == [
        ("answerer_a", 3_299_670, 33_330)]
    assert await balance(pool, scene["a"]) == 3_299_670 and await fees(pool) == 33_330
    page = await (await node.get(f"/posts/{scene['post']}")).text()
    assert "awarded, offered by asker" in page and "3299 sat to answerer_a" in page
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT balance_msat FROM ledger_accounts WHERE bounty_id = $1",
                                   uuid.UUID(bounty["id"])) == 0
    before = await ledger_count(pool)
    await call(node, "POST", f"/api/v1/bounties/{bounty['id']}/award", 409, json={"comment_id": str(scene["cb"])},
               headers=key)
    await call(node, "POST", f"/api/v1/bounties/{bounty['id']}/cancel", 409, headers=key)
    assert await ledger_count(pool) == before
    await assert_ledger_sound(pool)


async def test_bounty_split_among_comments_returns_the_rest(node, scene):
    pool, key = scene["pool"], scene["key"]
    bounty = (await call(node, "POST", f"/api/v1/posts/{scene['post']}/bounty", 201,
                         json={"amount_sat": 1000, "expires_at": later(hours=2)}, headers=key))["bounty"]
    done = await call(node, "POST", f"/api/v1/bounties/{bounty['id']}/award", headers=key, json={"awards": [
        {"comment_id": str(scene["ca"]), "amount_sat": 601}, {"comment_id": str(scene["cb"]), "amount_sat": 299}]})
    assert done["bounty"]["awarded_msat"] == 900_000
    assert await balance(pool, scene["a"]) == 601_000 - 6010
    assert await balance(pool, scene["b"]) == 299_000 - 2990
    assert await fees(pool) == 6010 + 2990
    assert await balance(pool, scene["asker"]) == 10_000_000 - 900_000  # the 100 sat not awarded came back
    await assert_ledger_sound(pool)


async def test_bounty_cancel_refunds_and_expiry_job_refunds(node, scene):
    pool, key = scene["pool"], scene["key"]
    one = (await call(node, "POST", f"/api/v1/posts/{scene['post']}/bounty", 201,
                      json={"amount_sat": 500, "expires_at": later(days=1)}, headers=key))["bounty"]
    two = (await call(node, "POST", f"/api/v1/posts/{scene['post']}/bounty", 201,
                      json={"amount_sat": 700, "expires_at": later(seconds=30)}, headers=key))["bounty"]
    assert await balance(pool, scene["asker"]) == 10_000_000 - 1_200_000
    _, other_key = await create_agent(pool, "stranger")
    await call(node, "POST", f"/api/v1/bounties/{one['id']}/cancel", 403, headers=auth(other_key))
    cancelled = await call(node, "POST", f"/api/v1/bounties/{one['id']}/cancel", headers=key)
    assert cancelled["bounty"]["status"] == "cancelled"
    assert await balance(pool, scene["asker"]) == 10_000_000 - 700_000

    assert await bounties_service.refund_expired(pool) == 0  # not yet expired
    future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)
    assert await bounties_service.refund_expired(pool, now=future) == 1
    assert await bounties_service.refund_expired(pool, now=future) == 0  # the job again: nothing more
    assert await balance(pool, scene["asker"]) == 10_000_000 and await fees(pool) == 0
    refunded = await call(node, "GET", "/api/v1/bounties?status=refunded")
    assert [b["id"] for b in refunded["bounties"]] == [two["id"]]

    pages, cursor = [], None
    while True:
        page = await call(node, "GET", "/api/v1/bounties?limit=1" + (f"&cursor={cursor}" if cursor else ""))
        pages += [b["id"] for b in page["bounties"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == [two["id"], one["id"]]
    assert (await call(node, "GET", "/api/v1/bounties?status=open"))["bounties"] == []
    await call(node, "GET", "/api/v1/bounties?status=bogus", 400)
    await assert_ledger_sound(pool)


async def test_bounty_refusals_move_nothing(node, scene):
    pool, key = scene["pool"], scene["key"]
    other_post = await make_post(pool, scene["a"])
    elsewhere = await make_comment(pool, scene["b"], other_post, "elsewhere")
    mine = await make_comment(pool, scene["asker"], scene["post"], "my own")
    bounty = (await call(node, "POST", f"/api/v1/posts/{scene['post']}/bounty", 201,
                         json={"amount_sat": 100, "expires_at": later(days=1)}, headers=key))["bounty"]
    before, wallet = await ledger_count(pool), await balance(pool, scene["asker"])
    url = f"/api/v1/bounties/{bounty['id']}/award"
    cases = [
        (url, {"comment_id": str(uuid.uuid4())}, 404),
        (url, {"comment_id": "not-a-uuid"}, 404),
        (url, {"comment_id": str(elsewhere)}, 422),
        (url, {"comment_id": str(mine)}, 422),
        (url, {"awards": [{"comment_id": str(scene["ca"]), "amount_sat": 101}]}, 422),
        (url, {"awards": [{"comment_id": str(scene["ca"]), "amount_sat": 60},
                          {"comment_id": str(scene["cb"]), "amount_sat": 41}]}, 422),
        (url, {"awards": []}, 400),
        (url, {"awards": [{"comment_id": str(scene["ca"]), "amount_sat": 0}]}, 422),
        (f"/api/v1/bounties/{uuid.uuid4()}/award", {"comment_id": str(scene["ca"])}, 404),
        (f"/api/v1/posts/{scene['post']}/bounty", {"amount_sat": 100_000, "expires_at": later(days=1)}, 402),
        (f"/api/v1/posts/{scene['post']}/bounty", {"amount_sat": 10, "expires_at": later(days=-1)}, 422),
        (f"/api/v1/posts/{scene['post']}/bounty", {"amount_sat": 10, "expires_at": "tomorrow"}, 422),
        (f"/api/v1/posts/{scene['post']}/bounty", {"amount_sat": 10, "expires_at": "2030-01-01T00:00:00"}, 422),
        (f"/api/v1/posts/{scene['post']}/bounty", {"amount_sat": 0, "expires_at": later(days=1)}, 422),
        (f"/api/v1/posts/{uuid.uuid4()}/bounty", {"amount_sat": 10, "expires_at": later(days=1)}, 404),
    ]
    for path, body, status in cases:
        answer = await call(node, "POST", path, status, json=body, headers=key)
        assert answer["hint"] or status in (403,), (body, answer)
    _, stranger_key = await create_agent(pool, "stranger")
    await call(node, "POST", url, 403, json={"comment_id": str(scene["ca"])}, headers=auth(stranger_key))
    assert await ledger_count(pool) == before and await balance(pool, scene["asker"]) == wallet
    await assert_ledger_sound(pool)
