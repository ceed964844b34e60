"""Withdrawals through a scripted backend: reserve, pay, refund the unused fee; failure refunds all; a crash
before or during the payment is reconciled after restart, never paid twice. (The same flows against a real
LNbits are in tests/test_payments_lnbits.py; a crash at an exact point needs a backend the test drives.)"""
from __future__ import annotations

import asyncio

import aiohttp
import pytest

from node.adapters.lightning.base import BackendUnavailable, PaymentOutcome
from node.platform.appkeys import CONFIG, LIGHTNING, POOL
from node.services import payments as payments_service
from tests.factories import auth, create_agent
from tests.payments_support import ScriptedBackend, assert_ledger_sound, balance, foreign_invoice, fund


async def _node(aiohttp_client, make_config, backend: ScriptedBackend):
    from node.app import create_app

    app = create_app(make_config(payments={"payments_per_minute": 0, "reconcile_after_seconds": 3600}))

    async def scripted(app_):
        app_[LIGHTNING] = backend  # replaces the configured "none" before the payment jobs start
        yield

    app.cleanup_ctx.insert([c.__name__ for c in app.cleanup_ctx].index("_lightning") + 1, scripted)
    return await aiohttp_client(app)


async def test_withdraw_reserves_pays_and_refunds_the_unused_fee(aiohttp_client, make_config):
    backend = ScriptedBackend()
    client = await _node(aiohttp_client, make_config, backend)
    pool, cfg = client.server.app[POOL], client.server.app[CONFIG].payments
    agent, key = await create_agent(pool, "leaver")
    await fund(pool, cfg, agent, 10_000)
    bolt11 = foreign_invoice(2_000_000)  # 2000 sat: max fee 1 % = 20 sat
    resp = await client.post("/api/v1/wallet/withdraw", json={"bolt11": bolt11}, headers=auth(key))
    body = await resp.json()
    assert resp.status == 200, body
    assert body["payment"]["state"] == "succeeded" and body["payment"]["max_fee_msat"] == 20_000
    assert body["payment"]["fee_msat"] == 1500
    assert await balance(pool, agent) == 10_000_000 - 2_000_000 - 1500 == body["balance_msat"]
    assert backend.pay_calls == [bolt11]

    again = await client.post("/api/v1/wallet/withdraw", json={"bolt11": bolt11}, headers=auth(key))
    assert again.status == 409 and backend.pay_calls == [bolt11]  # one invoice is paid at most once
    await assert_ledger_sound(pool)


async def test_a_failed_withdrawal_refunds_everything(aiohttp_client, make_config):
    backend = ScriptedBackend()
    backend.pay_result = PaymentOutcome("failed", reason="no route")
    client = await _node(aiohttp_client, make_config, backend)
    pool, cfg = client.server.app[POOL], client.server.app[CONFIG].payments
    agent, key = await create_agent(pool, "leaver")
    await fund(pool, cfg, agent, 1000)
    resp = await client.post("/api/v1/wallet/withdraw", json={"bolt11": foreign_invoice(500_000)}, headers=auth(key))
    body = await resp.json()
    assert body["payment"]["state"] == "failed" and body["payment"]["reason"] == "no route"
    assert await balance(pool, agent) == 1_000_000
    poor = await client.post("/api/v1/wallet/withdraw", json={"bolt11": foreign_invoice(995_000)}, headers=auth(key))
    assert poor.status == 402  # 995 sat + 10 sat fee floor > 1000 sat
    assert len(backend.pay_calls) == 1
    await assert_ledger_sound(pool)


async def test_a_crash_mid_payment_is_reconciled_and_never_paid_twice(aiohttp_client, make_config):
    backend = ScriptedBackend()
    backend.pay_result = BackendUnavailable("connection reset", "")  # the answer was lost: did it go?
    client = await _node(aiohttp_client, make_config, backend)
    pool, cfg = client.server.app[POOL], client.server.app[CONFIG].payments
    agent, key = await create_agent(pool, "leaver")
    await fund(pool, cfg, agent, 1000)
    sent, lost = foreign_invoice(100_000), foreign_invoice(200_000)
    for bolt11 in (sent, lost):
        resp = await client.post("/api/v1/wallet/withdraw", json={"bolt11": bolt11}, headers=auth(key))
        assert resp.status == 202 and (await resp.json())["payment"]["state"] == "in_flight"
    assert await balance(pool, agent) == 1_000_000 - 110_000 - 210_000  # both still reserved
    wallet = await (await client.get("/api/v1/wallet", headers=auth(key))).json()
    assert wallet["wallet"]["pending"]["withdrawals_msat"] == 320_000

    # A reserved row that never reached the backend (the node stopped between the two transactions).
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT id, payment_hash, bolt11 FROM payment_withdrawals ORDER BY amount_msat")
    by_bolt = {r["bolt11"]: r for r in rows}
    backend.status_result[by_bolt[sent]["payment_hash"]] = PaymentOutcome("succeeded", fee_msat=700)
    backend.status_result[by_bolt[lost]["payment_hash"]] = PaymentOutcome("unknown")

    # "Restart": a fresh reconciler pass (twice, concurrently) asks; it never pays.
    calls = len(backend.pay_calls)
    changed = await asyncio.gather(*[payments_service.reconcile_withdrawals(pool, cfg, backend, older_than_seconds=0)
                                     for _ in range(2)])
    assert sum(changed) == 2 and len(backend.pay_calls) == calls
    assert await balance(pool, agent) == 1_000_000 - 100_700
    async with pool.acquire() as conn:
        states = {r["bolt11"]: (r["state"], r["fee_msat"]) for r in await conn.fetch(
            "SELECT bolt11, state, fee_msat FROM payment_withdrawals")}
    assert states == {sent: ("succeeded", 700), lost: ("failed", None)}
    assert await payments_service.reconcile_withdrawals(pool, cfg, backend, older_than_seconds=0) == 0
    await assert_ledger_sound(pool)


async def test_a_reserved_row_left_by_a_crash_is_refunded_without_paying(aiohttp_client, make_config):
    backend = ScriptedBackend()
    client = await _node(aiohttp_client, make_config, backend)
    pool, cfg = client.server.app[POOL], client.server.app[CONFIG].payments
    agent, key = await create_agent(pool, "leaver")
    await fund(pool, cfg, agent, 1000)

    async def crash(*_args):
        raise asyncio.CancelledError  # the process dies right after the reservation committed

    original = payments_service.send_withdrawal
    payments_service.send_withdrawal = crash  # type: ignore[assignment]
    try:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await client.post("/api/v1/wallet/withdraw", json={"bolt11": foreign_invoice(300_000)}, headers=auth(key))
    finally:
        payments_service.send_withdrawal = original  # type: ignore[assignment]
    assert await balance(pool, agent) == 1_000_000 - 310_000
    assert await payments_service.reconcile_withdrawals(pool, cfg, backend, older_than_seconds=0) == 1
    assert backend.pay_calls == [] and backend.status_calls == []
    assert await balance(pool, agent) == 1_000_000
    await assert_ledger_sound(pool)
