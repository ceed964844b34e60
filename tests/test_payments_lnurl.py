"""Lightning Addresses between two Reef nodes on loopback, each with its own LNbits wallet (one real LNbits,
FakeWallet): name@host resolves through LNURL-pay (LUD-06/16) and the payee's node credits the payment."""
from __future__ import annotations

import secrets
from typing import Any

from lnbits_support import NETWORK, LNbitsServer, free_port
from node.platform.appkeys import CONFIG, LIGHTNING, POOL
from node.platform.config import build_config
from node.services import wallet as wallet_service
from tests.factories import auth, create_agent
from tests.payments_support import assert_ledger_sound, balance, fund


async def _node(aiohttp_server, aiohttp_client, database_url: str, tmp_path, lnbits: LNbitsServer, admin_key: str):
    from federation.workers import RUN_WORKERS
    from node.app import create_app

    port = free_port()
    cfg = build_config({
        "node": {"data_dir": str(tmp_path / f"data-{port}"), "domain": f"127.0.0.1:{port}"},
        "database": {"url": database_url}, "log": {"format": "json"},
        "federation": {"allow_private_addresses": True},
        "payments": {"backend": "lnbits", "lnbits_url": lnbits.url, "lnbits_admin_key": admin_key,
                     "network": NETWORK, "payments_per_minute": 0, "deposit_poll_seconds": 3600.0},
    }, env={})
    app = create_app(cfg)
    app[RUN_WORKERS] = False
    server = await aiohttp_server(app, host="127.0.0.1", port=port)
    return await aiohttp_client(server), f"127.0.0.1:{port}"


async def call(client, method: str, url: str, status: int = 200, **kw: Any) -> dict[str, Any]:
    resp = await client.request(method, url, **kw)
    body = await resp.json()
    assert resp.status == status, body
    return body


async def test_pay_a_lightning_address_on_another_reef_node(aiohttp_server, aiohttp_client, database_url,
                                                            other_database_url, tmp_path, lnbits: LNbitsServer):
    wallet_a = lnbits.create_wallet(f"a-{secrets.token_hex(3)}")
    wallet_b = lnbits.create_wallet(f"b-{secrets.token_hex(3)}")
    a, host_a = await _node(aiohttp_server, aiohttp_client, database_url, tmp_path, lnbits, wallet_a.admin_key)
    b, host_b = await _node(aiohttp_server, aiohttp_client, other_database_url, tmp_path, lnbits, wallet_b.admin_key)
    pool_a, pool_b = a.server.app[POOL], b.server.app[POOL]
    cfg_a = a.server.app[CONFIG].payments
    alice, alice_key = await create_agent(pool_a, "alice")
    carol, _ = await create_agent(pool_a, "carol")
    bob, _ = await create_agent(pool_b, "bob")
    await fund(pool_a, cfg_a, alice, 2000)
    lnbits.topup(wallet_a, 2000)  # what alice's deposit brought into node A's LNbits wallet

    params = await call(b, "GET", "/.well-known/lnurlp/bob")
    assert params["tag"] == "payRequest" and params["callback"] == f"http://{host_b}/lnurlp/bob/callback"
    assert params["minSendable"] == 1000 and '"bob@' + host_b in params["metadata"]
    assert (await call(b, "GET", "/.well-known/lnurlp/nobody", 404))["status"] == "ERROR"
    assert (await call(b, "GET", "/lnurlp/bob/callback?amount=1500", 400))["status"] == "ERROR"

    paid = await call(a, "POST", "/api/v1/payments/pay", json={"to": f"bob@{host_b}", "amount_sat": 300},
                      headers={**auth(alice_key), "Idempotency-Key": "to-bob"})
    assert paid["payment"]["kind"] == "lightning" and paid["payment"]["state"] == "succeeded", paid
    fee = paid["payment"]["fee_msat"]
    assert await balance(pool_a, alice) == 2_000_000 - 300_000 - fee
    assert await wallet_service.check_pending_invoices(pool_b, b.server.app[CONFIG].payments,
                                                       b.server.app[LIGHTNING]) == 1
    assert await balance(pool_b, bob) == 297_000  # node B's platform fee: 1 %

    # An address of this very node settles internally; an unknown one is a 502 that moves nothing.
    local = await call(a, "POST", "/api/v1/payments/pay", json={"to": f"carol@{host_a}", "amount_sat": 100},
                       headers=auth(alice_key))
    assert local["payment"]["kind"] == "internal" and await balance(pool_a, carol) == 99_000
    before = await balance(pool_a, alice)
    missing = await call(a, "POST", "/api/v1/payments/pay", 502, json={"to": f"nobody@{host_b}", "amount_sat": 1},
                         headers=auth(alice_key))
    assert "nobody@" in missing["error"] and missing["hint"]
    assert await balance(pool_a, alice) == before
    await assert_ledger_sound(pool_a)
    await assert_ledger_sound(pool_b)
