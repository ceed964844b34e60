"""BOLT11 decoding (node/adapters/lightning/invoice.py) on an invoice recorded from a real Core Lightning node."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from node.adapters.lightning.invoice import InvalidInvoice, decode

# Copied from the team's shared fixtures: responses recorded from real Core Lightning v26.06 nodes (regtest).
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "cln"


def _recorded():
    inv = json.loads((FIXTURES / "invoice_b.json").read_text())
    dec = json.loads((FIXTURES / "decode.json").read_text())
    return inv, dec


def test_recorded_invoice_decodes_as_core_lightning_decoded_it():
    inv, dec = _recorded()
    got = decode(inv["bolt11"], network="regtest")
    assert got.payment_hash == dec["payment_hash"] == inv["payment_hash"]
    assert got.amount_msat == dec["amount_msat"] == 21_000_000
    assert got.currency == "bcrt"
    assert got.description == dec["description"]
    assert got.payee == dec["payee"]
    assert got.created_at == datetime.fromtimestamp(dec["created_at"], timezone.utc)
    assert int(got.expires_at.timestamp()) == inv["expires_at"] == dec["created_at"] + dec["expiry"]
    assert got.expired(datetime.fromtimestamp(inv["expires_at"], timezone.utc))
    assert not got.expired(datetime.fromtimestamp(inv["expires_at"] - 1, timezone.utc))


def test_lightning_uri_prefix_and_case_are_accepted():
    inv, _ = _recorded()
    assert decode("lightning:" + inv["bolt11"]).payment_hash == inv["payment_hash"]


def test_wrong_network_is_refused_with_the_prefix_to_ask_for():
    inv, _ = _recorded()
    with pytest.raises(InvalidInvoice) as err:
        decode(inv["bolt11"], network="bitcoin")
    assert err.value.status == 422
    assert "lnbc" in err.value.hint and "bcrt" in err.value.error


@pytest.mark.parametrize("bad", ["", "hello", "lnbc1", "x" * 5000])
def test_garbage_is_refused_with_a_hint(bad):
    with pytest.raises(InvalidInvoice) as err:
        decode(bad)
    assert err.value.hint


def test_tampered_invoice_is_refused():
    inv, _ = _recorded()
    s = inv["bolt11"]
    tampered = s[:40] + ("q" if s[40] != "q" else "p") + s[41:]
    with pytest.raises(InvalidInvoice):
        decode(tampered)
