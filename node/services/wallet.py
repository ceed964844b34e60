"""An agent's wallet: balance and history, invoices (deposits, invoices payable to an agent), and crediting a
paid invoice exactly once (settle_invoice), which the deposit watcher and internal payments share."""
from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import Any, AsyncIterator, Mapping

import asyncpg

from ..adapters.lightning.base import (
    BackendUnavailable, CreatedInvoice, InvoiceStatus, LightningBackend, UnknownInvoice,
)
from ..adapters.lightning.internal import create_internal_invoice
from ..edge.cursors import cursor_int, decode_cursor, encode_cursor
from ..edge.validation import get_str
from ..platform.config_types import PaymentsConfig
from ..platform.errors import BadRequest, NotFound
from ..stores import agents as agents_store
from ..stores import idempotency as idempotency_store
from ..stores import ledger as ledger_store
from ..stores import payments as store
from ..stores import stream as stream_store
from ..stores.agents import Agent
from ..stores.ledger import Account
from ..stores.payments import Invoice
from . import notifications
from .events import iso
from .ledger import CLEARING_ACCOUNT, FEES_ACCOUNT, MSAT_PER_SAT, move, parse_amount_sat, split_fee, wallets
from . import spending
from .spending import Spend

log = logging.getLogger(__name__)

MEMO_MAX = 200
INTERNAL = "internal"  # payment_invoices.backend of invoices this node signed itself


def sats(msat: int) -> int:
    return msat // MSAT_PER_SAT


def invoice_to_json(inv: Invoice, payee: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": inv.id, "payment_hash": inv.payment_hash, "bolt11": inv.bolt11, "purpose": inv.purpose,
        "amount_sat": sats(inv.amount_msat), "amount_msat": inv.amount_msat, "memo": inv.memo, "state": inv.state,
        "internal": inv.backend == INTERNAL, "expires_at": inv.expires_at, "created_at": inv.created_at,
        "paid_at": inv.paid_at,
    }
    if payee:
        out["payee"] = payee
    return out


async def get_wallet(pool: asyncpg.Pool, agent: Agent) -> dict[str, Any]:
    async with pool.acquire() as conn:
        balance = await ledger_store.wallet_balance(conn, agent.id)
        incoming = await store.pending_deposits_msat(conn, agent.id)
        outgoing = await store.in_flight_msat(conn, agent.id)
    return {"wallet": {
        "balance_sat": sats(balance), "balance_msat": balance,
        "pending": {"deposits_msat": incoming, "deposits_sat": sats(incoming),
                    "withdrawals_msat": outgoing, "withdrawals_sat": sats(outgoing)},
    }}


async def list_transactions(pool: asyncpg.Pool, agent: Agent, *, limit: int, cursor: str | None) -> dict[str, Any]:
    before = cursor_int(decode_cursor(cursor), "t") if cursor else None
    async with pool.acquire() as conn:
        account = await ledger_store.wallet_account_id(conn, agent.id)
        rows = [] if account is None else await ledger_store.history(conn, account, limit=limit + 1, before=before)
    has_more = len(rows) > limit
    rows = rows[:limit]
    return {
        "transactions": [{
            "id": r.transaction_id, "kind": r.kind, "amount_msat": r.amount_msat,
            "amount_sat": int(r.amount_msat / MSAT_PER_SAT), "direction": "in" if r.amount_msat > 0 else "out",
            "memo": r.memo, "details": r.data, "created_at": r.created_at,
        } for r in rows],
        "next_cursor": encode_cursor({"t": rows[-1].transaction_id}) if has_more and rows else None,
        "has_more": has_more,
    }


def _memo(body: Mapping[str, Any]) -> str:
    return get_str(body, "memo", max_len=MEMO_MAX, default="") or ""


async def create_deposit(
    pool: asyncpg.Pool, cfg: PaymentsConfig, backend: LightningBackend, agent: Agent, body: Mapping[str, Any]
) -> dict[str, Any]:
    """A BOLT11 invoice of the node's Lightning backend; the watcher credits the wallet once it is paid."""
    amount = parse_amount_sat(body, cfg)
    memo = _memo(body)
    created = await backend.create_invoice(amount, memo or f"Reef deposit for {agent.name}", cfg.invoice_expiry_seconds)
    async with pool.acquire() as conn, conn.transaction():
        inv = await _record_invoice(conn, agent, "deposit", backend.name, created, amount, memo)
    return {"deposit": invoice_to_json(inv)}


async def create_agent_invoice(
    pool: asyncpg.Pool, cfg: PaymentsConfig, backend: LightningBackend, name: str, body: Mapping[str, Any]
) -> dict[str, Any]:
    """An invoice payable to agent `name`. With a Lightning backend it is the backend's (anyone on Lightning
    can pay it; the watcher credits it); with backend "none" the node signs it itself and only its own
    agents can pay it. Either way POST /payments/pay by an agent of this node settles it internally."""
    amount = parse_amount_sat(body, cfg)
    memo = _memo(body)
    async with pool.acquire() as conn:
        payee = await agents_store.get_agent_by_handle(conn, name.strip())
    if payee is None or not payee.is_local:
        raise NotFound(
            f"No agent named {name[:40]!r} on this node.",
            "Invoices are issued by the payee's own node; check the name (GET /api/v1/agents/profile?name=...).",
        )
    text = memo or f"Payment to {payee.name} on Reef"
    if backend.name == "none":
        created, kind = create_internal_invoice(amount, text, cfg.invoice_expiry_seconds, cfg.network), INTERNAL
    else:
        created, kind = await backend.create_invoice(amount, text, cfg.invoice_expiry_seconds), backend.name
    async with pool.acquire() as conn, conn.transaction():
        inv = await _record_invoice(conn, payee, "invoice", kind, created, amount, memo)
    return {"invoice": invoice_to_json(inv, payee.name)}


async def _record_invoice(
    conn: asyncpg.Connection, agent: Agent, purpose: str, backend: str, created: CreatedInvoice, amount: int, memo: str
) -> Invoice:
    inv = await store.insert_invoice(
        conn, agent_id=agent.id, purpose=purpose, backend=backend, payment_hash=created.payment_hash.lower(),
        bolt11=created.bolt11, amount_msat=amount, memo=memo, expires_at=created.expires_at,
    )
    await agents_store.insert_audit(conn, f"agent:{agent.id}", f"payment.{purpose}_created", f"invoice:{inv.id}",
                                    {"amount_msat": amount, "payment_hash": inv.payment_hash, "backend": backend})
    return inv


@dataclass(frozen=True, slots=True)
class Settled:
    transaction_id: int
    payee_msat: int
    fee_msat: int
    balances: dict[int, int]  # new balances by account id


async def settle_invoice(
    conn: asyncpg.Connection, cfg: PaymentsConfig, inv: Invoice, *, from_account: int, received_msat: int,
    receipts: Receipts, payer: Agent | None = None, payee_account: int | None = None, locked: bool = False,
    accounts: dict[int, Account] | None = None, spend: Spend | None = None,
) -> Settled | None:
    """Credit a paid invoice, once, inside the caller's transaction: flip it pending -> paid and post the
    movement (from the clearing account when Lightning paid it, from the payer's wallet when an agent of this
    node did). A deposit credits the whole amount; an invoice payable to an agent pays the platform fee.
    locked: the caller holds the invoice's lock; accounts: the wallet locks it holds, spend: the payer's request
    (see ledger.move).
    None: it was not pending (already credited, or expired); nothing moved."""
    current = inv if locked else await store.get_invoice_by_hash(conn, inv.payment_hash, lock=True)
    if current is None or current.state != "pending":
        return None
    payee_msat, fee_msat = (received_msat, 0) if inv.purpose == "deposit" else split_fee(received_msat, cfg.fee_percent)
    wallet = payee_account or await ledger_store.wallet_account_id(conn, inv.agent_id)
    if wallet is None:
        raise RuntimeError("settle_invoice: the payee's wallet must exist (ledger.wallets) before the transaction")
    legs = [(from_account, -received_msat), (wallet, payee_msat), (FEES_ACCOUNT, fee_msat)]
    posted = await move(
        conn, inv.purpose, legs, source=f"invoice:{inv.payment_hash}", memo=inv.memo,
        data={"invoice_id": str(inv.id), "payee_msat": payee_msat, "fee_msat": fee_msat,
              **({"payer": payer.name} if payer else {"via": "lightning"})},
        audit_actor=f"agent:{payer.id}" if payer else "lightning", locked=accounts,
        settles=(inv.id, received_msat, payer.id if payer else None), spend=spend,
    )
    if not posted.settled:
        raise RuntimeError("invoice was locked pending but did not move to paid")
    await receipts.add(conn, inv.agent_id, {
        "payment_type": inv.purpose, "direction": "in", "amount_msat": payee_msat, "fee_msat": fee_msat,
        "invoice_id": str(inv.id), "payment_hash": inv.payment_hash, "from": payer.name if payer else None,
        "transaction_id": posted.id,
    }, actor=(payer.id, payer.name) if payer else None)
    return Settled(posted.id, payee_msat, fee_msat, posted.balances)


class Receipts:
    """`payment` notifications and stream frames, written inside a money transaction; the stream is told
    (pg_notify) by publish() after the commit. NOTIFY inside the transaction would take PostgreSQL's global
    notify lock at commit while the payment's row locks are still held, and serialise every payment."""

    def __init__(self) -> None:
        self.items: list[tuple[list[tuple[uuid.UUID, int]], dict[str, Any]]] = []

    async def add(self, conn: asyncpg.Connection, agent_id: uuid.UUID, payload: dict[str, Any],
                  *, actor: tuple[uuid.UUID, str] | None = None) -> None:
        payload = {**payload, "timestamp": iso(dt.datetime.now(dt.timezone.utc))}
        await notifications.notify(conn, agent_id, "payment", actor=actor, data=payload, push=False)
        self.items.append((await stream_store.insert_events(conn, [agent_id], "payment", payload), payload))

    async def publish(self, conn: asyncpg.Connection) -> None:
        """Call after the commit, outside a transaction; nothing is told of a rollback."""
        for deliveries, payload in self.items:
            await notifications.pg_publish(conn, deliveries, "payment", payload)
        self.items = []


async def tell_payment(
    conn: asyncpg.Connection, agent_id: uuid.UUID, payload: dict[str, Any], *, actor: tuple[uuid.UUID, str] | None = None
) -> None:
    """A `payment` notification and frame, told at commit (for the rarer movements: withdrawals, bounties)."""
    receipts = Receipts()
    await receipts.add(conn, agent_id, payload, actor=actor)
    await receipts.publish(conn)  # inside the caller's transaction: pg_notify is delivered at its commit


async def credit_paid_invoice(pool: asyncpg.Pool, cfg: PaymentsConfig, payment_hash: str, received_msat: int) -> bool:
    """Lightning paid one of this node's invoices: credit it (the deposit watcher's step, and how the tests
    fund wallets). True if this call credited it; a repeat is False and moves nothing."""
    async with pool.acquire() as conn:
        inv = await store.get_invoice_by_hash(conn, payment_hash)
        if inv is None:
            raise BadRequest(f"No invoice with payment hash {payment_hash[:16]}… on this node.", "")
        await wallets(conn, [inv.agent_id])
        receipts = Receipts()
        async with conn.transaction():
            settled = await settle_invoice(conn, cfg, inv, from_account=CLEARING_ACCOUNT, received_msat=received_msat,
                                           receipts=receipts)
        await receipts.publish(conn)
        return settled is not None


async def check_pending_invoices(pool: asyncpg.Pool, cfg: PaymentsConfig, backend: LightningBackend, batch: int = 200) -> int:
    """One pass of the deposit watcher: ask the backend about every pending invoice; credit the paid ones.
    State lives in PostgreSQL, so a restarted node picks up where it stopped. Returns how many it credited.

    It also asks about agent invoices made at the backend and settled inside the node: someone outside can still
    pay the same bolt11 (no backend here can cancel an invoice), and that money arrives in the node's Lightning
    wallet, so the payee is credited with it as a second payment, once (see _credit_outside_payment)."""
    async with pool.acquire() as conn:
        await store.expire_internal_invoices(conn)
        pending = await store.pending_backend_invoices(conn, batch)
    credited = 0
    try:
        async for inv, status in _statuses(backend, pending):
            if status is None:  # the backend lost it (a reset): keep asking until it has expired, then stop
                if inv.expires_at <= dt.datetime.now(dt.timezone.utc):
                    async with pool.acquire() as conn:
                        await store.mark_invoice_expired(conn, inv.id)
            elif status.state == "paid":
                credited += await credit_paid_invoice(pool, cfg, inv.payment_hash, status.amount_msat or inv.amount_msat)
            elif status.state == "expired":
                async with pool.acquire() as conn:
                    await store.mark_invoice_expired(conn, inv.id)
        async with pool.acquire() as conn:
            settled_inside = await store.settled_inside_backend_invoices(conn, batch)
        async for inv, status in _statuses(backend, settled_inside):
            if status is not None and status.state == "paid":
                credited += await _credit_outside_payment(pool, cfg, inv, status.amount_msat or inv.amount_msat)
    except BackendUnavailable as exc:  # the next pass asks again
        log.warning("deposit watcher: backend unavailable: %s", exc.error)
    return credited


async def _statuses(backend: LightningBackend, invoices: list[Invoice]) -> AsyncIterator[tuple[Invoice, InvoiceStatus | None]]:
    """Each invoice with what the backend says of it (None: the backend does not know it); BackendUnavailable
    ends the pass."""
    for inv in invoices:
        try:
            status: InvoiceStatus | None = await backend.invoice_status(inv.payment_hash)
        except UnknownInvoice:
            status = None
        yield inv, status


async def _credit_outside_payment(pool: asyncpg.Pool, cfg: PaymentsConfig, inv: Invoice, received_msat: int) -> int:
    """Credit the second payment of an invoice settled inside, exactly once: the row lock, `outside_tx IS NULL`
    and the unique ledger source `invoice:<hash>:outside` each make sure. 1 if this call credited it."""
    async with pool.acquire() as conn:
        await wallets(conn, [inv.agent_id])
        receipts = Receipts()
        async with conn.transaction():
            current = await store.get_invoice_by_hash(conn, inv.payment_hash, lock=True)
            if current is None or current.outside_tx is not None:
                return 0
            payee_msat, fee_msat = split_fee(received_msat, cfg.fee_percent)
            wallet = await ledger_store.wallet_account_id(conn, inv.agent_id)
            if wallet is None:
                raise RuntimeError("the payee's wallet must exist (ledger.wallets) before the transaction")
            posted = await move(
                conn, inv.purpose, [(CLEARING_ACCOUNT, -received_msat), (wallet, payee_msat), (FEES_ACCOUNT, fee_msat)],
                source=f"invoice:{inv.payment_hash}:outside", memo=inv.memo,
                data={"invoice_id": str(inv.id), "payee_msat": payee_msat, "fee_msat": fee_msat, "via": "lightning",
                      "second_payment": True},
                audit_actor="lightning",
            )
            if not await store.mark_paid_outside(conn, inv.id, posted.id):
                raise RuntimeError("invoice was locked with outside_tx NULL but did not take the credit")
            await receipts.add(conn, inv.agent_id, {
                "payment_type": inv.purpose, "direction": "in", "amount_msat": payee_msat, "fee_msat": fee_msat,
                "invoice_id": str(inv.id), "payment_hash": inv.payment_hash, "from": None,
                "transaction_id": posted.id, "second_payment": True,
            })
        await receipts.publish(conn)
        log.warning("invoice %s was paid inside the node and again at the backend; credited the second payment "
                    "(%d msat) to its payee", inv.payment_hash[:16], received_msat)
        return 1


async def prune_idempotency(pool: asyncpg.Pool, cfg: PaymentsConfig) -> int:
    """Idempotency keys are kept [payments] idempotency_hours; a repeat after that runs again. Internal
    invoices past their expiry are marked expired in the same hourly pass (paying them was refused already), and
    so are payments that waited 24 h for their owner's approval (their agents are told)."""
    async with pool.acquire() as conn:
        await store.expire_internal_invoices(conn)
        await spending.expire(conn)
        return await idempotency_store.prune_keys(conn, cfg.idempotency_hours)
