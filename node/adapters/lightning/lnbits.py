"""The LNbits backend: one wallet of an LNbits server, reached over its REST API with the wallet's admin key.

LNbits' shapes (checked against LNbits 1.6): POST /api/v1/payments {out: false, amount, unit: "sat", memo,
expiry} makes an invoice (amount in whole sats) and answers 201 with the payment record; {out: true, bolt11}
pays one (admin key), answering 201 with the record or 520 {detail, status} when the payment failed
("failed"), may still be in flight ("pending") or was paid before ("success"). GET /api/v1/payments/{hash}
answers {paid, status, preimage, details}, details being this wallet's record (amount and fee in msat,
amount < 0 for outgoing payments, status "pending" | "success" | "failed"); without a valid key for the
payment's wallet it answers only {paid, preimage}; 404 when no wallet has it.

A payment request that may have reached LNbits (a timeout, a dropped connection, a 5xx or an unreadable
answer once it was sent) never raises: pay_invoice then looks the payment up and, if that fails too, answers
"pending", so that the caller keeps the reservation and asks payment_status later instead of refunding money
that may have left. BackendUnavailable is raised only where nothing can have moved.
"""
from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timezone
from typing import Any

import aiohttp
from yarl import URL

from ...platform.errors import Unprocessable
from . import invoice as invoices
from .base import BackendUnavailable, CreatedInvoice, InvoiceStatus, PaymentOutcome, UnknownInvoice
from .common import after_no_answer, as_int, check_hash, check_invoice_request, hash_of, open_invoice, paid_invoice

log = logging.getLogger(__name__)

MAX_MEMO = 640  # LNbits refuses longer memos


class _NotSent(Exception):
    """The request never reached LNbits (no connection)."""


class _NoAnswer(Exception):
    """The request may have reached LNbits, but no readable answer came back."""


class LNbitsBackend:
    name = "lnbits"

    def __init__(self, url: str, admin_key: str, *, session: aiohttp.ClientSession | None = None,
                 timeout: float = 15.0) -> None:
        if not url:
            raise ValueError("lnbits_url is empty")
        if not admin_key:
            raise ValueError("lnbits_admin_key is empty")
        self._url = str(url).rstrip("/")
        self._where = str(URL(self._url).with_user(None))  # for messages: never credentials
        self._key = admin_key
        self._session = session
        self._own_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 5.0))

    def __repr__(self) -> str:  # the key stays out of logs and tracebacks
        return f"LNbitsBackend({self._where!r})"

    # --- the interface ------------------------------------------------------------------------

    async def create_invoice(self, amount_msat: int, memo: str, expiry_seconds: int) -> CreatedInvoice:
        check_invoice_request(amount_msat, expiry_seconds)
        if amount_msat % 1000:
            raise Unprocessable(
                f"LNbits makes invoices in whole satoshis; {amount_msat} msat is not a whole number of sats",
                f"ask for a multiple of 1000 msat, e.g. {amount_msat // 1000 * 1000 or 1000} msat",
            )
        memo = memo or ""
        if len(memo) > MAX_MEMO:
            raise Unprocessable(f"the memo is too long for LNbits ({len(memo)} characters)",
                                f"keep it to {MAX_MEMO} characters")
        body = {"out": False, "amount": amount_msat // 1000, "unit": "sat", "memo": memo, "expiry": expiry_seconds}
        try:
            status, answer = await self._call("POST", "/api/v1/payments", body)
        except (_NotSent, _NoAnswer) as exc:
            raise self._unavailable(str(exc)) from None
        if status == 520 and isinstance(answer, dict) and answer.get("status") == "failed":
            raise Unprocessable(f"LNbits refused to make the invoice: {_detail(answer)}",
                                "the node's LNbits limits apply (amount, wallet balance)")
        self._check_key(status, answer)
        if status != 201 or not isinstance(answer, dict):
            raise self._unavailable(f"LNbits answered {status} to a new invoice: {_detail(answer)}")
        bolt11 = answer.get("bolt11") or answer.get("payment_request")
        if not isinstance(bolt11, str):
            raise self._unavailable("LNbits answered a new invoice without its bolt11")
        try:
            decoded = invoices.decode(bolt11)
        except Unprocessable:
            raise self._unavailable("LNbits answered an invoice that cannot be decoded") from None
        if decoded.amount_msat != amount_msat or decoded.payment_hash != answer.get("payment_hash", decoded.payment_hash):
            raise self._unavailable("LNbits answered an invoice for another amount or hash than asked")
        log.info("lnbits invoice created: %s msat, hash %s", amount_msat, decoded.payment_hash)
        return CreatedInvoice(bolt11=bolt11, payment_hash=decoded.payment_hash, expires_at=decoded.expires_at)

    async def invoice_status(self, payment_hash: str) -> InvoiceStatus:
        record = await self._record(payment_hash)
        if record is None or as_int(record.get("amount")) <= 0:
            raise UnknownInvoice(f"the node's LNbits wallet has no invoice {payment_hash}",
                                 "the invoice was made by another wallet, or the LNbits data was reset")
        state = record.get("status")
        if state == "success":
            return paid_invoice(as_int(record.get("amount")), _time(record.get("updated_at")))
        if state == "failed":
            return InvoiceStatus(state="expired")
        if state == "pending":
            return open_invoice(_time(record.get("expiry")))
        raise self._unavailable(f"LNbits answered an invoice status it does not document: {state!r}")

    async def pay_invoice(self, bolt11: str, max_fee_msat: int) -> PaymentOutcome:
        """LNbits bounds the routing fee itself (its reserve: max(lnbits_reserve_fee_min, reserve_fee_percent
        of the amount), 2 sat / 1 % by default); max_fee_msat cannot be passed on, and the fee it reports is
        returned as it is. Payments to another wallet of the same LNbits settle internally, without fee."""
        payment_hash = hash_of(bolt11)
        try:
            status, answer = await self._call("POST", "/api/v1/payments", {"out": True, "bolt11": bolt11})
        except _NotSent as exc:
            raise self._unavailable(str(exc)) from None
        except _NoAnswer as exc:
            return await after_no_answer(self.payment_status, payment_hash, str(exc), log)
        if status == 520 and isinstance(answer, dict):
            said = answer.get("status")
            if said == "failed":
                return PaymentOutcome(state="failed", reason=_detail(answer))
            # "pending": it may be under way; "success": this wallet paid it before. The record tells.
            return await after_no_answer(self.payment_status, payment_hash, _detail(answer), log)
        self._check_key(status, answer)
        if status in (400, 404, 422):
            return PaymentOutcome(state="failed", reason=f"LNbits refused the payment: {_detail(answer)}")
        if status != 201 or not isinstance(answer, dict):
            why = f"LNbits answered {status}: {_detail(answer)}"
            return await after_no_answer(self.payment_status, payment_hash, why, log)
        outcome = _outcome(answer)
        log.info("lnbits payment %s: %s", answer.get("payment_hash"), outcome.state)
        return outcome

    async def payment_status(self, payment_hash: str) -> PaymentOutcome:
        record = await self._record(payment_hash)
        if record is None or as_int(record.get("amount")) >= 0:
            return PaymentOutcome(state="unknown")
        return _outcome(record)

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None

    # --- the wire -----------------------------------------------------------------------------

    async def _call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """(status, parsed JSON or raw text); _NotSent when no connection, _NoAnswer when no readable answer."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._own_session = True
        headers = {"X-Api-Key": self._key, "Accept": "application/json"}
        try:
            async with self._session.request(method, self._url + path, json=body, headers=headers,
                                             timeout=self._timeout, allow_redirects=False) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise _NotSent(f"LNbits at {self._where} cannot be reached ({type(exc).__name__})") from None
        except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
            raise _NoAnswer(f"LNbits at {self._where} did not answer {method} {path} ({type(exc).__name__})") from None
        if status >= 500 and status != 520:
            raise _NoAnswer(f"LNbits at {self._where} answered {status} to {method} {path}")
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            if 200 <= status < 300:
                raise _NoAnswer(f"LNbits at {self._where} answered {method} {path} with something not JSON") from None
            return status, raw[:300].decode(errors="replace")

    async def _record(self, payment_hash: str) -> dict[str, Any] | None:
        """This wallet's payment record for the hash, or None when it has none."""
        payment_hash = check_hash(payment_hash)
        try:
            status, answer = await self._call("GET", f"/api/v1/payments/{payment_hash}")
        except (_NotSent, _NoAnswer) as exc:
            raise self._unavailable(str(exc)) from None
        if status == 404:
            return None
        self._check_key(status, answer)
        if status != 200 or not isinstance(answer, dict):
            raise self._unavailable(f"LNbits answered {status} to a payment lookup: {_detail(answer)}")
        details = answer.get("details")
        if isinstance(details, dict) and details.get("payment_hash") == payment_hash:
            return details
        # Without details LNbits did not take the key for that payment's wallet: a key of another
        # wallet (the payment is not ours), or no valid key at all (a misconfiguration).
        await self._check_wallet_key()
        return None

    async def _check_wallet_key(self) -> None:
        try:
            status, answer = await self._call("GET", "/api/v1/wallet")
        except (_NotSent, _NoAnswer) as exc:
            raise self._unavailable(str(exc)) from None
        self._check_key(status, answer)
        if status != 200:
            raise self._unavailable(f"LNbits answered {status} to a wallet lookup: {_detail(answer)}")

    def _check_key(self, status: int, answer: Any) -> None:
        if status in (401, 403) or (status == 404 and _detail(answer).lower().startswith("wallet")):
            raise BackendUnavailable(
                f"LNbits at {self._where} refused the node's key ({status}: {_detail(answer)})",
                "set [payments] lnbits_admin_key to the admin key of the node's LNbits wallet",
            )

    def _unavailable(self, what: str) -> BackendUnavailable:
        log.warning("lnbits unavailable: %s", what)
        return BackendUnavailable(
            what, "check [payments] lnbits_url and that LNbits is running and reachable from the node; try again later",
        )


def _outcome(record: dict[str, Any]) -> PaymentOutcome:
    state = record.get("status")
    fee = abs(as_int(record.get("fee")))
    preimage = record.get("preimage") or None
    if state == "success":
        return PaymentOutcome(state="succeeded", fee_msat=fee, preimage=preimage)
    if state == "failed":
        return PaymentOutcome(state="failed", reason="LNbits marked the payment failed")
    return PaymentOutcome(state="pending")


def _detail(answer: Any) -> str:
    if isinstance(answer, dict):
        detail = answer.get("detail", answer.get("message", ""))
        if isinstance(detail, list):  # FastAPI's validation errors
            return "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)[:300]
        return str(detail)[:300]
    return str(answer or "")[:300]


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)  # LNbits writes UTC, sometimes without an offset
