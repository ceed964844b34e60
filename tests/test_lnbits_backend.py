"""LNbitsBackend against a real LNbits (FakeWallet) on loopback; transport faults against an in-process server."""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from aiohttp import web

from lnbits_support import NETWORK, LNbitsServer, LNbitsWallet, free_port
from node.adapters.lightning import invoice
from node.adapters.lightning.base import BackendUnavailable, UnknownInvoice
from node.adapters.lightning.lnbits import LNbitsBackend
from node.platform.errors import Unprocessable

CLN_FIXTURES = Path(__file__).parent / "fixtures" / "cln"


@pytest.fixture
def wallet(lnbits: LNbitsServer, request: pytest.FixtureRequest) -> LNbitsWallet:
    """A fresh LNbits wallet for the node's side of one test (balances don't leak between tests)."""
    return lnbits.create_wallet(f"node-{request.node.name[:40]}")


@pytest.fixture
async def backend(lnbits: LNbitsServer, wallet: LNbitsWallet) -> AsyncIterator[LNbitsBackend]:
    b = LNbitsBackend(lnbits.url, wallet.admin_key)
    yield b
    await b.close()


async def test_harness_wallets_and_topup(lnbits: LNbitsServer) -> None:
    assert lnbits.node is not None and lnbits.external is not None
    before = lnbits.balance_msat(lnbits.external)
    lnbits.topup(lnbits.external, 7)
    assert lnbits.balance_msat(lnbits.external) == before + 7_000


async def test_created_invoice_decodes_to_the_amount_and_hash(backend: LNbitsBackend) -> None:
    created = await backend.create_invoice(21_000, "reef deposit", 600)

    decoded = invoice.decode(created.bolt11, network=NETWORK)  # FakeWallet's invoices are lnbc…
    assert created.bolt11.startswith("lnbc")
    assert decoded.amount_msat == 21_000
    assert decoded.payment_hash == created.payment_hash
    assert decoded.description == "reef deposit"
    assert created.expires_at == decoded.expires_at
    assert abs(created.expires_at - (datetime.now(timezone.utc) + timedelta(seconds=600))) < timedelta(seconds=30)
    status = await backend.invoice_status(created.payment_hash)
    assert status.state == "pending" and status.amount_msat is None


async def test_invoice_paid_by_the_external_wallet_reads_paid(lnbits: LNbitsServer, backend: LNbitsBackend) -> None:
    created = await backend.create_invoice(34_000, "tip jar", 600)
    lnbits.topup(lnbits.external, 100)

    paid = lnbits.pay(lnbits.external, created.bolt11)

    assert paid["status"] == "success"
    status = await backend.invoice_status(created.payment_hash)
    assert status.state == "paid"
    assert status.amount_msat == 34_000
    assert status.paid_at is not None and status.paid_at.tzinfo is not None
    assert abs(status.paid_at - datetime.now(timezone.utc)) < timedelta(seconds=60)


async def test_expired_invoice_reads_expired(backend: LNbitsBackend) -> None:
    created = await backend.create_invoice(1_000, "short", 1)
    await asyncio.sleep(2.1)
    assert (await backend.invoice_status(created.payment_hash)).state == "expired"


async def test_pay_an_external_invoice(lnbits: LNbitsServer, wallet: LNbitsWallet, backend: LNbitsBackend) -> None:
    lnbits.topup(wallet, 500)
    ext_before = lnbits.balance_msat(lnbits.external)
    bolt11 = lnbits.make_invoice(lnbits.external, 120, "withdrawal")["bolt11"]
    payment_hash = invoice.decode(bolt11).payment_hash

    outcome = await backend.pay_invoice(bolt11, max_fee_msat=5_000)

    assert outcome.state == "succeeded", outcome
    assert outcome.fee_msat == 0  # another wallet of the same LNbits: settled internally
    assert outcome.preimage and hashlib.sha256(bytes.fromhex(outcome.preimage)).hexdigest() == payment_hash
    assert lnbits.balance_msat(lnbits.external) == ext_before + 120_000
    assert lnbits.balance_msat(wallet) == 380_000
    status = await backend.payment_status(payment_hash)
    assert status.state == "succeeded" and status.preimage == outcome.preimage


async def test_pay_with_insufficient_funds_fails_with_a_reason(lnbits: LNbitsServer, wallet: LNbitsWallet,
                                                                backend: LNbitsBackend) -> None:
    lnbits.topup(wallet, 10)
    bolt11 = lnbits.make_invoice(lnbits.external, 50, "too much")["bolt11"]

    outcome = await backend.pay_invoice(bolt11, max_fee_msat=1_000)

    assert outcome.state == "failed"
    assert "insufficient balance" in outcome.reason.lower()
    assert lnbits.balance_msat(wallet) == 10_000
    assert (await backend.payment_status(invoice.decode(bolt11).payment_hash)).state == "unknown"


async def test_paying_the_same_invoice_twice(lnbits: LNbitsServer, wallet: LNbitsWallet, backend: LNbitsBackend) -> None:
    lnbits.topup(wallet, 300)
    bolt11 = lnbits.make_invoice(lnbits.external, 100, "once")["bolt11"]

    first = await backend.pay_invoice(bolt11, max_fee_msat=1_000)
    second = await backend.pay_invoice(bolt11, max_fee_msat=1_000)

    assert first.state == "succeeded"
    # LNbits refuses the second payment of an internal invoice outright; nothing moves twice.
    assert second.state == "failed" and "already paid" in second.reason.lower()
    assert lnbits.balance_msat(wallet) == 200_000
    assert (await backend.payment_status(invoice.decode(bolt11).payment_hash)).state == "succeeded"


async def test_an_invoice_fakewallet_cannot_pay_fails(lnbits: LNbitsServer, wallet: LNbitsWallet,
                                                      backend: LNbitsBackend) -> None:
    lnbits.topup(wallet, 50_000)
    foreign = json.loads((CLN_FIXTURES / "invoice_b.json").read_text())
    bolt11 = foreign.get("result", foreign)["bolt11"]  # a real CLN's regtest invoice of 21,000 sat, long expired

    outcome = await backend.pay_invoice(bolt11, max_fee_msat=10_000)

    # LNbits checks neither the network nor the expiry (Reef must, with invoice.decode, before paying): it
    # hands the invoice to FakeWallet, which pays only invoices it made, and keeps a failed record.
    assert outcome.state == "failed" and "only internal invoices" in outcome.reason.lower(), outcome
    assert lnbits.balance_msat(wallet) == 50_000_000
    assert (await backend.payment_status(invoice.decode(bolt11).payment_hash)).state == "failed"


async def test_payment_status_of_an_unknown_hash(backend: LNbitsBackend) -> None:
    assert (await backend.payment_status("ab" * 32)).state == "unknown"
    with pytest.raises(UnknownInvoice):
        await backend.invoice_status("ab" * 32)


async def test_another_wallets_payment_is_not_ours(lnbits: LNbitsServer, backend: LNbitsBackend) -> None:
    other = lnbits.make_invoice(lnbits.external, 5, "theirs")
    assert (await backend.payment_status(other["payment_hash"])).state == "unknown"
    with pytest.raises(UnknownInvoice):
        await backend.invoice_status(other["payment_hash"])


async def test_amounts_that_are_not_whole_sats_are_refused(backend: LNbitsBackend) -> None:
    with pytest.raises(Unprocessable) as err:
        await backend.create_invoice(1_500, "half a sat too much", 600)
    assert err.value.status == 422 and "1000" in err.value.hint
    for bad in (0, -1000):
        with pytest.raises(Unprocessable):
            await backend.create_invoice(bad, "", 600)


async def test_a_wrong_url_is_backend_unavailable() -> None:
    b = LNbitsBackend(f"http://127.0.0.1:{free_port()}", "secretadminkey0123456789", timeout=3)
    try:
        for call in (b.create_invoice(1_000, "x", 60), b.invoice_status("ab" * 32), b.payment_status("ab" * 32)):
            with pytest.raises(BackendUnavailable) as err:
                await call
            assert err.value.status == 503
            assert "lnbits_url" in err.value.hint
            assert "secretadminkey" not in err.value.error + err.value.hint
        bolt11 = json.loads((CLN_FIXTURES / "invoice_b.json").read_text())
        with pytest.raises(BackendUnavailable):  # nothing was sent: nothing can have moved
            await b.pay_invoice(bolt11.get("result", bolt11)["bolt11"], 1_000)
    finally:
        await b.close()


async def test_a_bad_key_is_backend_unavailable(lnbits: LNbitsServer, wallet: LNbitsWallet) -> None:
    created = await LNbitsBackend(lnbits.url, wallet.admin_key).create_invoice(1_000, "x", 60)
    b = LNbitsBackend(lnbits.url, "0" * 32)
    try:
        with pytest.raises(BackendUnavailable) as err:
            await b.create_invoice(1_000, "x", 60)
        assert "lnbits_admin_key" in err.value.hint and "0" * 32 not in err.value.error
        with pytest.raises(BackendUnavailable):
            await b.invoice_status(created.payment_hash)
        with pytest.raises(BackendUnavailable):
            await b.payment_status(created.payment_hash)
        with pytest.raises(BackendUnavailable):
            await b.pay_invoice(created.bolt11, 1_000)
    finally:
        await b.close()


async def test_an_invoice_key_cannot_pay(lnbits: LNbitsServer, wallet: LNbitsWallet) -> None:
    lnbits.topup(wallet, 100)
    bolt11 = lnbits.make_invoice(lnbits.external, 10)["bolt11"]
    b = LNbitsBackend(lnbits.url, wallet.invoice_key)
    try:
        with pytest.raises(BackendUnavailable) as err:
            await b.pay_invoice(bolt11, 1_000)
        assert "admin key" in err.value.hint
    finally:
        await b.close()
    assert lnbits.balance_msat(wallet) == 100_000


async def test_a_stopped_lnbits_is_backend_unavailable(tmp_path: Path) -> None:
    from lnbits_support import lnbits_python

    server = LNbitsServer(lnbits_python(), workdir=tmp_path)
    server.start()
    server.setup()
    assert server.node is not None
    b = LNbitsBackend(server.url, server.node.admin_key, timeout=3)
    try:
        await b.create_invoice(1_000, "while up", 60)
        server.stop()
        with pytest.raises(BackendUnavailable):
            await b.create_invoice(1_000, "while down", 60)
    finally:
        await b.close()
        server.cleanup()


async def test_the_key_never_reaches_the_log(lnbits: LNbitsServer, wallet: LNbitsWallet, backend: LNbitsBackend,
                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    lnbits.topup(wallet, 100)
    created = await backend.create_invoice(2_000, "log", 60)
    await backend.invoice_status(created.payment_hash)
    await backend.pay_invoice(lnbits.make_invoice(lnbits.external, 5)["bolt11"], 1_000)
    down = LNbitsBackend(f"http://127.0.0.1:{free_port()}", wallet.admin_key)
    with pytest.raises(BackendUnavailable) as err:
        await down.payment_status("ab" * 32)
    await down.close()
    assert wallet.admin_key not in str(err.value) + err.value.hint
    assert caplog.records
    assert wallet.admin_key not in caplog.text and wallet.admin_key not in repr(backend)


# --- transport faults: an in-process server that misbehaves the way a broken LNbits or proxy would ---------------

async def _fake_lnbits(aiohttp_server: Any, handler: Any) -> str:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


async def test_garbled_and_5xx_answers_are_backend_unavailable(aiohttp_server: Any) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            return web.Response(status=201, text="<html>proxy page</html>")
        return web.Response(status=502, text="bad gateway")

    b = LNbitsBackend(await _fake_lnbits(aiohttp_server, handler), "k" * 32)
    try:
        with pytest.raises(BackendUnavailable) as err:
            await b.create_invoice(1_000, "x", 60)
        assert "not JSON" in err.value.error
        with pytest.raises(BackendUnavailable):
            await b.invoice_status("ab" * 32)
    finally:
        await b.close()


async def test_a_payment_without_an_answer_is_pending_not_failed(aiohttp_server: Any, lnbits: LNbitsServer) -> None:
    """The request went out but no answer came back: the money may be moving, so the caller must not refund."""
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            await asyncio.sleep(5)
            return web.json_response({})
        return web.json_response({"detail": "Payment does not exist."}, status=404)

    bolt11 = lnbits.make_invoice(lnbits.external, 10)["bolt11"]
    b = LNbitsBackend(await _fake_lnbits(aiohttp_server, handler), "k" * 32, timeout=0.5)
    try:
        outcome = await b.pay_invoice(bolt11, 1_000)
    finally:
        await b.close()
    assert outcome.state == "pending" and "payment_status" in outcome.reason


async def test_a_shared_session_stays_open_and_long_memos_are_refused(lnbits: LNbitsServer, wallet: LNbitsWallet) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        b = LNbitsBackend(lnbits.url, wallet.admin_key, session=session)
        created = await b.create_invoice(3_000, "shared", 60)
        await b.close()
        assert not session.closed  # the app's session belongs to the app
        assert (await LNbitsBackend(lnbits.url, wallet.admin_key, session=session).invoice_status(
            created.payment_hash)).state == "pending"
        with pytest.raises(Unprocessable) as err:
            await b.create_invoice(1_000, "m" * 641, 60)
        assert "640" in err.value.hint
