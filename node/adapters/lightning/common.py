"""What every Lightning backend checks and decides alike: request bounds, hashes, open invoices, lost answers."""
from __future__ import annotations

import logging
import re
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

from ...platform.errors import Unprocessable
from . import invoice as invoices
from .base import BackendUnavailable, InvoiceStatus, PaymentOutcome

_HASH = re.compile(r"^[0-9a-f]{64}$")


def check_invoice_request(amount_msat: int, expiry_seconds: int) -> None:
    if isinstance(amount_msat, bool) or not isinstance(amount_msat, int) or amount_msat <= 0:
        raise Unprocessable("the invoice amount must be a positive whole number of millisatoshis",
                            f"got {amount_msat!r}")
    if expiry_seconds <= 0:
        raise Unprocessable("the invoice expiry must be positive", f"got {expiry_seconds} seconds")


def check_hash(payment_hash: str) -> str:
    """The hash in lower-case hex, or 422."""
    h = (payment_hash or "").strip().lower()
    if not _HASH.match(h):
        raise Unprocessable("a payment hash is 64 hex characters", f"got {h[:80]!r}")
    return h


def hash_of(bolt11: str) -> str | None:
    """The invoice's payment hash; None when it does not decode (the backend will say what is wrong)."""
    try:
        return invoices.decode(bolt11).payment_hash
    except Unprocessable:
        return None


def paid_invoice(amount_msat: int, paid_at: datetime | None) -> InvoiceStatus:
    return InvoiceStatus(state="paid", amount_msat=amount_msat, paid_at=paid_at or datetime.now(timezone.utc))


def open_invoice(expires_at: datetime | None) -> InvoiceStatus:
    """An unpaid invoice: pending until it expires (nodes refuse payments to expired invoices)."""
    if expires_at is not None and expires_at <= datetime.now(timezone.utc):
        return InvoiceStatus(state="expired")
    return InvoiceStatus(state="pending")


async def after_no_answer(payment_status: Callable[[str], Awaitable[PaymentOutcome]], payment_hash: str | None,
                          why: str, log: logging.Logger) -> PaymentOutcome:
    """A pay request may have reached the backend but no answer came back: what the backend's record says,
    else "pending" (never "failed", which would release the payer's reservation while money may move)."""
    log.warning("payment %s: %s; looking it up", payment_hash, why)
    if payment_hash is not None:
        try:
            outcome = await payment_status(payment_hash)
        except BackendUnavailable:
            outcome = PaymentOutcome(state="unknown")
        if outcome.state != "unknown":
            return outcome
    return PaymentOutcome(state="pending", reason=f"{why}; the payment may be under way: ask payment_status later")


def as_int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
