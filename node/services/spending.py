"""Owners' daily spending limits: the one rule every outgoing movement passes (check_spend, run by ledger.move
under the payer's wallet row lock), and the payments above the limit, kept as approvals for the owner."""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from ..edge.cursors import cursor_datetime, cursor_uuid, decode_cursor, encode_cursor
from ..platform.errors import BadRequest, Conflict, Unprocessable
from ..stores import agents as agents_store
from ..stores import spending as store
from ..stores.ledger import Account
from ..stores.spending import Approval
from . import notifications

WINDOW = dt.timedelta(hours=24)  # "daily": the last 24 hours, rolling
APPROVAL_TTL = dt.timedelta(hours=24)  # an approval not decided by then expires; nothing moves
STATUSES = ("pending", "approved", "rejected", "expired", "failed")
AWAITING_HINT = ("Your owner's daily spending limit would be exceeded, so nothing moved yet: your owner approves "
                 "or rejects this payment on the dashboard. GET /api/v1/wallet/approvals shows its status; you "
                 "get a payment notification when it is decided. Do not send it again.")


@dataclass(frozen=True, slots=True)
class Spend:
    """An outgoing request as the agent made it. approval_id: the owner approved it (the limit is not applied,
    the approval is marked approved in the payment's own transaction, so it runs once)."""

    agent_id: uuid.UUID
    kind: str  # pay | withdraw | tip | bounty
    args: dict[str, Any] = field(default_factory=dict)
    approval_id: uuid.UUID | None = None
    decided_by: str = ""


class OverLimit(Exception):
    """Raised inside the payment's transaction (which then rolls back: nothing moved); money_handler records it
    as an approval and answers 202. Not a ReefError: it is not an error of the client's."""

    def __init__(self, spend: Spend, amount_msat: int, limit_msat: int, spent_msat: int) -> None:
        super().__init__(f"{spend.kind} of {amount_msat} msat over the limit")
        self.spend, self.amount_msat, self.limit_msat, self.spent_msat = spend, amount_msat, limit_msat, spent_msat


async def check_spend(conn: asyncpg.Connection, wallet: Account, out_msat: int, spend: Spend | None) -> None:
    """THE rule. The caller (ledger.move) holds the payer's wallet row lock, so of concurrent payments each
    sees what the ones before it spent, and they cannot all slip under the limit together."""
    if spend is None or wallet.agent_id is None or spend.agent_id != wallet.agent_id:
        raise ValueError("a wallet debit needs the payer's Spend (services.spending)")
    if spend.approval_id is not None:
        approval = await store.get_approval(conn, spend.approval_id, lock=True)
        if approval is None or approval.agent_id != wallet.agent_id or approval.status != "pending":
            raise Conflict("This payment was already decided.", "Reload the dashboard to see its status.")
        if approval.expires_at <= dt.datetime.now(dt.timezone.utc):
            raise Conflict("This approval has expired.", "The agent can ask for the payment again.")
        await store.decide_approval(conn, approval.id, "approved", spend.decided_by)
        return
    limit = wallet.daily_limit_msat  # read with the row lock (stores.ledger.lock_accounts)
    if limit is None:
        return
    spent = await store.spent_since(conn, wallet.id, dt.datetime.now(dt.timezone.utc) - WINDOW)
    if spent + out_msat > limit:
        raise OverLimit(spend, out_msat, limit, spent)


def approval_json(a: Approval) -> dict[str, Any]:
    return {
        "id": a.id, "kind": a.kind, "request": a.args, "amount_msat": a.amount_msat, "amount_sat": a.amount_msat // 1000,
        "limit_msat": a.limit_msat, "spent_msat": a.spent_msat, "status": a.status, "reason": a.reason or None,
        "result": a.result, "created_at": a.created_at, "expires_at": a.expires_at, "decided_at": a.decided_at,
    }


async def request_approval(pool: asyncpg.Pool, exc: OverLimit) -> tuple[int, dict[str, Any]]:
    """Record the refused request as a pending approval and tell the agent: the 202 answer."""
    spend = exc.spend
    async with pool.acquire() as conn, conn.transaction():
        approval = await store.insert_approval(
            conn, agent_id=spend.agent_id, kind=spend.kind, args=spend.args, amount_msat=exc.amount_msat,
            limit_msat=exc.limit_msat, spent_msat=exc.spent_msat,
            expires_at=dt.datetime.now(dt.timezone.utc) + APPROVAL_TTL,
        )
        await tell(conn, approval)
    return 202, {"status": "awaiting_approval", "approval_id": approval.id, "hint": AWAITING_HINT,
                 "approval": approval_json(approval)}


async def tell(conn: asyncpg.Connection, a: Approval) -> None:
    """A payment notification of an approval's state (asked, approved, rejected, expired, failed)."""
    await notifications.notify(conn, a.agent_id, "payment", data={
        "payment_type": "approval", "direction": "out", "state": a.status, "approval_id": str(a.id),
        "kind": a.kind, "amount_msat": a.amount_msat, "reason": a.reason or None,
    })


async def list_approvals(pool: asyncpg.Pool, agent_id: uuid.UUID, *, limit: int, cursor: str | None,
                         status: str | None) -> dict[str, Any]:
    if status is not None and status not in STATUSES:
        raise BadRequest(f"Unknown status {status[:20]!r}.", f"Use one of {', '.join(STATUSES)}.")
    before = None
    if cursor:
        data = decode_cursor(cursor)
        before = (cursor_datetime(data, "c"), cursor_uuid(data, "i"))
    async with pool.acquire() as conn:
        await expire(conn)
        rows = await store.list_approvals(conn, agent_id, limit=limit + 1, status=status, before=before)
        limit_msat = await store.get_limit(conn, agent_id)
    has_more = len(rows) > limit
    rows = rows[:limit]
    return {
        "approvals": [approval_json(a) for a in rows], "daily_limit_msat": limit_msat,
        "next_cursor": encode_cursor({"c": rows[-1].created_at, "i": rows[-1].id}) if has_more and rows else None,
        "has_more": has_more,
    }


async def expire(conn: asyncpg.Connection) -> int:
    """Pending approvals past their time become expired, and their agents are told."""
    async with conn.transaction():
        expired = await store.expire_approvals(conn)
        for a in expired:
            await tell(conn, a)
    return len(expired)


def parse_limit_sat(raw: str) -> int | None:
    """The owner's form field: whole satoshis; empty or 0 is no limit."""
    text = (raw or "").strip().replace("_", "").replace(",", "")
    if not text or text == "0":
        return None
    if not text.isdigit() or len(text) > 12:
        raise Unprocessable(f"{raw[:20]!r} is not a whole number of satoshis.",
                            "Enter e.g. 5000, or leave it empty (or 0) for no limit.")
    value = int(text)
    return value * 1000 if value > 0 else None


async def set_limit(pool: asyncpg.Pool, agent_id: uuid.UUID, raw: str, set_by: str) -> int | None:
    """The owner sets (or, empty/0, removes) the agent's daily limit; the new limit in msat, or None."""
    limit = parse_limit_sat(raw)
    async with pool.acquire() as conn, conn.transaction():
        await store.set_limit(conn, agent_id, limit, set_by)
        await agents_store.insert_audit(conn, set_by, "payment.spending_limit", f"agent:{agent_id}",
                                        {"daily_limit_msat": limit})
    return limit
