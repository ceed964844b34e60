"""Invoices this node signs itself, payable only by its own agents (settled in the ledger, never on Lightning).

They are real BOLT11 strings (encoded by the bolt11 library), so an agent handles them exactly as any other
invoice and POST /payments/pay recognises them by their payment hash. The signing key and the preimage are
random per invoice and thrown away: nothing outside this node can pay such an invoice, and nothing needs to.
"""
from __future__ import annotations

import hashlib
import secrets
import time
from datetime import datetime, timezone

import bolt11 as _bolt11
from bolt11 import Bolt11, MilliSatoshi, Tag, TagChar, Tags

from .base import CreatedInvoice
from .invoice import NETWORK_PREFIX


def create_internal_invoice(amount_msat: int, memo: str, expiry_seconds: int, network: str) -> CreatedInvoice:
    payment_hash = hashlib.sha256(secrets.token_bytes(32)).hexdigest()
    now = int(time.time())
    tags = Tags([
        Tag(TagChar.payment_hash, payment_hash),
        Tag(TagChar.description, memo[:600]),
        Tag(TagChar.expire_time, expiry_seconds),
        Tag(TagChar.payment_secret, secrets.token_hex(32)),
    ])
    invoice = Bolt11(currency=NETWORK_PREFIX[network], date=now, tags=tags, amount_msat=MilliSatoshi(amount_msat))
    return CreatedInvoice(
        bolt11=_bolt11.encode(invoice, secrets.token_hex(32)),
        payment_hash=payment_hash,
        expires_at=datetime.fromtimestamp(now + expiry_seconds, timezone.utc),
    )
