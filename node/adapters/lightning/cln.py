"""The Core Lightning backend: JSON-RPC 2.0 over lightningd's unix socket (lightning-rpc), one connection a call.

Methods used: invoice, listinvoices, pay, listpays, waitanyinvoice. Amounts are msat integers (older CLN
wrote "123msat" strings; both are read). CLN writes each answer as one JSON object followed by blank lines,
and may interleave notifications (objects without an id), which are skipped.

An answer of CLN's, even an error, means the command has finished inside lightningd, so after a failed pay
listpays tells the truth. A pay whose connection broke or timed out may still be running in lightningd:
it is looked up, and answers "pending" if lightningd holds no record yet; BackendUnavailable only when the
socket could not be reached at all, so nothing can have moved.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ...platform.errors import Unprocessable
from .base import BackendUnavailable, CreatedInvoice, InvoiceStatus, PaymentOutcome, UnknownInvoice
from .common import after_no_answer, as_int, check_hash, check_invoice_request, hash_of, open_invoice, paid_invoice

log = logging.getLogger(__name__)

MAX_ANSWER = 16 * 1024 * 1024
PAY_FAILED_CODES = {-32602, 201, 203, 205, 206, 207, 210}  # lightning-pay(7): the payment did not and will not happen
WAIT_TIMED_OUT = 904  # waitanyinvoice: timeout reached
_ids = itertools.count(1)


class ClnRpcError(Exception):
    """CLN answered a JSON-RPC error."""

    def __init__(self, method: str, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{method}: {code} {message}")
        self.method, self.code, self.message, self.data = method, code, message, data


class _NotSent(Exception):
    """The socket could not be reached: the command never got to lightningd."""


class _NoAnswer(Exception):
    """The command may have reached lightningd, but no readable answer came back."""


@dataclass(frozen=True, slots=True)
class PaidInvoice:
    """One invoice paid into the node, as waitanyinvoice reports it (pay_index orders them)."""

    pay_index: int
    payment_hash: str
    amount_msat: int
    paid_at: datetime
    label: str


class ClnBackend:
    name = "cln"

    def __init__(self, rpc_path: str, *, timeout: float = 15.0, pay_timeout: float = 120.0) -> None:
        if not rpc_path:
            raise ValueError("cln_rpc_path is empty")
        self._path = str(rpc_path)
        self._timeout = timeout
        self._pay_timeout = pay_timeout

    def __repr__(self) -> str:
        return f"ClnBackend({self._path!r})"

    # --- the interface ------------------------------------------------------------------------

    async def create_invoice(self, amount_msat: int, memo: str, expiry_seconds: int) -> CreatedInvoice:
        check_invoice_request(amount_msat, expiry_seconds)
        params = {"amount_msat": amount_msat, "label": f"reef-{uuid.uuid4().hex}",
                  "description": memo or "", "expiry": expiry_seconds}
        try:
            result = await self._rpc("invoice", params)
        except (_NotSent, _NoAnswer) as exc:
            raise self._unavailable(str(exc)) from None
        except ClnRpcError as exc:
            if exc.code == -32602:
                raise Unprocessable(f"Core Lightning refused the invoice: {exc.message}",
                                    "check amount and memo") from None
            raise self._unavailable(f"Core Lightning refused to make an invoice ({exc.code}: {exc.message})") from None
        bolt11, payment_hash = result.get("bolt11"), result.get("payment_hash")
        expires_at = _time(result.get("expires_at"))
        if not isinstance(bolt11, str) or not isinstance(payment_hash, str) or expires_at is None:
            raise self._unavailable("Core Lightning answered an invoice without bolt11, payment_hash or expires_at")
        log.info("cln invoice created: %s msat, hash %s", amount_msat, payment_hash)
        return CreatedInvoice(bolt11=bolt11, payment_hash=payment_hash, expires_at=expires_at)

    async def invoice_status(self, payment_hash: str) -> InvoiceStatus:
        payment_hash = check_hash(payment_hash)
        result = await self._query("listinvoices", {"payment_hash": payment_hash})
        found = [i for i in _list(result, "invoices") if i.get("payment_hash") == payment_hash]
        if not found:
            raise UnknownInvoice(f"Core Lightning has no invoice {payment_hash}",
                                 "the invoice was made by another node, or was deleted")
        inv = found[-1]
        state = inv.get("status")
        if state == "paid":
            return paid_invoice(_msat(inv.get("amount_received_msat", inv.get("amount_msat"))), _time(inv.get("paid_at")))
        if state == "expired":
            return InvoiceStatus(state="expired")
        if state == "unpaid":
            return open_invoice(_time(inv.get("expires_at")))
        raise self._unavailable(f"Core Lightning answered an invoice status it does not document: {state!r}")

    async def pay_invoice(self, bolt11: str, max_fee_msat: int) -> PaymentOutcome:
        params: dict[str, Any] = {"bolt11": bolt11, "maxfee": max(0, int(max_fee_msat))}
        payment_hash = hash_of(bolt11)
        try:
            result = await self._rpc("pay", params, timeout=self._pay_timeout)
        except _NotSent as exc:
            raise self._unavailable(str(exc)) from None
        except _NoAnswer as exc:
            return await after_no_answer(self.payment_status, payment_hash, str(exc), log)
        except ClnRpcError as exc:
            return await self._after_error(payment_hash, exc)
        if not isinstance(result, dict):
            return await after_no_answer(self.payment_status, payment_hash, "CLN answered pay with no object", log)
        outcome = _pay_outcome(result)
        log.info("cln payment %s: %s", result.get("payment_hash"), outcome.state)
        return outcome

    async def payment_status(self, payment_hash: str) -> PaymentOutcome:
        payment_hash = check_hash(payment_hash)
        result = await self._query("listpays", {"payment_hash": payment_hash})
        pays = [p for p in _list(result, "pays") if p.get("payment_hash") == payment_hash]
        for wanted in ("complete", "pending"):
            for p in pays:
                if p.get("status") == wanted:
                    return _pay_outcome(p)
        if pays:
            return PaymentOutcome(state="failed", reason="Core Lightning reports the payment failed")
        return PaymentOutcome(state="unknown")

    async def wait_any_invoice(self, lastpay_index: int = 0, timeout_seconds: int = 30) -> PaidInvoice | None:
        """The next invoice paid after lastpay_index, or None when none was paid within timeout_seconds."""
        try:
            result = await self._rpc("waitanyinvoice", {"lastpay_index": lastpay_index, "timeout": timeout_seconds},
                                     timeout=timeout_seconds + self._timeout)
        except ClnRpcError as exc:
            if exc.code == WAIT_TIMED_OUT:
                return None
            raise self._unavailable(f"Core Lightning waitanyinvoice failed ({exc.code}: {exc.message})") from None
        except (_NotSent, _NoAnswer) as exc:
            raise self._unavailable(str(exc)) from None
        try:
            return PaidInvoice(
                pay_index=int(result["pay_index"]), payment_hash=str(result["payment_hash"]),
                amount_msat=_msat(result.get("amount_received_msat", result.get("amount_msat"))),
                paid_at=_time(result.get("paid_at")) or datetime.now(timezone.utc), label=str(result.get("label", "")),
            )
        except (KeyError, TypeError, ValueError):
            raise self._unavailable("Core Lightning answered waitanyinvoice without pay_index or payment_hash") from None

    async def close(self) -> None:
        return None  # one connection a call: nothing stays open

    # --- the wire -----------------------------------------------------------------------------

    async def _query(self, method: str, params: dict[str, Any]) -> Any:
        """A read-only call: every failure is BackendUnavailable."""
        try:
            return await self._rpc(method, params)
        except (_NotSent, _NoAnswer) as exc:
            raise self._unavailable(str(exc)) from None
        except ClnRpcError as exc:
            raise self._unavailable(f"Core Lightning {method} failed ({exc.code}: {exc.message})") from None

    async def _rpc(self, method: str, params: dict[str, Any], *, timeout: float | None = None) -> Any:
        request_id = next(_ids)
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(self._path, limit=MAX_ANSWER), timeout=min(self._timeout, 5.0))
        except (OSError, asyncio.TimeoutError) as exc:
            raise _NotSent(f"Core Lightning's socket {self._path} cannot be reached ({type(exc).__name__})") from None
        try:
            writer.write(json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}).encode())
            await writer.drain()
            answer = await asyncio.wait_for(_read_answer(reader, request_id), timeout=timeout or self._timeout)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as exc:
            raise _NoAnswer(f"Core Lightning did not answer {method} ({type(exc).__name__})") from None
        except ValueError as exc:
            raise _NoAnswer(f"Core Lightning answered {method} with something unreadable ({exc})") from None
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass
        error = answer.get("error")
        if error is not None:
            if not isinstance(error, dict):
                raise ClnRpcError(method, -1, str(error))
            raise ClnRpcError(method, as_int(error.get("code"), -1), str(error.get("message", "")), error.get("data"))
        if "result" not in answer:
            raise _NoAnswer(f"Core Lightning answered {method} without result or error")
        return answer["result"]

    async def _after_error(self, payment_hash: str | None, exc: ClnRpcError) -> PaymentOutcome:
        """pay answered an error: the command is over, so what listpays holds is the truth."""
        reason = f"{exc.message} ({exc.code})"
        if payment_hash is not None:
            try:
                outcome = await self.payment_status(payment_hash)
            except BackendUnavailable:
                outcome = PaymentOutcome(state="unknown")
            if outcome.state in ("succeeded", "pending"):
                return outcome
            if outcome.state == "unknown" and exc.code not in PAY_FAILED_CODES:
                log.warning("cln pay error %s without a record", exc.code)
        return PaymentOutcome(state="failed", reason=reason)

    def _unavailable(self, what: str) -> BackendUnavailable:
        log.warning("cln unavailable: %s", what)
        return BackendUnavailable(
            what, "check [payments] cln_rpc_path (lightningd's lightning-rpc socket) and that lightningd is running",
        )


async def _read_answer(reader: asyncio.StreamReader, request_id: int) -> dict[str, Any]:
    """Read JSON objects until the answer to request_id; notifications (no id) are skipped."""
    decoder = json.JSONDecoder()
    buf = b""
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            raise asyncio.IncompleteReadError(buf, None)
        buf += chunk
        if len(buf) > MAX_ANSWER:
            raise ValueError("answer too large")
        while True:
            text = buf.lstrip()
            if not text:
                buf = b""
                break
            try:
                decoded = text.decode()
                obj, end = decoder.raw_decode(decoded)
            except UnicodeDecodeError:
                break  # a character split between two reads
            except json.JSONDecodeError:
                if text[:1] != b"{":
                    raise ValueError("not JSON") from None
                break  # incomplete: read on
            buf = decoded[end:].encode()
            if not isinstance(obj, dict):
                raise ValueError("not a JSON-RPC object")
            if obj.get("id") == request_id:
                return obj
            if "id" in obj:
                raise ValueError(f"an answer to another request ({obj.get('id')!r})")


def _pay_outcome(p: dict[str, Any]) -> PaymentOutcome:
    state = p.get("status")
    if state == "complete":
        sent = _msat(p.get("amount_sent_msat"))
        amount = _msat(p.get("amount_msat"), default=sent)
        preimage = p.get("payment_preimage") or p.get("preimage") or None
        return PaymentOutcome(state="succeeded", fee_msat=max(0, sent - amount), preimage=preimage)
    if state == "pending":
        return PaymentOutcome(state="pending")
    return PaymentOutcome(state="failed", reason=f"Core Lightning reports the payment {state or 'failed'}")


def _list(result: Any, key: str) -> list[dict[str, Any]]:
    items = result.get(key) if isinstance(result, dict) else None
    if not isinstance(items, list):
        raise BackendUnavailable(f"Core Lightning answered without {key}", "check [payments] cln_rpc_path")
    return [i for i in items if isinstance(i, dict)]


def _msat(value: Any, default: int = 0) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.endswith("msat") and value[:-4].isdigit():
        return int(value[:-4])
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return default


def _time(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return datetime.fromtimestamp(value, timezone.utc)
