"""ClnBackend against a unix-socket JSON-RPC server that answers with responses recorded from a real Core
Lightning (v26.06, regtest; tests/fixtures/cln). No lightningd runs here: the fixtures carry its shapes."""
from __future__ import annotations

import asyncio
import copy
import json
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest

from node.adapters.lightning import invoice
from node.adapters.lightning.base import BackendUnavailable, UnknownInvoice
from node.adapters.lightning.cln import ClnBackend
from node.platform.errors import Unprocessable

FIXTURES = Path(__file__).parent / "fixtures" / "cln"


def recorded(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


INVOICE = recorded("invoice_b")
LISTED = recorded("listinvoices_b")["invoices"][0]
PAID = recorded("pay_a")
WAITED = recorded("waitanyinvoice_b")
HASH = INVOICE["payment_hash"]
BOLT11 = INVOICE["bolt11"]


def listpays_of(pay: dict[str, Any]) -> dict[str, Any]:
    """listpays' entry for a pay: the same fields, with 'preimage' for 'payment_preimage' (lightning-listpays(7))."""
    entry = {k: v for k, v in pay.items() if k not in ("payment_preimage", "parts")}
    entry.update({"bolt11": BOLT11, "preimage": pay["payment_preimage"], "number_of_parts": pay.get("parts", 1)})
    return entry


Handler = Callable[[dict[str, Any]], Any]


class FakeLightningd:
    """A unix socket that speaks lightningd's JSON-RPC: each method answers through a handler (a result dict,
    or {"error": {...}}), defaults from the recorded fixtures. Answers end with a blank line, as CLN's do."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.invoices: list[dict[str, Any]] = []  # what listinvoices holds
        self.pays: list[dict[str, Any]] = []  # what listpays holds
        self.handlers: dict[str, Handler] = {
            "invoice": lambda p: dict(INVOICE),
            "listinvoices": lambda p: {"invoices": [i for i in self.invoices if i["payment_hash"] == p.get("payment_hash")]},
            "pay": self._pay,
            "listpays": lambda p: {"pays": [x for x in self.pays if x["payment_hash"] == p.get("payment_hash")]},
            "waitanyinvoice": lambda p: dict(WAITED),
        }
        self.chunked = False  # send answers a few bytes at a time, after a notification
        self.server: asyncio.AbstractServer | None = None

    def _pay(self, params: dict[str, Any]) -> Any:
        self.pays.append(listpays_of(PAID))
        return dict(PAID)

    async def start(self) -> None:
        self.server = await asyncio.start_unix_server(self._serve, path=str(self.path))

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = json.JSONDecoder()
        buf = ""
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                buf += chunk.decode()
                try:
                    request, end = decoder.raw_decode(buf.lstrip())
                except json.JSONDecodeError:
                    continue
                buf = ""
                await self._answer(request, writer)
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            writer.close()

    async def _answer(self, request: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        method, params = request["method"], request.get("params") or {}
        self.calls.append((method, params))
        result = self.handlers[method](params)
        if result is DROP:
            writer.close()
            return
        if isinstance(result, (bytes, str)):
            writer.write(result.encode() if isinstance(result, str) else result)
            await writer.drain()
            return
        if isinstance(result, dict) and "error" in result:
            body = {"jsonrpc": "2.0", "id": request["id"], "error": result["error"]}
        else:
            body = {"jsonrpc": "2.0", "id": request["id"], "result": result}
        data = json.dumps(body).encode() + b"\n\n"
        if self.chunked:
            note = {"jsonrpc": "2.0", "method": "message", "params": {"id": request["id"], "level": "info", "message": "é"}}
            data = json.dumps(note, ensure_ascii=False).encode() + b"\n\n" + data
            for i in range(0, len(data), 7):
                writer.write(data[i:i + 7])
                await writer.drain()
                await asyncio.sleep(0)
        else:
            writer.write(data)
            await writer.drain()


DROP = object()  # a handler's answer: close the connection without a word


def rpc_error(code: int, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


@pytest.fixture
async def lightningd() -> AsyncIterator[FakeLightningd]:
    # a short path: unix socket paths are limited to ~107 bytes
    with tempfile.TemporaryDirectory(prefix="cln-") as tmp:
        fake = FakeLightningd(Path(tmp) / "lightning-rpc")
        await fake.start()
        yield fake
        await fake.stop()


@pytest.fixture
def cln(lightningd: FakeLightningd) -> ClnBackend:
    return ClnBackend(str(lightningd.path), timeout=2, pay_timeout=2)


async def test_create_invoice_sends_msat_and_reads_the_answer(cln: ClnBackend, lightningd: FakeLightningd) -> None:
    created = await cln.create_invoice(21_000_000, "bounty #42 payout", 3600)

    method, params = lightningd.calls[-1]
    assert method == "invoice"
    assert params["amount_msat"] == 21_000_000 and params["description"] == "bounty #42 payout"
    assert params["expiry"] == 3600 and params["label"].startswith("reef-")
    assert created.payment_hash == HASH and created.bolt11 == BOLT11
    assert created.expires_at == datetime.fromtimestamp(INVOICE["expires_at"], timezone.utc)
    decoded = invoice.decode(created.bolt11, network="regtest")
    assert decoded.payment_hash == HASH and decoded.amount_msat == 21_000_000


async def test_invoice_labels_are_unique(cln: ClnBackend, lightningd: FakeLightningd) -> None:
    await cln.create_invoice(1_500, "", 60)  # CLN takes msat precision: no whole-sat rule here
    await cln.create_invoice(1_500, "", 60)
    assert lightningd.calls[0][1]["label"] != lightningd.calls[1][1]["label"]
    with pytest.raises(Unprocessable):
        await cln.create_invoice(0, "", 60)


async def test_invoice_status_paid_unpaid_expired_unknown(cln: ClnBackend, lightningd: FakeLightningd) -> None:
    lightningd.invoices = [dict(LISTED)]
    paid = await cln.invoice_status(HASH)
    assert paid.state == "paid" and paid.amount_msat == 21_000_000
    assert paid.paid_at == datetime.fromtimestamp(LISTED["paid_at"], timezone.utc)
    assert lightningd.calls[-1] == ("listinvoices", {"payment_hash": HASH})

    unpaid = {k: v for k, v in LISTED.items() if k not in ("pay_index", "amount_received_msat", "paid_at", "payment_preimage")}
    lightningd.invoices = [dict(unpaid, status="unpaid", expires_at=int(datetime.now().timestamp()) + 600)]
    assert (await cln.invoice_status(HASH)).state == "pending"
    lightningd.invoices = [dict(unpaid, status="unpaid")]  # recorded expiry is in the past; CLN not yet marked it
    assert (await cln.invoice_status(HASH)).state == "expired"
    lightningd.invoices = [dict(unpaid, status="expired")]
    assert (await cln.invoice_status(HASH)).state == "expired"

    lightningd.invoices = []
    with pytest.raises(UnknownInvoice):
        await cln.invoice_status(HASH)


async def test_old_msat_strings_are_read(cln: ClnBackend, lightningd: FakeLightningd) -> None:
    lightningd.invoices = [dict(LISTED, amount_msat="21000000msat", amount_received_msat="21000123msat")]
    assert (await cln.invoice_status(HASH)).amount_msat == 21_000_123


async def test_pay_complete(cln: ClnBackend, lightningd: FakeLightningd) -> None:
    outcome = await cln.pay_invoice(BOLT11, max_fee_msat=5_000)

    assert lightningd.calls[-1] == ("pay", {"bolt11": BOLT11, "maxfee": 5_000})
    assert outcome.state == "succeeded" and outcome.fee_msat == 0
    assert outcome.preimage == PAID["payment_preimage"]
    status = await cln.payment_status(HASH)
    assert status.state == "succeeded" and status.preimage == PAID["payment_preimage"]


async def test_pay_reports_the_routing_fee(cln: ClnBackend, lightningd: FakeLightningd) -> None:
    lightningd.handlers["pay"] = lambda p: dict(PAID, amount_sent_msat=21_000_420)
    assert (await cln.pay_invoice(BOLT11, 1_000)).fee_msat == 420


@pytest.mark.parametrize("code,message", [(205, "Could not find a route"), (207, "Invoice expired"),
                                          (206, "Route too expensive"), (-1, "something else")])
async def test_pay_errors_without_a_record_fail(cln: ClnBackend, lightningd: FakeLightningd, code: int,
                                                message: str) -> None:
    lightningd.handlers["pay"] = lambda p: rpc_error(code, message)

    outcome = await cln.pay_invoice(BOLT11, 1_000)

    assert outcome.state == "failed" and message in outcome.reason and str(code) in outcome.reason
    assert lightningd.calls[-1] == ("listpays", {"payment_hash": HASH})


async def test_pay_error_while_a_part_is_in_flight_is_pending(cln: ClnBackend, lightningd: FakeLightningd) -> None:
    def pay(p: dict[str, Any]) -> Any:
        lightningd.pays.append(dict(listpays_of(PAID), status="pending"))
        return rpc_error(-1, "timed out waiting")

    lightningd.handlers["pay"] = pay
    assert (await cln.pay_invoice(BOLT11, 1_000)).state == "pending"


async def test_already_paid_reads_the_earlier_success(cln: ClnBackend, lightningd: FakeLightningd) -> None:
    lightningd.pays.append(listpays_of(PAID))
    lightningd.handlers["pay"] = lambda p: rpc_error(201, "Already paid with this hash using different amount")
    outcome = await cln.pay_invoice(BOLT11, 1_000)
    assert outcome.state == "succeeded" and outcome.preimage == PAID["payment_preimage"]


async def test_a_dropped_pay_is_looked_up_then_pending(cln: ClnBackend, lightningd: FakeLightningd) -> None:
    lightningd.handlers["pay"] = lambda p: DROP
    outcome = await cln.pay_invoice(BOLT11, 1_000)
    assert outcome.state == "pending" and "payment_status" in outcome.reason

    def pay_then_drop(p: dict[str, Any]) -> Any:
        lightningd.pays.append(listpays_of(PAID))
        return DROP

    lightningd.handlers["pay"] = pay_then_drop
    assert (await cln.pay_invoice(BOLT11, 1_000)).state == "succeeded"


async def test_payment_status_unknown_and_failed(cln: ClnBackend, lightningd: FakeLightningd) -> None:
    assert (await cln.payment_status("ab" * 32)).state == "unknown"
    lightningd.pays.append(dict(listpays_of(PAID), status="failed"))
    assert (await cln.payment_status(HASH)).state == "failed"
    lightningd.pays.append(listpays_of(PAID))  # a later attempt succeeded: that is what counts
    assert (await cln.payment_status(HASH)).state == "succeeded"


async def test_wait_any_invoice(cln: ClnBackend, lightningd: FakeLightningd) -> None:
    paid = await cln.wait_any_invoice(0, 5)
    assert paid is not None and paid.pay_index == 1 and paid.payment_hash == HASH
    assert paid.amount_msat == 21_000_000 and paid.label == "bounty-42"
    assert lightningd.calls[-1] == ("waitanyinvoice", {"lastpay_index": 0, "timeout": 5})
    lightningd.handlers["waitanyinvoice"] = lambda p: rpc_error(904, "Timed out")
    assert await cln.wait_any_invoice(1, 1) is None


async def test_answers_in_pieces_after_a_notification(cln: ClnBackend, lightningd: FakeLightningd) -> None:
    lightningd.chunked = True
    lightningd.invoices = [dict(LISTED)]
    assert (await cln.invoice_status(HASH)).state == "paid"
    assert (await cln.create_invoice(1_000, "é", 60)).payment_hash == HASH


async def test_no_socket_is_backend_unavailable(tmp_path: Path) -> None:
    cln = ClnBackend(str(tmp_path / "no-such-socket"), timeout=1)
    for call in (cln.create_invoice(1_000, "", 60), cln.invoice_status(HASH), cln.payment_status(HASH),
                 cln.pay_invoice(BOLT11, 1_000)):
        with pytest.raises(BackendUnavailable) as err:
            await call
        assert err.value.status == 503 and "cln_rpc_path" in err.value.hint


async def test_garbled_and_silent_answers_are_backend_unavailable(cln: ClnBackend, lightningd: FakeLightningd) -> None:
    lightningd.handlers["listinvoices"] = lambda p: "<html>not lightningd</html>\n\n"
    with pytest.raises(BackendUnavailable):
        await cln.invoice_status(HASH)
    lightningd.handlers["listinvoices"] = lambda p: {"no": "invoices"}
    with pytest.raises(BackendUnavailable):
        await cln.invoice_status(HASH)
    lightningd.handlers["listpays"] = lambda p: DROP
    with pytest.raises(BackendUnavailable):
        await cln.payment_status(HASH)
    lightningd.handlers["invoice"] = lambda p: rpc_error(900, "Duplicate label")
    with pytest.raises(BackendUnavailable):
        await cln.create_invoice(1_000, "", 60)


async def test_a_silent_lightningd_times_out(lightningd: FakeLightningd) -> None:
    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(10)

    await lightningd.stop()
    server = await asyncio.start_unix_server(never, path=str(lightningd.path))
    try:
        cln = ClnBackend(str(lightningd.path), timeout=0.3, pay_timeout=0.3)
        with pytest.raises(BackendUnavailable):
            await cln.payment_status(HASH)
        outcome = await cln.pay_invoice(BOLT11, 1_000)  # sent, unanswered, and nothing to look it up in
        assert outcome.state == "pending"
    finally:
        server.close()
    assert copy.deepcopy(PAID) == recorded("pay_a")  # the shared fixtures were not changed by any test
