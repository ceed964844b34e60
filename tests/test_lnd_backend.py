"""LndBackend against an in-process aiohttp server that answers in lnd's REST shapes (LND API reference:
/v1/invoices, /v1/invoice/{r_hash_str}, /v2/router/send, /v2/router/track/{payment_hash}), macaroon and TLS."""
from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import ipaddress
import json
import secrets
import ssl
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from aiohttp import web
from bolt11 import Bolt11, MilliSatoshi, TagChar, Tags, encode

from lnbits_support import free_port
from node.adapters.lightning import invoice
from node.adapters.lightning.base import BackendUnavailable, UnknownInvoice
from node.adapters.lightning.lnd import LndBackend
from node.platform.errors import Unprocessable


def make_bolt11(amount_msat: int, memo: str = "", expiry: int = 3600, key: str | None = None) -> tuple[str, str, str]:
    """A signed regtest invoice: (bolt11, payment_hash, preimage)."""
    preimage = secrets.token_bytes(32)
    payment_hash = hashlib.sha256(preimage).hexdigest()
    tags = Tags()
    tags.add(TagChar.description, memo)
    tags.add(TagChar.expire_time, expiry)
    tags.add(TagChar.payment_secret, secrets.token_hex(32))
    tags.add(TagChar.payment_hash, payment_hash)
    inv = Bolt11(currency="bcrt", amount_msat=MilliSatoshi(amount_msat), date=int(time.time()), tags=tags)
    return encode(inv, key or secrets.token_hex(32)), payment_hash, preimage.hex()


def grpc_error(code: int, message: str, http: int = 500) -> web.Response:
    """A unary error as lnd's REST proxy writes it."""
    return web.json_response({"code": code, "message": message, "details": []}, status=http)


def stream(*items: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(i).encode() + b"\n" for i in items)


class FakeLnd:
    """lnd's REST gateway, in memory: invoices it made, payments it sent (by hex hash)."""

    def __init__(self, macaroon: bytes) -> None:
        self.macaroon_hex = macaroon.hex()
        self.node_key = secrets.token_hex(32)
        self.invoices: dict[str, dict[str, Any]] = {}
        self.payments: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self.send: Callable[[dict[str, Any]], Any] = self._send_ok

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._macaroon])
        app.router.add_post("/v1/invoices", self._add_invoice)
        app.router.add_get("/v1/invoice/{r_hash_str}", self._lookup_invoice)
        app.router.add_post("/v2/router/send", self._send)
        app.router.add_get("/v2/router/track/{payment_hash}", self._track)
        return app

    @web.middleware
    async def _macaroon(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.headers.get("Grpc-Metadata-macaroon") != self.macaroon_hex:
            return grpc_error(2, "verification failed: signature mismatch after caveat verification")
        body = await request.json() if request.can_read_body else None
        self.requests.append((request.method, request.path_qs, body))
        return await handler(request)

    async def _add_invoice(self, request: web.Request) -> web.Response:
        body = await request.json()
        bolt11, h, preimage = make_bolt11(int(body["value_msat"]), body.get("memo", ""), int(body["expiry"]), self.node_key)
        self.invoices[h] = {
            "memo": body.get("memo", ""), "r_preimage": base64.b64encode(bytes.fromhex(preimage)).decode(),
            "r_hash": base64.b64encode(bytes.fromhex(h)).decode(), "value_msat": body["value_msat"],
            "creation_date": str(int(time.time())), "expiry": body["expiry"], "payment_request": bolt11,
            "state": "OPEN", "amt_paid_msat": "0", "settle_date": "0", "add_index": str(len(self.invoices) + 1),
        }
        return web.json_response({"r_hash": self.invoices[h]["r_hash"], "payment_request": bolt11,
                                  "add_index": self.invoices[h]["add_index"], "payment_addr": base64.b64encode(b"\0" * 32).decode()})

    async def _lookup_invoice(self, request: web.Request) -> web.Response:
        inv = self.invoices.get(request.match_info["r_hash_str"])
        if inv is None:
            return grpc_error(2, "unable to locate invoice")
        return web.json_response(inv)

    def _send_ok(self, body: dict[str, Any]) -> Any:
        decoded = invoice.decode(body["payment_request"])
        payment = {"payment_hash": decoded.payment_hash, "value_msat": str(decoded.amount_msat), "fee_msat": "12",
                   "payment_preimage": "11" * 32, "status": "SUCCEEDED", "failure_reason": "FAILURE_REASON_NONE"}
        self.payments[decoded.payment_hash] = payment
        return stream({"result": payment})

    async def _send(self, request: web.Request) -> web.StreamResponse:
        answer = self.send(await request.json())
        if asyncio.iscoroutine(answer):
            answer = await answer
        if isinstance(answer, web.StreamResponse):
            return answer
        return web.Response(body=answer, content_type="application/json")

    async def _track(self, request: web.Request) -> web.Response:
        h = base64.urlsafe_b64decode(request.match_info["payment_hash"]).hex()
        payment = self.payments.get(h)
        if payment is None:
            return web.Response(body=stream({"error": {"code": 5, "message": "payment isn't initiated", "details": []}}),
                                content_type="application/json")
        return web.Response(body=stream({"result": payment}), content_type="application/json")


@pytest.fixture
def macaroon(tmp_path: Path) -> Path:
    path = tmp_path / "admin.macaroon"
    path.write_bytes(secrets.token_bytes(64))
    return path


@pytest.fixture
def fake(macaroon: Path) -> FakeLnd:
    return FakeLnd(macaroon.read_bytes())


@pytest.fixture
async def lnd(aiohttp_server: Any, fake: FakeLnd, macaroon: Path) -> Any:
    server = await aiohttp_server(fake.app())
    backend = LndBackend(str(server.make_url("")), str(macaroon), timeout=2, pay_timeout_seconds=1)
    yield backend
    await backend.close()


async def test_create_invoice(lnd: LndBackend, fake: FakeLnd) -> None:
    created = await lnd.create_invoice(21_000_500, "bounty", 600)

    method, path, body = fake.requests[-1]
    assert (method, path) == ("POST", "/v1/invoices")
    assert body == {"value_msat": "21000500", "memo": "bounty", "expiry": "600"}  # int64 as JSON strings
    decoded = invoice.decode(created.bolt11, network="regtest")
    assert decoded.amount_msat == 21_000_500 and decoded.payment_hash == created.payment_hash
    assert created.payment_hash in fake.invoices and created.expires_at == decoded.expires_at
    with pytest.raises(Unprocessable):
        await lnd.create_invoice(-5, "", 600)


async def test_invoice_states(lnd: LndBackend, fake: FakeLnd) -> None:
    created = await lnd.create_invoice(5_000, "", 600)
    assert (await lnd.invoice_status(created.payment_hash)).state == "pending"
    assert fake.requests[-1][1] == f"/v1/invoice/{created.payment_hash}"

    fake.invoices[created.payment_hash].update(state="SETTLED", amt_paid_msat="5000", settle_date="1795638858")
    paid = await lnd.invoice_status(created.payment_hash)
    assert paid.state == "paid" and paid.amount_msat == 5_000
    assert paid.paid_at == dt.datetime.fromtimestamp(1795638858, dt.timezone.utc)

    fake.invoices[created.payment_hash].update(state="CANCELED")
    assert (await lnd.invoice_status(created.payment_hash)).state == "expired"
    fake.invoices[created.payment_hash].update(state="OPEN", creation_date=str(int(time.time()) - 700))
    assert (await lnd.invoice_status(created.payment_hash)).state == "expired"
    with pytest.raises(UnknownInvoice):
        await lnd.invoice_status("cd" * 32)


async def test_pay_succeeds_with_fee_and_preimage(lnd: LndBackend, fake: FakeLnd) -> None:
    bolt11, h, _ = make_bolt11(30_000)

    outcome = await lnd.pay_invoice(bolt11, max_fee_msat=300)

    assert outcome.state == "succeeded" and outcome.fee_msat == 12 and outcome.preimage == "11" * 32
    method, path, body = fake.requests[-1]
    assert (method, path) == ("POST", "/v2/router/send")
    assert body["payment_request"] == bolt11 and body["fee_limit_msat"] == "300" and body["no_inflight_updates"] is True
    status = await lnd.payment_status(h)
    assert status.state == "succeeded"
    assert fake.requests[-1][1].startswith(f"/v2/router/track/{base64.urlsafe_b64encode(bytes.fromhex(h)).decode()}")


async def test_pay_failed_result(lnd: LndBackend, fake: FakeLnd) -> None:
    bolt11, h, _ = make_bolt11(30_000)
    failed = {"payment_hash": h, "value_msat": "30000", "fee_msat": "0", "payment_preimage": "",
              "status": "FAILED", "failure_reason": "FAILURE_REASON_NO_ROUTE"}
    fake.send = lambda body: stream({"result": dict(failed, status="IN_FLIGHT")}, {"result": failed})
    outcome = await lnd.pay_invoice(bolt11, 100)
    assert outcome.state == "failed" and outcome.reason == "FAILURE_REASON_NO_ROUTE"


async def test_pre_dispatch_errors_fail(lnd: LndBackend, fake: FakeLnd) -> None:
    bolt11, _, _ = make_bolt11(1_000, expiry=1)
    fake.send = lambda body: grpc_error(3, "invoice expired. Valid until 2026-01-01", http=400)
    outcome = await lnd.pay_invoice(bolt11, 100)
    assert outcome.state == "failed" and "invoice expired" in outcome.reason


async def test_already_paid_reads_the_tracked_payment(lnd: LndBackend, fake: FakeLnd) -> None:
    bolt11, h, _ = make_bolt11(2_000)
    fake.payments[h] = {"payment_hash": h, "value_msat": "2000", "fee_msat": "1", "payment_preimage": "22" * 32,
                        "status": "SUCCEEDED", "failure_reason": "FAILURE_REASON_NONE"}
    fake.send = lambda body: grpc_error(6, "invoice is already paid")
    outcome = await lnd.pay_invoice(bolt11, 100)
    assert outcome.state == "succeeded" and outcome.preimage == "22" * 32


async def test_a_pay_without_an_answer_stays_pending(lnd: LndBackend, fake: FakeLnd) -> None:
    bolt11, h, _ = make_bolt11(2_000)

    async def slow(body: dict[str, Any]) -> bytes:
        await asyncio.sleep(5)
        return b""

    fake.send = slow
    outcome = await lnd.pay_invoice(bolt11, 100)  # the pay call times out after 1 + 2 s
    assert outcome.state == "pending" and "payment_status" in outcome.reason
    fake.payments[h] = {"payment_hash": h, "status": "IN_FLIGHT", "fee_msat": "0"}
    assert (await lnd.payment_status(h)).state == "pending"


async def test_payment_status_unknown(lnd: LndBackend) -> None:
    assert (await lnd.payment_status("ef" * 32)).state == "unknown"


async def test_a_wrong_macaroon_is_backend_unavailable(aiohttp_server: Any, fake: FakeLnd, tmp_path: Path) -> None:
    server = await aiohttp_server(fake.app())
    wrong = tmp_path / "wrong.macaroon"
    wrong.write_bytes(b"not it")
    b = LndBackend(str(server.make_url("")), str(wrong), timeout=2)
    try:
        bolt11, h, _ = make_bolt11(1_000)
        for call in (b.create_invoice(1_000, "", 60), b.invoice_status(h), b.payment_status(h), b.pay_invoice(bolt11, 1)):
            with pytest.raises(BackendUnavailable) as err:
                await call
            assert "lnd_macaroon_path" in err.value.hint and wrong.read_bytes().hex() not in str(err.value)
    finally:
        await b.close()
    with pytest.raises(ValueError):
        LndBackend("https://127.0.0.1:8080", str(tmp_path / "missing.macaroon"))


async def test_unreachable_and_garbled(aiohttp_server: Any, macaroon: Path) -> None:
    b = LndBackend(f"http://127.0.0.1:{free_port()}", str(macaroon), timeout=2)
    bolt11, h, _ = make_bolt11(1_000)
    try:
        for call in (b.create_invoice(1_000, "", 60), b.invoice_status(h), b.pay_invoice(bolt11, 1)):
            with pytest.raises(BackendUnavailable) as err:
                await call
            assert "lnd_rest_url" in err.value.hint
    finally:
        await b.close()

    async def garbage(request: web.Request) -> web.Response:
        return web.Response(text="<html>gateway</html>", status=200)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", garbage)
    server = await aiohttp_server(app)
    b = LndBackend(str(server.make_url("")), str(macaroon), timeout=2)
    try:
        with pytest.raises(BackendUnavailable):
            await b.create_invoice(1_000, "", 60)
        with pytest.raises(BackendUnavailable):
            await b.payment_status(h)
    finally:
        await b.close()


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lnd test")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "tls.cert", tmp_path / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def test_tls_with_lnds_own_certificate(aiohttp_server: Any, fake: FakeLnd, macaroon: Path, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    server = await aiohttp_server(fake.app(), ssl=ctx)
    url = str(server.make_url(""))
    assert url.startswith("https://127.0.0.1:")

    trusting = LndBackend(url, str(macaroon), str(cert), timeout=2)
    untrusting = LndBackend(url, str(macaroon), timeout=2)  # the system's CAs do not know lnd's certificate
    try:
        created = await trusting.create_invoice(1_000, "tls", 60)
        assert (await trusting.invoice_status(created.payment_hash)).state == "pending"
        with pytest.raises(BackendUnavailable):
            await untrusting.invoice_status(created.payment_hash)
    finally:
        await trusting.close()
        await untrusting.close()
