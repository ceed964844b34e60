"""The LND backend: lnd's REST gateway (https, its own tls.cert), authenticated by a macaroon.

Shapes from LND's API reference (lightning.proto, routerrpc/router.proto through the REST proxy): int64
fields are JSON strings; bytes fields are base64; the Macaroon goes hex-encoded in Grpc-Metadata-macaroon.
  POST /v1/invoices {value_msat, memo, expiry} -> {r_hash (base64), payment_request, add_index, payment_addr}
  GET  /v1/invoice/{r_hash_str (hex)} -> Invoice {state OPEN|SETTLED|CANCELED|ACCEPTED, amt_paid_msat, settle_date}
  POST /v2/router/send {payment_request, fee_limit_msat, timeout_seconds, no_inflight_updates} -> a stream of
       {"result": Payment} lines (Payment {payment_hash, status IN_FLIGHT|SUCCEEDED|FAILED|INITIATED, fee_msat,
       payment_preimage, failure_reason}) or {"error": {code, message}}
  GET  /v2/router/track/{payment_hash (base64url)}?no_inflight_updates=true -> the same stream; error code 5
       ("payment isn't initiated") when lnd never saw the payment.
Errors carry gRPC codes: 3 (invalid argument), 7 (permission denied) and 16 (unauthenticated) come before
anything is sent; an ambiguous pay error is settled by tracking the payment, "pending" if that cannot tell.
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import ssl
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from ...platform.errors import Unprocessable
from . import invoice as invoices
from .base import BackendUnavailable, CreatedInvoice, InvoiceStatus, PaymentOutcome, UnknownInvoice
from .common import after_no_answer, as_int, check_hash, check_invoice_request, hash_of, open_invoice, paid_invoice

log = logging.getLogger(__name__)

PRE_DISPATCH_CODES = {3, 7, 16}
NOT_FOUND = 5


class _NotSent(Exception):
    """No connection to lnd: nothing was sent."""


class _NoAnswer(Exception):
    """The request may have reached lnd, but no readable answer came back."""


class _LndError(Exception):
    def __init__(self, status: int, code: int | None, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class LndBackend:
    name = "lnd"

    def __init__(self, rest_url: str, macaroon_path: str, tls_cert_path: str | None = None, *,
                 session: aiohttp.ClientSession | None = None, timeout: float = 15.0,
                 pay_timeout_seconds: int = 60) -> None:
        if not rest_url:
            raise ValueError("lnd_rest_url is empty")
        self._url = str(rest_url).rstrip("/")
        self._where = str(URL(self._url).with_user(None))
        try:
            self._macaroon = Path(macaroon_path).read_bytes().hex()
        except OSError as exc:
            raise ValueError(f"lnd_macaroon_path {macaroon_path} cannot be read ({exc.strerror})") from None
        self._ssl: ssl.SSLContext | bool = True
        if tls_cert_path:
            try:
                self._ssl = ssl.create_default_context(cafile=str(tls_cert_path))
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(f"lnd_tls_cert_path {tls_cert_path} is not a readable certificate ({exc})") from None
        self._session = session
        self._own_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 5.0))
        self._pay_seconds = pay_timeout_seconds
        self._pay_timeout = aiohttp.ClientTimeout(total=pay_timeout_seconds + timeout, sock_connect=min(timeout, 5.0))

    def __repr__(self) -> str:
        return f"LndBackend({self._where!r})"

    # --- the interface ------------------------------------------------------------------------

    async def create_invoice(self, amount_msat: int, memo: str, expiry_seconds: int) -> CreatedInvoice:
        check_invoice_request(amount_msat, expiry_seconds)
        body = {"value_msat": str(amount_msat), "memo": memo or "", "expiry": str(expiry_seconds)}
        try:
            answer = await self._json("POST", "/v1/invoices", body)
        except (_NotSent, _NoAnswer) as exc:
            raise self._unavailable(str(exc)) from None
        except _LndError as exc:
            if _is_auth(exc):
                raise self._key_refused(exc) from None
            if exc.code == 3:
                raise Unprocessable(f"lnd refused the invoice: {exc.message}", "check amount and memo") from None
            raise self._unavailable(f"lnd refused to make an invoice ({exc.code}: {exc.message})") from None
        bolt11 = answer.get("payment_request")
        if not isinstance(bolt11, str):
            raise self._unavailable("lnd answered an invoice without payment_request")
        try:
            decoded = invoices.decode(bolt11)
            r_hash = base64.b64decode(answer.get("r_hash", ""), validate=False).hex()
        except (Unprocessable, ValueError):
            raise self._unavailable("lnd answered an invoice that cannot be decoded") from None
        if decoded.payment_hash != r_hash or decoded.amount_msat != amount_msat:
            raise self._unavailable("lnd answered an invoice for another amount or hash than asked")
        log.info("lnd invoice created: %s msat, hash %s", amount_msat, r_hash)
        return CreatedInvoice(bolt11=bolt11, payment_hash=r_hash, expires_at=decoded.expires_at)

    async def invoice_status(self, payment_hash: str) -> InvoiceStatus:
        payment_hash = check_hash(payment_hash)
        try:
            inv = await self._json("GET", f"/v1/invoice/{payment_hash}")
        except (_NotSent, _NoAnswer) as exc:
            raise self._unavailable(str(exc)) from None
        except _LndError as exc:
            if _is_auth(exc):
                raise self._key_refused(exc) from None
            if exc.status == 404 or exc.code == NOT_FOUND or "unable to locate invoice" in exc.message:
                raise UnknownInvoice(f"lnd has no invoice {payment_hash}",
                                     "the invoice was made by another node, or was deleted") from None
            raise self._unavailable(f"lnd invoice lookup failed ({exc.code}: {exc.message})") from None
        state = inv.get("state")
        if state == "SETTLED":
            return paid_invoice(as_int(inv.get("amt_paid_msat")), _time(inv.get("settle_date")))
        if state == "CANCELED":
            return InvoiceStatus(state="expired")
        if state == "ACCEPTED":  # a held HTLC: neither paid nor over
            return InvoiceStatus(state="pending")
        if state == "OPEN":
            created, expiry = as_int(inv.get("creation_date")), as_int(inv.get("expiry"))
            return open_invoice(_time(created + expiry) if created and expiry else None)
        raise self._unavailable(f"lnd answered an invoice state it does not document: {state!r}")

    async def pay_invoice(self, bolt11: str, max_fee_msat: int) -> PaymentOutcome:
        body = {"payment_request": bolt11, "fee_limit_msat": str(max(0, int(max_fee_msat))),
                "timeout_seconds": self._pay_seconds, "no_inflight_updates": True}
        payment_hash = hash_of(bolt11)
        try:
            payment = await self._final_payment("POST", "/v2/router/send", body, timeout=self._pay_timeout)
        except _NotSent as exc:
            raise self._unavailable(str(exc)) from None
        except _NoAnswer as exc:
            return await after_no_answer(self.payment_status, payment_hash, str(exc), log)
        except _LndError as exc:
            if _is_auth(exc):
                raise self._key_refused(exc) from None
            if exc.code in PRE_DISPATCH_CODES:
                return PaymentOutcome(state="failed", reason=f"lnd refused the payment: {exc.message}")
            # e.g. "invoice is already paid" (6), "payment is in transition": the tracked payment says
            return await after_no_answer(self.payment_status, payment_hash, exc.message, log)
        outcome = _outcome(payment)
        log.info("lnd payment %s: %s", payment.get("payment_hash"), outcome.state)
        return outcome

    async def payment_status(self, payment_hash: str) -> PaymentOutcome:
        payment_hash = check_hash(payment_hash)
        encoded = base64.urlsafe_b64encode(bytes.fromhex(payment_hash)).decode()
        try:
            payment = await self._final_payment("GET", f"/v2/router/track/{encoded}?no_inflight_updates=true")
        except (_NotSent, _NoAnswer) as exc:
            raise self._unavailable(str(exc)) from None
        except _LndError as exc:
            if exc.code == NOT_FOUND or exc.status == 404 or "isn't initiated" in exc.message:
                return PaymentOutcome(state="unknown")
            if _is_auth(exc):
                raise self._key_refused(exc) from None
            raise self._unavailable(f"lnd payment lookup failed ({exc.code}: {exc.message})") from None
        return _outcome(payment)

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None

    # --- the wire -----------------------------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._own_session = True
        return self._session

    def _headers(self) -> dict[str, str]:
        return {"Grpc-Metadata-macaroon": self._macaroon, "Accept": "application/json"}

    async def _json(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """One JSON answer; _LndError for an error answer, _NotSent / _NoAnswer for transport failures."""
        try:
            async with self._http().request(method, self._url + path, json=body, headers=self._headers(),
                                            ssl=self._ssl, timeout=self._timeout) as resp:
                raw, status = await resp.read(), resp.status
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise _NotSent(f"lnd at {self._where} cannot be reached ({type(exc).__name__})") from None
        except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
            raise _NoAnswer(f"lnd at {self._where} did not answer {method} ({type(exc).__name__})") from None
        answer = _parse(raw)
        if isinstance(answer, dict) and ("error" in answer or "code" in answer and "message" in answer):
            _raise_error(status, answer)
        if status in (401, 403):
            raise _LndError(status, 16, "unauthorized")
        if status != 200 or not isinstance(answer, dict):
            raise _NoAnswer(f"lnd at {self._where} answered {status} to {method} with something unreadable")
        return answer

    async def _final_payment(self, method: str, path: str, body: Any = None, *,
                             timeout: aiohttp.ClientTimeout | None = None) -> dict[str, Any]:
        """Read a payment stream to its last update (no_inflight_updates: usually one final line)."""
        last: dict[str, Any] | None = None
        try:
            async with self._http().request(method, self._url + path, json=body, headers=self._headers(),
                                            ssl=self._ssl, timeout=timeout or self._timeout) as resp:
                status = resp.status
                async for line in resp.content:
                    if not line.strip():
                        continue
                    item = _parse(line)
                    if not isinstance(item, dict):
                        raise _NoAnswer(f"lnd at {self._where} sent an unreadable payment update")
                    if "error" in item or ("code" in item and "message" in item):
                        _raise_error(status, item)
                    result = item.get("result")
                    if isinstance(result, dict):
                        last = result
                        if result.get("status") in ("SUCCEEDED", "FAILED"):
                            break
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise _NotSent(f"lnd at {self._where} cannot be reached ({type(exc).__name__})") from None
        except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
            if last is not None:
                return last
            raise _NoAnswer(f"lnd at {self._where} did not answer {method} ({type(exc).__name__})") from None
        if status in (401, 403):
            raise _LndError(status, 16, "unauthorized")
        if last is None:
            raise _NoAnswer(f"lnd at {self._where} answered {status} with no payment")
        return last

    def _key_refused(self, exc: _LndError) -> BackendUnavailable:
        return BackendUnavailable(
            f"lnd at {self._where} refused the node's macaroon ({exc.message})",
            "set [payments] lnd_macaroon_path to a macaroon that may create invoices and send payments "
            "(admin.macaroon, or one baked with invoices:write offchain:write)",
        )

    def _unavailable(self, what: str) -> BackendUnavailable:
        log.warning("lnd unavailable: %s", what)
        return BackendUnavailable(
            what, "check [payments] lnd_rest_url (and lnd_tls_cert_path) and that lnd is running; try again later",
        )


def _is_auth(exc: _LndError) -> bool:
    """lnd refuses a macaroon with 401/403, gRPC 7/16, or code 2 "verification failed" / "cannot get macaroon"."""
    text = exc.message.lower()
    return exc.status in (401, 403) or exc.code in (7, 16) or "verification failed" in text or "macaroon" in text


def _raise_error(status: int, answer: dict[str, Any]) -> None:
    error = answer.get("error", answer)
    if isinstance(error, dict):
        code = error.get("code")
        raise _LndError(status, code if isinstance(code, int) else None, str(error.get("message", ""))[:300])
    raise _LndError(status, None, str(error)[:300])


def _outcome(payment: dict[str, Any]) -> PaymentOutcome:
    state = payment.get("status")
    if state == "SUCCEEDED":
        return PaymentOutcome(state="succeeded", fee_msat=abs(as_int(payment.get("fee_msat"))),
                              preimage=payment.get("payment_preimage") or None)
    if state == "FAILED":
        return PaymentOutcome(state="failed", reason=str(payment.get("failure_reason") or "FAILED"))
    return PaymentOutcome(state="pending")  # IN_FLIGHT, INITIATED


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw.strip() else None
    except ValueError:
        return None


def _time(value: Any) -> datetime | None:
    seconds = as_int(value)
    return datetime.fromtimestamp(seconds, timezone.utc) if seconds > 0 else None
