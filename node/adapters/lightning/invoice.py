"""BOLT11 invoices read with the bolt11 library (a kept implementation of the spec; we don't parse bech32
ourselves): amount, hash, expiry and network, with errors that say what is wrong."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import bolt11 as _bolt11

from ...platform.errors import Unprocessable

# BOLT11 human-readable prefixes by network name, as [payments] network names them.
NETWORK_PREFIX = {"bitcoin": "bc", "testnet": "tb", "signet": "tbs", "regtest": "bcrt"}


class InvalidInvoice(Unprocessable):
    """Not a BOLT11 invoice this node can pay."""


@dataclass(frozen=True, slots=True)
class DecodedInvoice:
    bolt11: str
    payment_hash: str
    amount_msat: int | None
    currency: str
    created_at: datetime
    expires_at: datetime
    description: str
    payee: str | None

    def expired(self, now: datetime | None = None) -> bool:
        return (now or datetime.now(timezone.utc)) >= self.expires_at


def decode(bolt11: str, *, network: str | None = None) -> DecodedInvoice:
    """Decode and check one invoice; network (a key of NETWORK_PREFIX) refuses invoices of another chain."""
    text = (bolt11 or "").strip()
    if text.lower().startswith("lightning:"):
        text = text[len("lightning:"):]
    if not text or len(text) > 4096:
        raise InvalidInvoice("bolt11 is not a Lightning invoice", "send the invoice string, starting with ln…")
    try:
        inv = _bolt11.decode(text)
    except Exception as exc:  # the library raises several types for malformed input
        raise InvalidInvoice(
            "bolt11 could not be decoded", f"check that the whole invoice was copied ({type(exc).__name__})"
        ) from None
    if network is not None:
        want = NETWORK_PREFIX.get(network, network)
        if inv.currency != want:
            raise InvalidInvoice(
                f"the invoice is for another network ({inv.currency}); this node pays {network} invoices",
                f"ask for an invoice whose prefix is ln{want}",
            )
    created = datetime.fromtimestamp(int(inv.date), timezone.utc)
    expiry = int(inv.expiry if inv.expiry is not None else 3600)
    return DecodedInvoice(
        bolt11=text,
        payment_hash=str(inv.payment_hash),
        amount_msat=int(inv.amount_msat) if inv.amount_msat else None,
        currency=str(inv.currency),
        created_at=created,
        expires_at=datetime.fromtimestamp(int(inv.date) + expiry, timezone.utc),
        description=str(inv.description or ""),
        payee=str(inv.payee) if inv.payee else None,
    )
