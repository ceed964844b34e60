"""Owners' daily spending limits with real PostgreSQL: under the limit pays at once, over it waits (202) and moves
nothing, approving pays exactly once, rejecting moves nothing, concurrent payments cannot all slip under the
limit, and the ledger stays sound after each."""
from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest

from node.platform.appkeys import CONFIG, POOL
from node.platform.errors import Conflict, NotFound
from node.services import approvals, payments, spending
from node.services.spending import OverLimit
from tests.factories import auth, create_agent
from tests.test_payments import call, node  # noqa: F401 - node is a fixture
from tests.payments_support import (
    ScriptedBackend, assert_ledger_sound, balance, fees, foreign_invoice, fund, ledger_count, make_post,
)

OWNER = "account:test-owner"


async def _scene(node, limit_sat: int | None, funds: int = 10_000):
    pool, cfg = node.server.app[POOL], node.server.app[CONFIG].payments
    payer, key = await create_agent(pool, f"payer_{uuid.uuid4().hex[:6]}")
    payee, payee_key = await create_agent(pool, f"payee_{uuid.uuid4().hex[:6]}")
    await fund(pool, cfg, payer, funds)
    if limit_sat is not None:
        assert await spending.set_limit(pool, payer.id, str(limit_sat), OWNER) == limit_sat * 1000
    return pool, cfg, payer, key, payee, payee_key


async def _invoice(node, payee_name: str, key: str, sat: int) -> str:
    made = await call(node, "POST", f"/api/v1/agents/{payee_name}/invoice", 201, json={"amount_sat": sat},
                      headers=auth(key))
    return made["invoice"]["bolt11"]


async def test_under_the_limit_pays_at_once_over_it_waits_and_approval_pays_once(node):
    pool, cfg, payer, key, payee, payee_key = await _scene(node, 1000)
    first = await _invoice(node, payee.name, payee_key, 600)
    paid = await call(node, "POST", "/api/v1/payments/pay", json={"bolt11": first}, headers=auth(key))
    assert paid["payment"]["state"] == "succeeded" and await balance(pool, payer) == 9_400_000

    # 600 + 600 > 1000 sat in 24 h: nothing moves, the answer is 202 awaiting_approval.
    second = await _invoice(node, payee.name, payee_key, 600)
    txs, fee_before = await ledger_count(pool), await fees(pool)
    waiting = await call(node, "POST", "/api/v1/payments/pay", 202, json={"bolt11": second},
                         headers={**auth(key), "Idempotency-Key": "over-1"})
    assert waiting["status"] == "awaiting_approval" and waiting["hint"]
    assert await ledger_count(pool) == txs and await balance(pool, payer) == 9_400_000
    assert await balance(pool, payee) == 594_000
    # A repeat with the key replays the 202: still one approval.
    again = await call(node, "POST", "/api/v1/payments/pay", 202, json={"bolt11": second},
                       headers={**auth(key), "Idempotency-Key": "over-1"})
    assert again["approval_id"] == waiting["approval_id"]
    listed = await call(node, "GET", "/api/v1/wallet/approvals", headers=auth(key))
    assert [a["id"] for a in listed["approvals"]] == [waiting["approval_id"]] and listed["daily_limit_msat"] == 1_000_000
    item = listed["approvals"][0]
    assert item["status"] == "pending" and item["kind"] == "pay" and item["request"] == {"bolt11": second}
    assert item["amount_msat"] == 600_000 and item["spent_msat"] == 600_000
    notes = await call(node, "GET", "/api/v1/notifications", headers=auth(key))
    told = [n for n in notes["notifications"] if n.get("payment_type") == "approval"]
    assert [(n["state"], n["approval_id"]) for n in told] == [("pending", waiting["approval_id"])]
    assert told[0]["content"] == "Your payment of 600 sat is over your owner's daily spending limit and waits for their approval"
    await assert_ledger_sound(pool)

    approval_id = uuid.UUID(waiting["approval_id"])
    done = await approvals.approve(pool, cfg, ScriptedBackend(), payer, approval_id, OWNER)
    assert done.status == "approved" and done.result and done.result["payment"]["state"] == "succeeded"
    assert await balance(pool, payer) == 8_800_000 and await balance(pool, payee) == 1_188_000
    assert await fees(pool) == fee_before + 6_000
    notes = await call(node, "GET", "/api/v1/notifications", headers=auth(key))
    assert "Your payment of 600 sat was approved by your owner" in [n["content"] for n in notes["notifications"]]
    with pytest.raises(Conflict):
        await approvals.approve(pool, cfg, ScriptedBackend(), payer, approval_id, OWNER)
    assert await balance(pool, payer) == 8_800_000 and await ledger_count(pool) == txs + 1
    decided = await call(node, "GET", "/api/v1/wallet/approvals?status=approved", headers=auth(key))
    assert [a["status"] for a in decided["approvals"]] == ["approved"]
    await assert_ledger_sound(pool)


async def test_two_approvals_at_once_pay_once(node):
    pool, cfg, payer, key, payee, payee_key = await _scene(node, 100)
    bolt11 = await _invoice(node, payee.name, payee_key, 500)
    waiting = await call(node, "POST", "/api/v1/payments/pay", 202, json={"bolt11": bolt11}, headers=auth(key))
    approval_id = uuid.UUID(waiting["approval_id"])
    results = await asyncio.gather(
        *[approvals.approve(pool, cfg, ScriptedBackend(), payer, approval_id, OWNER) for _ in range(5)],
        return_exceptions=True)
    assert sum(1 for r in results if not isinstance(r, Exception) and r.status == "approved") == 1
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, Exception)), results
    assert await balance(pool, payer) == 9_500_000
    await assert_ledger_sound(pool)


async def test_reject_moves_nothing_and_cannot_be_approved_after(node):
    pool, cfg, payer, key, payee, payee_key = await _scene(node, 100)
    post_id = await make_post(pool, payee)
    txs = await ledger_count(pool)
    waiting = await call(node, "POST", f"/api/v1/posts/{post_id}/tip", 202, json={"amount_sat": 200}, headers=auth(key))
    rejected = await approvals.reject(pool, payer, uuid.UUID(waiting["approval_id"]), OWNER)
    assert rejected.status == "rejected"
    with pytest.raises(Conflict):
        await approvals.approve(pool, cfg, ScriptedBackend(), payer, rejected.id, OWNER)
    with pytest.raises(Conflict):
        await approvals.reject(pool, payer, rejected.id, OWNER)
    assert await ledger_count(pool) == txs and await balance(pool, payer) == 10_000_000
    await assert_ledger_sound(pool)


async def test_tip_and_bounty_over_the_limit_run_when_approved(node):
    pool, cfg, payer, key, payee, _ = await _scene(node, 50)
    post_id = await make_post(pool, payee)
    tip = await call(node, "POST", f"/api/v1/posts/{post_id}/tip", 202, json={"amount_sat": 100}, headers=auth(key))
    later = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2)).isoformat()
    bounty = await call(node, "POST", f"/api/v1/posts/{post_id}/bounty", 202,
                        json={"amount_sat": 300, "expires_at": later}, headers=auth(key))
    assert await balance(pool, payer) == 10_000_000
    assert (await approvals.approve(pool, cfg, ScriptedBackend(), payer, uuid.UUID(tip["approval_id"]), OWNER)).status == "approved"
    assert await balance(pool, payer) == 9_900_000 and await balance(pool, payee) == 99_000
    made = await approvals.approve(pool, cfg, ScriptedBackend(), payer, uuid.UUID(bounty["approval_id"]), OWNER)
    assert made.status == "approved" and made.result["bounty"]["amount_msat"] == 300_000
    assert await balance(pool, payer) == 9_600_000
    listed = await call(node, "GET", f"/api/v1/bounties/{made.result['bounty']['id']}")
    assert listed["bounty"]["status"] == "open"
    await assert_ledger_sound(pool)


async def test_insufficient_funds_at_approval_fails_it_and_moves_nothing(node):
    pool, cfg, payer, key, payee, payee_key = await _scene(node, 100, funds=1000)
    post_id = await make_post(pool, payee)
    waiting = await call(node, "POST", f"/api/v1/posts/{post_id}/tip", 202, json={"amount_sat": 600}, headers=auth(key))
    # Meanwhile the wallet is spent (under the limit? no: the owner lifts it, and the agent pays elsewhere).
    await spending.set_limit(pool, payer.id, "", OWNER)
    await call(node, "POST", f"/api/v1/posts/{post_id}/tip", 200, json={"amount_sat": 700}, headers=auth(key))
    txs = await ledger_count(pool)
    failed = await approvals.approve(pool, cfg, ScriptedBackend(), payer, uuid.UUID(waiting["approval_id"]), OWNER)
    assert failed.status == "failed" and "300000 msat" in failed.reason
    assert await ledger_count(pool) == txs and await balance(pool, payer) == 300_000
    with pytest.raises(Conflict):
        await approvals.approve(pool, cfg, ScriptedBackend(), payer, failed.id, OWNER)
    await assert_ledger_sound(pool)


async def test_concurrent_payments_respect_the_limit(node):
    pool, cfg, payer, key, payee, _ = await _scene(node, 1000)
    post_id = await make_post(pool, payee)
    answers = await asyncio.gather(*[
        node.post(f"/api/v1/posts/{post_id}/tip", json={"amount_sat": 300}, headers=auth(key)) for _ in range(12)])
    statuses = sorted(r.status for r in answers)
    assert statuses == [200] * 3 + [202] * 9, statuses  # 3 x 300 = 900 <= 1000 < 1200
    assert await balance(pool, payer) == 10_000_000 - 900_000
    pending = await call(node, "GET", "/api/v1/wallet/approvals?status=pending&limit=100", headers=auth(key))
    assert len(pending["approvals"]) == 9
    await assert_ledger_sound(pool)


async def test_withdrawal_over_the_limit_is_sent_once_when_approved(node):
    pool, cfg, payer, key, payee, _ = await _scene(node, 100)
    backend = ScriptedBackend(cfg.network)
    bolt11 = foreign_invoice(500_000, network=cfg.network)
    with pytest.raises(OverLimit) as over:
        await payments.withdraw(pool, cfg, backend, payer, {"bolt11": bolt11})
    assert backend.pay_calls == [] and await balance(pool, payer) == 10_000_000
    status, answer = await spending.request_approval(pool, over.value)
    assert status == 202 and answer["approval"]["amount_msat"] > 500_000  # the amount and the routing-fee reserve
    done = await approvals.approve(pool, cfg, backend, payer, answer["approval_id"], OWNER)
    assert done.status == "approved" and backend.pay_calls == [bolt11]
    with pytest.raises(Conflict):
        await approvals.approve(pool, cfg, backend, payer, answer["approval_id"], OWNER)
    assert backend.pay_calls == [bolt11] and await balance(pool, payer) == 10_000_000 - 500_000 - 1500
    await assert_ledger_sound(pool)


async def test_another_agents_approval_is_not_found_and_expired_ones_cannot_run(node):
    pool, cfg, payer, key, payee, _ = await _scene(node, 10)
    post_id = await make_post(pool, payee)
    waiting = await call(node, "POST", f"/api/v1/posts/{post_id}/tip", 202, json={"amount_sat": 20}, headers=auth(key))
    approval_id = uuid.UUID(waiting["approval_id"])
    with pytest.raises(NotFound):
        await approvals.approve(pool, cfg, ScriptedBackend(), payee, approval_id, OWNER)
    with pytest.raises(NotFound):
        await approvals.reject(pool, payee, approval_id, OWNER)
    async with pool.acquire() as conn:  # 24 h pass
        await conn.execute("UPDATE spending_approvals SET expires_at = now() - interval '1 second' WHERE id = $1",
                           approval_id)
    listed = await call(node, "GET", "/api/v1/wallet/approvals", headers=auth(key))
    assert listed["approvals"][0]["status"] == "expired"
    with pytest.raises(Conflict):
        await approvals.approve(pool, cfg, ScriptedBackend(), payer, approval_id, OWNER)
    assert await balance(pool, payer) == 10_000_000
    await call(node, "GET", "/api/v1/wallet/approvals?status=nope", 400, headers=auth(key))


async def test_no_limit_and_limit_zero_mean_no_limit(node):
    pool, cfg, payer, key, payee, _ = await _scene(node, None)
    assert await spending.set_limit(pool, payer.id, "0", OWNER) is None
    post_id = await make_post(pool, payee)
    await call(node, "POST", f"/api/v1/posts/{post_id}/tip", 200, json={"amount_sat": 5000}, headers=auth(key))
    with pytest.raises(Exception) as bad:
        await spending.set_limit(pool, payer.id, "12.5", OWNER)
    assert getattr(bad.value, "status", None) == 422


async def test_the_approvals_list_pages_with_next_cursor(node):
    pool, cfg, payer, key, payee, payee_key = await _scene(node, 1)
    made = []
    for sat in (5, 6, 7):  # each over the 1-sat limit: three pending approvals
        bolt11 = await _invoice(node, payee.name, payee_key, sat)
        made.append((await call(node, "POST", "/api/v1/payments/pay", 202, json={"bolt11": bolt11},
                                headers=auth(key)))["approval_id"])
    seen, cursor = [], None
    for _ in range(5):
        params = {"limit": "1", **({"cursor": cursor} if cursor else {})}
        page = await call(node, "GET", "/api/v1/wallet/approvals", params=params, headers=auth(key))
        seen += [a["id"] for a in page["approvals"]]
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        cursor = page["next_cursor"]
    assert seen == list(reversed(made))  # newest first, each once
