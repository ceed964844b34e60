"""Paying invoices: an invoice of this node settles internally at once; any other goes out over Lightning
(withdrawals). Outgoing payments reserve first, pay second, and a reconciler finishes what a restart cut off.

Never paying twice: pay_invoice is only called for a row this process moved reserved -> in_flight in a
committed transaction; a row found in_flight later is only asked about (payment_status), never paid again.
"""
from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any, Mapping

import asyncpg

from ..adapters.lightning.base import BackendUnavailable, LightningBackend, PaymentOutcome, PaymentsDisabled
from ..adapters.lightning.invoice import DecodedInvoice, InvalidInvoice, decode
from ..adapters.lightning.lnurl import AddressUnreachable, Fetcher, invoice_for_address
from ..edge.validation import get_str
from ..platform.config_types import PaymentsConfig
from ..platform.errors import Conflict, Unprocessable
from ..stores import ledger as ledger_store
from ..stores import payments as store
from ..stores.agents import Agent
from ..stores.payments import Invoice, Withdrawal
from .ledger import CLEARING_ACCOUNT, check_amount_msat, max_routing_fee_msat, move, parse_amount_sat, wallets
from .spending import Spend
from .wallet import Receipts, sats, settle_invoice, tell_payment

log = logging.getLogger(__name__)


def _decode(body: Mapping[str, Any], cfg: PaymentsConfig) -> DecodedInvoice:
    text = get_str(body, "bolt11", required=True, max_len=4096) or ""
    inv = decode(text, network=cfg.network)
    if inv.amount_msat is None:
        raise InvalidInvoice("The invoice has no amount.", "Ask the payee for an invoice with an amount.")
    if inv.expired():
        raise InvalidInvoice(f"The invoice expired at {inv.expires_at.isoformat()}.", "Ask the payee for a new invoice.")
    check_amount_msat(inv.amount_msat, cfg, "The invoice's amount")
    return inv


def payment_json(**fields: Any) -> dict[str, Any]:
    if "amount_msat" in fields:
        fields["amount_sat"] = sats(fields["amount_msat"])
    return fields


async def pay(
    pool: asyncpg.Pool, cfg: PaymentsConfig, backend: LightningBackend, payer: Agent, body: Mapping[str, Any],
    *, fetcher: Fetcher | None = None, https: bool = True, spend: Spend | None = None,
) -> tuple[int, dict[str, Any]]:
    """POST /payments/pay: (status, answer). This node's invoices settle internally; others go out. With
    {to: name@host, amount_sat} the invoice comes from the address's LNURL-pay server first (this node's own
    addresses too, which then settle internally). spend: the owner approved this request (services.approvals)."""
    if body.get("to") is not None and body.get("bolt11") is None:
        amount = parse_amount_sat(body, cfg)
        spend = spend or Spend(payer.id, "pay", {"to": str(body["to"])[:320], "amount_sat": amount // 1000})
        if fetcher is None:
            raise Unprocessable("Lightning Addresses cannot be paid from here.", "Send bolt11 instead.")
        bolt11 = await invoice_for_address(fetcher, body["to"], amount, https=https)
        decoded = _decode({"bolt11": bolt11}, cfg)
        if decoded.amount_msat != amount:
            raise AddressUnreachable(f"{body['to']} answered an invoice for another amount ({decoded.amount_msat} msat).",
                                     "Nothing was paid; the payee's server is at fault.")
    else:
        decoded = _decode(body, cfg)
        spend = spend or Spend(payer.id, "pay", {"bolt11": decoded.bolt11})
    async with pool.acquire() as conn:
        local = await store.get_invoice_by_hash(conn, decoded.payment_hash)
    if local is not None:
        return 200, await pay_internal(pool, cfg, payer, local, spend)
    return await _withdraw(pool, cfg, backend, payer, decoded, spend)


async def pay_internal(pool: asyncpg.Pool, cfg: PaymentsConfig, payer: Agent, inv: Invoice,
                       spend: Spend | None = None) -> dict[str, Any]:
    """Payer -100 %, payee +(100 - fee_percent) %, platform +fee_percent %, in one transaction."""
    if inv.agent_id == payer.id:
        raise Unprocessable("This invoice pays you: you cannot pay yourself.", "Send the invoice to the agent who owes you.")
    if inv.purpose == "deposit":
        raise Unprocessable("This invoice is a deposit into another agent's wallet.",
                            "Pay invoices made with POST /api/v1/agents/{name}/invoice.")
    spend = spend or Spend(payer.id, "pay", {"bolt11": inv.bolt11})
    receipts = Receipts()
    async with pool.acquire() as conn:
        for _ in range(2):
            async with conn.transaction():
                current = await store.get_invoice_by_hash(conn, inv.payment_hash, lock=True)
                if current is not None and current.state == "pending" and current.expires_at <= dt.datetime.now(dt.timezone.utc):
                    raise InvalidInvoice("The invoice has expired.", "Ask the payee for a new invoice.")
                # The two wallets, locked in id order; missing on a first payment: made outside, then again.
                held = await ledger_store.lock_wallets(conn, [payer.id, inv.agent_id])
                if len(held) == 2 and current is not None:
                    accounts = {agent: account.id for agent, account in held.items()}
                    settled = await settle_invoice(
                        conn, cfg, current, from_account=accounts[payer.id], received_msat=current.amount_msat,
                        receipts=receipts, payer=payer, payee_account=accounts[inv.agent_id], locked=True,
                        accounts={account.id: account for account in held.values()}, spend=spend)
                    if settled is None:
                        raise Conflict("This invoice was already paid." if current.state == "paid"
                                       else "This invoice can no longer be paid.", "Ask the payee for a new invoice.")
                    break
                if current is None:
                    raise Conflict("This invoice can no longer be paid.", "Ask the payee for a new invoice.")
            await wallets(conn, [payer.id, inv.agent_id])
        else:
            raise RuntimeError("wallet accounts could not be made")
        await receipts.publish(conn)
    balance = settled.balances[accounts[payer.id]]
    return {"payment": payment_json(
        kind="internal", state="succeeded", invoice_id=inv.id, payment_hash=inv.payment_hash,
        amount_msat=inv.amount_msat, to=current.agent_name, transaction_id=settled.transaction_id,
        payee_msat=settled.payee_msat, fee_msat=settled.fee_msat,
    ), "balance_msat": balance, "balance_sat": sats(balance)}


def _require_backend(backend: LightningBackend) -> None:
    if backend.name == "none":
        raise PaymentsDisabled(
            "This node has no Lightning backend, so no payment can leave it.",
            'The admin sets [payments] backend = "lnbits" in the node\'s TOML to enable withdrawals and deposits; '
            "invoices of this node's agents are still paid with POST /api/v1/payments/pay.",
        )


async def withdraw(
    pool: asyncpg.Pool, cfg: PaymentsConfig, backend: LightningBackend, agent: Agent, body: Mapping[str, Any],
    *, spend: Spend | None = None,
) -> tuple[int, dict[str, Any]]:
    """POST /wallet/withdraw {bolt11}: pay a Lightning invoice out of the wallet (spend: approved)."""
    _require_backend(backend)
    decoded = _decode(body, cfg)
    async with pool.acquire() as conn:
        local = await store.get_invoice_by_hash(conn, decoded.payment_hash)
    if local is not None:
        raise Unprocessable("This invoice was issued by this node.", "Pay it with POST /api/v1/payments/pay instead.")
    return await _withdraw(pool, cfg, backend, agent, decoded, spend or Spend(agent.id, "withdraw", {"bolt11": decoded.bolt11}))


async def _withdraw(
    pool: asyncpg.Pool, cfg: PaymentsConfig, backend: LightningBackend, agent: Agent, inv: DecodedInvoice,
    spend: Spend,
) -> tuple[int, dict[str, Any]]:
    _require_backend(backend)
    amount = inv.amount_msat or 0
    max_fee = max_routing_fee_msat(amount, cfg)
    wd_id = uuid.uuid4()
    async with pool.acquire() as conn:
        accounts = await wallets(conn, [agent.id])
        async with conn.transaction():
            if await store.live_withdrawal_for(conn, inv.payment_hash) is not None:
                raise Conflict("This invoice is already paid or being paid from this node.",
                               "GET /api/v1/wallet/transactions shows your payments; ask the payee for a new invoice.")
            posted = await move(
                conn, "withdrawal_reserve", [(accounts[agent.id], -(amount + max_fee)), (CLEARING_ACCOUNT, amount + max_fee)],
                source=f"withdrawal:{wd_id}:reserve", memo=inv.description[:200],
                data={"withdrawal_id": str(wd_id), "amount_msat": amount, "max_fee_msat": max_fee,
                      "payment_hash": inv.payment_hash},
                audit_actor=f"agent:{agent.id}", spend=spend,
            )
            try:
                await store.insert_withdrawal(
                    conn, withdrawal_id=wd_id, agent_id=agent.id, bolt11=inv.bolt11, payment_hash=inv.payment_hash,
                    amount_msat=amount, max_fee_msat=max_fee, reserve_tx=posted.id,
                )
            except asyncpg.UniqueViolationError:
                raise Conflict("This invoice is already being paid from this node.", "Wait for that payment.") from None
    wd = await send_withdrawal(pool, backend, wd_id)
    status = {"succeeded": 200, "failed": 200}.get(wd.state, 202)
    return status, {"payment": withdrawal_json(wd), "balance_msat": await _balance(pool, agent.id)}


async def _balance(pool: asyncpg.Pool, agent_id: uuid.UUID) -> int:
    async with pool.acquire() as conn:
        return await ledger_store.wallet_balance(conn, agent_id)


def withdrawal_json(wd: Withdrawal) -> dict[str, Any]:
    return payment_json(
        kind="lightning", id=wd.id, state=wd.state, payment_hash=wd.payment_hash, amount_msat=wd.amount_msat,
        max_fee_msat=wd.max_fee_msat, fee_msat=wd.fee_msat, reason=wd.reason or None, preimage=wd.preimage,
        created_at=wd.created_at,
    )


async def send_withdrawal(pool: asyncpg.Pool, backend: LightningBackend, wd_id: uuid.UUID) -> Withdrawal:
    """Take the reserved row (reserved -> in_flight, committed), then ask the backend to pay it."""
    async with pool.acquire() as conn:
        taken = await store.move_withdrawal(conn, wd_id, "reserved", "in_flight")
        wd = await store.get_withdrawal(conn, wd_id)
    assert wd is not None
    if taken:
        try:
            outcome: PaymentOutcome | None = await backend.pay_invoice(wd.bolt11, wd.max_fee_msat)
        except BackendUnavailable as exc:
            log.warning("withdrawal %s: backend unavailable while paying (%s); the reconciler will ask", wd_id, exc.error)
            outcome = None
        if outcome is not None and await finish_withdrawal(pool, wd_id, outcome, ("in_flight",)):
            async with pool.acquire() as conn:
                wd = await store.get_withdrawal(conn, wd_id)
            assert wd is not None
    return wd


async def finish_withdrawal(pool: asyncpg.Pool, wd_id: uuid.UUID, outcome: PaymentOutcome, states: tuple[str, ...]) -> bool:
    """Apply the backend's answer to a row in one of `states`: succeeded refunds the unused routing fee,
    failed (or unknown: it never left) refunds everything; pending changes nothing. True if it changed."""
    if outcome.state == "pending":
        return False
    async with pool.acquire() as conn, conn.transaction():
        wd = await store.get_withdrawal(conn, wd_id, lock=True)
        if wd is None or wd.state not in states:
            return False
        wallet = await ledger_store.wallet_account_id(conn, wd.agent_id)
        assert wallet is not None
        if outcome.state == "succeeded":
            fee = min(max(outcome.fee_msat, 0), wd.max_fee_msat)
            if outcome.fee_msat > wd.max_fee_msat:
                log.warning("withdrawal %s: backend reports fee %s above the reserved %s", wd.id, outcome.fee_msat, wd.max_fee_msat)
            refund, state, reason = wd.max_fee_msat - fee, "succeeded", ""
        else:
            fee, refund, state = None, wd.amount_msat + wd.max_fee_msat, "failed"
            reason = outcome.reason or ("the backend has no record of the payment" if outcome.state == "unknown" else "failed")
        settle = None
        if refund > 0:
            settle = (await move(
                conn, "withdrawal_refund" if state == "failed" else "withdrawal_fee_refund",
                [(CLEARING_ACCOUNT, -refund), (wallet, refund)], source=f"withdrawal:{wd.id}:settle",
                data={"withdrawal_id": str(wd.id), "fee_msat": fee, "reason": reason},
            )).id
        await store.finish_withdrawal(conn, wd.id, state=state, fee_msat=fee, reason=reason,
                                      preimage=outcome.preimage, settle_tx=settle)
        await tell_payment(conn, wd.agent_id, {
            "payment_type": "withdrawal", "direction": "out", "state": state, "amount_msat": wd.amount_msat,
            "fee_msat": fee, "refunded_msat": refund, "withdrawal_id": str(wd.id), "reason": reason or None,
        })
    return True


async def reconcile_withdrawals(
    pool: asyncpg.Pool, cfg: PaymentsConfig, backend: LightningBackend, *, older_than_seconds: float | None = None
) -> int:
    """Finish rows a crash (or a lost answer) left open: reserved ones never reached the backend, so they are
    refunded; in_flight ones are asked about and finished as the backend says. Returns how many changed."""
    if backend.name == "none":
        return 0
    age = cfg.reconcile_after_seconds if older_than_seconds is None else older_than_seconds
    async with pool.acquire() as conn:
        rows = await store.open_withdrawals(conn, dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=age), 200)
    changed = 0
    for wd in rows:
        if wd.state == "reserved":
            outcome = PaymentOutcome("failed", reason="not sent before the node stopped")
        else:
            try:
                outcome = await backend.payment_status(wd.payment_hash)
            except BackendUnavailable as exc:
                log.warning("reconciler: backend unavailable: %s", exc.error)
                break
        changed += await finish_withdrawal(pool, wd.id, outcome, (wd.state,))
    return changed
