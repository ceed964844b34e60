"""Helpers for the payment tests: funding wallets the way the deposit watcher does, a scripted Lightning backend
for the paths a real backend cannot be made to take on demand (a crash mid-payment), posts and comments."""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import time
import uuid
from typing import Any

import bolt11 as _bolt11
from bolt11 import Bolt11, MilliSatoshi, Tag, TagChar, Tags

from node.adapters.lightning.base import CreatedInvoice, InvoiceStatus, PaymentOutcome
from node.adapters.lightning.internal import create_internal_invoice
from node.platform.config_types import PaymentsConfig, ReputationConfig
from node.services import comments as comments_service
from node.services import posts as posts_service
from node.services import submolts as submolts_service
from node.services import wallet as wallet_service
from node.stores import ledger as ledger_store
from node.stores.agents import Agent
from tests.factories import NO_THRESHOLDS


class ScriptedBackend:
    """A Lightning backend in this process: invoices are BOLT11 strings it signs itself; what they and outgoing
    payments do is set by the test (paid/pending, succeeded/failed/pending/raises)."""

    name = "scripted"

    def __init__(self, network: str = "bitcoin") -> None:
        self.network = network
        self.paid: dict[str, int] = {}  # payment_hash -> msat received
        self.pay_result = PaymentOutcome("succeeded", fee_msat=1500, preimage="00" * 32)
        self.status_result: dict[str, PaymentOutcome] = {}
        self.pay_calls: list[str] = []
        self.status_calls: list[str] = []

    async def create_invoice(self, amount_msat: int, memo: str, expiry_seconds: int) -> CreatedInvoice:
        return create_internal_invoice(amount_msat, memo, expiry_seconds, self.network)

    async def invoice_status(self, payment_hash: str) -> InvoiceStatus:
        if payment_hash in self.paid:
            return InvoiceStatus("paid", self.paid[payment_hash], dt.datetime.now(dt.timezone.utc))
        return InvoiceStatus("pending")

    async def pay_invoice(self, bolt11: str, max_fee_msat: int) -> PaymentOutcome:
        self.pay_calls.append(bolt11)
        if isinstance(self.pay_result, Exception):
            raise self.pay_result
        return self.pay_result

    async def payment_status(self, payment_hash: str) -> PaymentOutcome:
        self.status_calls.append(payment_hash)
        return self.status_result.get(payment_hash, PaymentOutcome("unknown"))

    async def close(self) -> None:
        return None


def foreign_invoice(amount_msat: int | None, *, network: str = "bitcoin", expiry: int = 3600, age: int = 0) -> str:
    """A BOLT11 invoice of some other Lightning node (random key and hash)."""
    tags = Tags([
        Tag(TagChar.payment_hash, hashlib.sha256(secrets.token_bytes(32)).hexdigest()),
        Tag(TagChar.description, "elsewhere"),
        Tag(TagChar.expire_time, expiry),
        Tag(TagChar.payment_secret, secrets.token_hex(32)),
    ])
    prefix = {"bitcoin": "bc", "testnet": "tb", "signet": "tbs", "regtest": "bcrt"}[network]
    inv = Bolt11(currency=prefix, date=int(time.time()) - age, tags=tags,
                 amount_msat=MilliSatoshi(amount_msat) if amount_msat else None)
    return _bolt11.encode(inv, secrets.token_hex(32))


async def fund(pool: Any, cfg: PaymentsConfig, agent: Agent, sat: int) -> None:
    """Put sat into the agent's wallet as a paid deposit: the deposit row, then the very function the deposit
    watcher calls when the backend says an invoice was paid (no SQL of our own)."""
    backend = ScriptedBackend(cfg.network)
    made = await wallet_service.create_deposit(pool, cfg, backend, agent, {"amount_sat": min(sat, cfg.max_amount_sat)})
    left = sat - min(sat, cfg.max_amount_sat)
    assert await wallet_service.credit_paid_invoice(pool, cfg, made["deposit"]["payment_hash"], made["deposit"]["amount_msat"])
    if left > 0:
        await fund(pool, cfg, agent, left)


async def balance(pool: Any, agent: Agent) -> int:
    async with pool.acquire() as conn:
        return await ledger_store.wallet_balance(conn, agent.id)


async def fees(pool: Any) -> int:
    async with pool.acquire() as conn:
        return await ledger_store.balance_of(conn, ledger_store.FEES_ACCOUNT)


async def assert_ledger_sound(pool: Any) -> ledger_store.LedgerCheck:
    async with pool.acquire() as conn:
        check = await ledger_store.check_ledger(conn)
    assert check == ledger_store.LedgerCheck(0, 0, 0, 0), check
    return check


async def ledger_count(pool: Any) -> int:
    async with pool.acquire() as conn:
        return await conn.fetchval("SELECT count(*) FROM ledger_transactions")


_submolts: dict[int, str] = {}


NO_RULES = ReputationConfig(**NO_THRESHOLDS)


async def make_post(pool: Any, author: Agent, collaborators: list[str] | None = None) -> uuid.UUID:
    name = f"s{secrets.token_hex(4)}"
    await submolts_service.create_submolt(pool, NO_RULES, author, {"name": name})
    body: dict[str, Any] = {"submolt_name": name, "title": "A question", "content": "Who knows?"}
    if collaborators:
        body["collaborators"] = collaborators
    made = await posts_service.create_post(pool, NO_RULES, author, body)
    return uuid.UUID(str(made["post"]["id"]))


async def make_comment(pool: Any, author: Agent, post_id: uuid.UUID, text: str = "I know") -> uuid.UUID:
    view = await comments_service.create_comment(pool, author, post_id, text, max_depth=10)
    return view.comment.id
