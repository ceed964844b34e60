"""SQL for owners' spending limits, what an agent spent in a window, and the payments waiting for approval."""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

# Movements that take money out of a wallet, and the refunds that give part of one back (a failed withdrawal).
OUT_KINDS = ["invoice", "tip", "bounty_escrow", "withdrawal_reserve"]
BACK_KINDS = ["withdrawal_refund", "withdrawal_fee_refund"]


@dataclass(frozen=True, slots=True)
class Approval:
    id: uuid.UUID
    agent_id: uuid.UUID
    kind: str  # pay | withdraw | tip | bounty
    args: dict[str, Any]
    amount_msat: int
    limit_msat: int
    spent_msat: int
    status: str  # pending | approved | rejected | expired | failed
    reason: str
    result: dict[str, Any] | None
    decided_by: str | None
    created_at: dt.datetime
    expires_at: dt.datetime
    decided_at: dt.datetime | None


_COLS = ", ".join(Approval.__slots__)  # type: ignore[attr-defined]


async def get_limit(conn: asyncpg.Connection, agent_id: uuid.UUID) -> int | None:
    return await conn.fetchval("SELECT daily_limit_msat FROM agent_spending_limits WHERE agent_id = $1", agent_id)


async def set_limit(conn: asyncpg.Connection, agent_id: uuid.UUID, limit_msat: int | None, set_by: str) -> None:
    if limit_msat is None:
        await conn.execute("DELETE FROM agent_spending_limits WHERE agent_id = $1", agent_id)
        return
    await conn.execute(
        """INSERT INTO agent_spending_limits (agent_id, daily_limit_msat, set_by) VALUES ($1, $2, $3)
           ON CONFLICT (agent_id) DO UPDATE SET daily_limit_msat = $2, set_by = $3, updated_at = now()""",
        agent_id, limit_msat, set_by,
    )


async def spent_since(conn: asyncpg.Connection, account_id: int, since: dt.datetime) -> int:
    """msat that left the wallet since `since` (outgoing movements less withdrawal refunds), never below 0."""
    return await conn.fetchval(
        """SELECT greatest(0, coalesce(sum(CASE WHEN t.kind = ANY($3::text[]) AND e.amount_msat < 0 THEN -e.amount_msat
                                               WHEN t.kind = ANY($4::text[]) THEN -e.amount_msat ELSE 0 END), 0))::bigint
             FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id
            WHERE e.account_id = $1 AND t.created_at > $2""",
        account_id, since, OUT_KINDS, BACK_KINDS,
    )


async def insert_approval(
    conn: asyncpg.Connection, *, agent_id: uuid.UUID, kind: str, args: dict[str, Any], amount_msat: int,
    limit_msat: int, spent_msat: int, expires_at: dt.datetime,
) -> Approval:
    row = await conn.fetchrow(
        f"""INSERT INTO spending_approvals (agent_id, kind, args, amount_msat, limit_msat, spent_msat, expires_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_COLS}""",
        agent_id, kind, args, amount_msat, limit_msat, spent_msat, expires_at,
    )
    return Approval(**dict(row))


async def get_approval(conn: asyncpg.Connection, approval_id: uuid.UUID, *, lock: bool = False) -> Approval | None:
    row = await conn.fetchrow(
        f"SELECT {_COLS} FROM spending_approvals WHERE id = $1" + (" FOR UPDATE" if lock else ""), approval_id
    )
    return Approval(**dict(row)) if row else None


async def decide_approval(
    conn: asyncpg.Connection, approval_id: uuid.UUID, status: str, decided_by: str, *, reason: str = "",
    result: dict[str, Any] | None = None, only_pending: bool = True,
) -> bool:
    """Move a pending approval to status (an approved one may be given its result later: only_pending=False)."""
    return bool(await conn.fetchval(
        """UPDATE spending_approvals SET status = $2, decided_by = coalesce(decided_by, $3), reason = $4,
                  result = coalesce($5, result), decided_at = coalesce(decided_at, now())
            WHERE id = $1 AND (status = 'pending' OR NOT $6) RETURNING true""",
        approval_id, status, decided_by, reason, result, only_pending,
    ))


async def list_approvals(
    conn: asyncpg.Connection, agent_id: uuid.UUID, *, limit: int, status: str | None = None,
    before: tuple[dt.datetime, uuid.UUID] | None = None,
) -> list[Approval]:
    """Newest first; keyset paging on (created_at, id)."""
    rows = await conn.fetch(
        f"""SELECT {_COLS} FROM spending_approvals
             WHERE agent_id = $1 AND ($2::text IS NULL OR status = $2)
               AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
             ORDER BY created_at DESC, id DESC LIMIT $5""",
        agent_id, status, before[0] if before else None, before[1] if before else None, limit,
    )
    return [Approval(**dict(r)) for r in rows]


async def expire_approvals(conn: asyncpg.Connection, limit: int = 500) -> list[Approval]:
    """Pending approvals past their expiry become expired; returns them."""
    rows = await conn.fetch(
        f"""UPDATE spending_approvals SET status = 'expired', decided_by = 'system', decided_at = now()
             WHERE id IN (SELECT id FROM spending_approvals WHERE status = 'pending' AND expires_at <= now()
                           ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)
            RETURNING {_COLS}""",
        limit,
    )
    return [Approval(**dict(r)) for r in rows]


@dataclass(frozen=True, slots=True)
class DayDelta:
    day: dt.date
    amount_msat: int


async def daily_deltas(conn: asyncpg.Connection, account_id: int, since: dt.datetime) -> list[DayDelta]:
    """The net movement of an account per UTC day since `since`, oldest first (days without one are missing)."""
    rows = await conn.fetch(
        """SELECT (t.created_at AT TIME ZONE 'UTC')::date AS day, sum(e.amount_msat)::bigint AS amount_msat
             FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id
            WHERE e.account_id = $1 AND t.created_at >= $2 GROUP BY 1 ORDER BY 1""",
        account_id, since,
    )
    return [DayDelta(r["day"], r["amount_msat"]) for r in rows]
