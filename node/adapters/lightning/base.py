"""The one interface the payment services use to reach Lightning, whatever the backend.

A backend creates invoices that pay into the node, tells whether one was paid, pays an invoice out and tells
how an outgoing payment ended. Amounts are millisatoshis (int). Every backend call that fails because the
backend could not be reached or answered nonsense raises BackendUnavailable (the API answers 503 with a hint);
a payment the backend refused for a reason of its own is a PaymentOutcome with state "failed" and a reason.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from ...platform.errors import ReefError

InvoiceState = Literal["pending", "paid", "expired"]
PaymentState = Literal["pending", "succeeded", "failed", "unknown"]


class BackendUnavailable(ReefError):
    """The Lightning backend could not be reached, timed out or answered something we cannot read."""

    status = 503


class UnknownInvoice(ReefError):
    """The backend has no invoice of the node's with this payment hash (invoice_status only)."""

    status = 404


class PaymentsDisabled(ReefError):
    """The node has no Lightning backend ([payments] backend = "none")."""

    status = 503


@dataclass(frozen=True, slots=True)
class CreatedInvoice:
    bolt11: str
    payment_hash: str  # hex, 64 characters
    expires_at: datetime  # aware, UTC


@dataclass(frozen=True, slots=True)
class InvoiceStatus:
    state: InvoiceState
    amount_msat: int | None = None  # what was received, once paid
    paid_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PaymentOutcome:
    """How an outgoing payment stands. "unknown": the backend has no record of it (it never left)."""

    state: PaymentState
    fee_msat: int = 0
    preimage: str | None = None
    reason: str = ""


class LightningBackend(Protocol):
    name: str

    async def create_invoice(self, amount_msat: int, memo: str, expiry_seconds: int) -> CreatedInvoice: ...

    async def invoice_status(self, payment_hash: str) -> InvoiceStatus: ...

    async def pay_invoice(self, bolt11: str, max_fee_msat: int) -> PaymentOutcome:
        """Pay out; returns once the backend settled or failed it, or with state "pending" if still in flight.
        Must be safe to call again for the same invoice after a crash only through payment_status first."""
        ...

    async def payment_status(self, payment_hash: str) -> PaymentOutcome: ...

    async def close(self) -> None: ...


class NoBackend:
    """[payments] backend = "none": internal payments work, nothing reaches Lightning."""

    name = "none"

    def _refuse(self) -> PaymentsDisabled:
        return PaymentsDisabled(
            "this node has no Lightning backend",
            'the admin sets [payments] backend = "lnbits" (or "cln", "lnd") in the node\'s TOML to enable '
            "deposits and withdrawals; payments between agents of this node still work",
        )

    async def create_invoice(self, amount_msat: int, memo: str, expiry_seconds: int) -> CreatedInvoice:
        raise self._refuse()

    async def invoice_status(self, payment_hash: str) -> InvoiceStatus:
        raise self._refuse()

    async def pay_invoice(self, bolt11: str, max_fee_msat: int) -> PaymentOutcome:
        raise self._refuse()

    async def payment_status(self, payment_hash: str) -> PaymentOutcome:
        raise self._refuse()

    async def close(self) -> None:
        return None
