"""Deposits and withdrawals of a Reef node whose [payments] backend is a real LNbits (FakeWallet) on loopback:
a deposit paid from another LNbits wallet is credited once (also by a second node instance), a withdrawal to
another wallet's invoice moves amount + fee, a failed one refunds everything."""
from __future__ import annotations

from typing import Any

import pytest

from lnbits_support import NETWORK, LNbitsServer, LNbitsWallet
from node.platform.appkeys import CONFIG, LIGHTNING, POOL
from node.services import payments as payments_service
from node.services import wallet as wallet_service
from tests.factories import auth, create_agent
from tests.payments_support import assert_ledger_sound, balance, foreign_invoice


async def call(client, method: str, url: str, status: int = 200, **kw: Any) -> dict[str, Any]:
    resp = await client.request(method, url, **kw)
    body = await resp.json()
    assert resp.status == status, body
    return body


@pytest.fixture
def node_wallet(lnbits: LNbitsServer, request: pytest.FixtureRequest) -> LNbitsWallet:
    return lnbits.create_wallet(f"reef-{request.node.name[:40]}")


@pytest.fixture
def lnbits_config(make_config, lnbits: LNbitsServer, node_wallet: LNbitsWallet):
    def make() -> Any:
        return make_config(payments={
            "backend": "lnbits", "lnbits_url": lnbits.url, "lnbits_admin_key": node_wallet.admin_key,
            "network": NETWORK, "payments_per_minute": 0, "deposit_poll_seconds": 3600.0,
        })
    return make


async def _deposit(client, lnbits: LNbitsServer, key: str, sat: int) -> str:
    made = await call(client, "POST", "/api/v1/wallet/deposit", 201, json={"amount_sat": sat, "memo": "top up"},
                      headers={**auth(key), "Idempotency-Key": f"dep-{sat}"})
    assert made["deposit"]["internal"] is False and made["deposit"]["bolt11"].startswith("lnbc")
    lnbits.topup(lnbits.external, sat)
    paid = lnbits.pay(lnbits.external, made["deposit"]["bolt11"])
    assert paid.get("status") in (None, "success") or paid.get("payment_hash")
    return made["deposit"]["payment_hash"]


async def test_a_deposit_paid_over_lightning_is_credited_once(aiohttp_client, lnbits_config, lnbits, node_wallet):
    from node.app import create_app

    client = await aiohttp_client(create_app(lnbits_config()))
    pool, cfg, backend = client.server.app[POOL], client.server.app[CONFIG].payments, client.server.app[LIGHTNING]
    assert backend.name == "lnbits"
    agent, key = await create_agent(pool, "saver")
    before = lnbits.balance_msat(node_wallet)
    await _deposit(client, lnbits, key, 250)
    assert lnbits.balance_msat(node_wallet) == before + 250_000

    assert await wallet_service.check_pending_invoices(pool, cfg, backend) == 1
    assert await wallet_service.check_pending_invoices(pool, cfg, backend) == 0
    # A restarted node (a new app on the same database) finds nothing left to credit.
    again = await aiohttp_client(create_app(lnbits_config()))
    assert await wallet_service.check_pending_invoices(again.server.app[POOL], cfg, again.server.app[LIGHTNING]) == 0
    wallet = await call(client, "GET", "/api/v1/wallet", headers=auth(key))
    assert wallet["wallet"]["balance_msat"] == 250_000 and wallet["wallet"]["pending"]["deposits_msat"] == 0
    notes = await call(client, "GET", "/api/v1/notifications", headers=auth(key))
    assert [n["payment_type"] for n in notes["notifications"] if n["type"] == "payment"] == ["deposit"]
    await assert_ledger_sound(pool)


async def test_withdraw_to_another_lnbits_wallet_and_a_failed_one_refunds(aiohttp_client, lnbits_config, lnbits,
                                                                          node_wallet):
    from node.app import create_app

    client = await aiohttp_client(create_app(lnbits_config()))
    pool, cfg, backend = client.server.app[POOL], client.server.app[CONFIG].payments, client.server.app[LIGHTNING]
    agent, key = await create_agent(pool, "spender")
    await _deposit(client, lnbits, key, 1000)
    assert await wallet_service.check_pending_invoices(pool, cfg, backend) == 1

    ext_before = lnbits.balance_msat(lnbits.external)
    invoice = lnbits.make_invoice(lnbits.external, 300, "withdrawal")
    out = await call(client, "POST", "/api/v1/wallet/withdraw", json={"bolt11": invoice["bolt11"]},
                     headers={**auth(key), "Idempotency-Key": "w-1"})
    assert out["payment"]["state"] == "succeeded", out
    fee = out["payment"]["fee_msat"]
    assert fee is not None and 0 <= fee <= out["payment"]["max_fee_msat"]
    assert await balance(pool, agent) == 1_000_000 - 300_000 - fee == out["balance_msat"]
    assert lnbits.balance_msat(lnbits.external) == ext_before + 300_000
    # The same request again (same key): the first answer, nothing paid twice.
    replay = await call(client, "POST", "/api/v1/wallet/withdraw", json={"bolt11": invoice["bolt11"]},
                        headers={**auth(key), "Idempotency-Key": "w-1"})
    assert replay == out and lnbits.balance_msat(lnbits.external) == ext_before + 300_000

    # An invoice FakeWallet cannot pay (not one of this LNbits'): failed, everything refunded.
    failed = await call(client, "POST", "/api/v1/wallet/withdraw", json={"bolt11": foreign_invoice(200_000)},
                        headers=auth(key))
    assert failed["payment"]["state"] == "failed" and failed["payment"]["reason"]
    assert await balance(pool, agent) == 1_000_000 - 300_000 - fee
    # The reconciler after a "restart" has nothing open to finish, and asks for nothing to be paid.
    assert await payments_service.reconcile_withdrawals(pool, cfg, backend, older_than_seconds=0) == 0
    await assert_ledger_sound(pool)


async def test_an_agent_invoice_from_lnbits_is_paid_by_an_outsider_or_internally(aiohttp_client, lnbits_config,
                                                                                 lnbits):
    from node.app import create_app

    client = await aiohttp_client(create_app(lnbits_config()))
    pool, cfg, backend = client.server.app[POOL], client.server.app[CONFIG].payments, client.server.app[LIGHTNING]
    payee, payee_key = await create_agent(pool, "payee")
    payer, payer_key = await create_agent(pool, "payer")
    await _deposit(client, lnbits, payer_key, 500)
    await wallet_service.check_pending_invoices(pool, cfg, backend)

    outside = await call(client, "POST", "/api/v1/agents/payee/invoice", 201, json={"amount_sat": 100},
                         headers=auth(payee_key))
    assert outside["invoice"]["internal"] is False
    lnbits.topup(lnbits.external, 100)
    lnbits.pay(lnbits.external, outside["invoice"]["bolt11"])
    assert await wallet_service.check_pending_invoices(pool, cfg, backend) == 1
    assert await balance(pool, payee) == 99_000  # the platform fee applies to payments to an agent

    inside = await call(client, "POST", "/api/v1/agents/payee/invoice", 201, json={"amount_sat": 200},
                        headers=auth(payer_key))
    paid = await call(client, "POST", "/api/v1/payments/pay", json={"bolt11": inside["invoice"]["bolt11"]},
                      headers=auth(payer_key))
    assert paid["payment"]["kind"] == "internal" and paid["payment"]["payee_msat"] == 198_000
    assert await balance(pool, payee) == 99_000 + 198_000 and await balance(pool, payer) == 300_000
    assert await wallet_service.check_pending_invoices(pool, cfg, backend) == 0  # settled: not credited again
    await assert_ledger_sound(pool)


async def test_an_invoice_paid_inside_and_then_outside_credits_the_second_payment_once(aiohttp_client, lnbits_config,
                                                                                      lnbits):
    """The same bolt11 paid by an agent here (settled internally) and then by someone outside at the backend:
    the outside money reached the node's LNbits wallet, so the payee gets it as a second payment, once."""
    from node.app import create_app

    client = await aiohttp_client(create_app(lnbits_config()))
    pool, cfg, backend = client.server.app[POOL], client.server.app[CONFIG].payments, client.server.app[LIGHTNING]
    payee, payee_key = await create_agent(pool, "payee")
    payer, payer_key = await create_agent(pool, "payer")
    await _deposit(client, lnbits, payer_key, 500)
    assert await wallet_service.check_pending_invoices(pool, cfg, backend) == 1

    made = await call(client, "POST", "/api/v1/agents/payee/invoice", 201, json={"amount_sat": 200},
                      headers=auth(payee_key))
    assert made["invoice"]["internal"] is False
    await call(client, "POST", "/api/v1/payments/pay", json={"bolt11": made["invoice"]["bolt11"]},
               headers=auth(payer_key))
    assert await balance(pool, payee) == 198_000 and await balance(pool, payer) == 300_000
    assert await wallet_service.check_pending_invoices(pool, cfg, backend) == 0  # nobody outside paid yet

    lnbits.topup(lnbits.external, 200)
    lnbits.pay(lnbits.external, made["invoice"]["bolt11"])
    assert await wallet_service.check_pending_invoices(pool, cfg, backend) == 1
    assert await balance(pool, payee) == 2 * 198_000 and await balance(pool, payer) == 300_000
    assert await wallet_service.check_pending_invoices(pool, cfg, backend) == 0  # once
    again = await aiohttp_client(create_app(lnbits_config()))  # a second node process sees it credited too
    assert await wallet_service.check_pending_invoices(again.server.app[POOL], cfg, again.server.app[LIGHTNING]) == 0
    assert await balance(pool, payee) == 2 * 198_000
    history = await call(client, "GET", "/api/v1/wallet/transactions", headers=auth(payee_key))
    items = history.get("transactions") or history.get("items") or []
    assert sum(1 for t in items if t.get("kind") == "invoice") == 2, history
    await assert_ledger_sound(pool)
