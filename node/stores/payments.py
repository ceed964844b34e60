"""SQL for the invoices this node issued (deposits, invoices payable to an agent) and outgoing payments."""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class Invoice:
    id: uuid.UUID
    agent_id: uuid.UUID
    purpose: str  # deposit | invoice
    backend: str  # "internal" or the backend's name
    payment_hash: str
    bolt11: str
    amount_msat: int
    memo: str
    state: str  # pending | paid | expired
    expires_at: dt.datetime
    created_at: dt.datetime
    paid_at: dt.datetime | None
    paid_by: uuid.UUID | None
    received_msat: int | None
    transaction_id: int | None
    outside_tx: int | None  # settled inside, then also paid at the backend: the credit of that second payment
    agent_name: str  # the payee's name


@dataclass(frozen=True, slots=True)
class Withdrawal:
    id: uuid.UUID
    agent_id: uuid.UUID
    bolt11: str
    payment_hash: str
    amount_msat: int
    max_fee_msat: int
    fee_msat: int | None
    state: str  # reserved | in_flight | succeeded | failed
    reason: str
    preimage: str | None
    reserve_tx: int
    settle_tx: int | None
    created_at: dt.datetime
    updated_at: dt.datetime


_INV = ", ".join(c for c in Invoice.__slots__ if c != "agent_name") + (  # type: ignore[attr-defined]
    ", (SELECT a.name FROM agents a WHERE a.id = payment_invoices.agent_id) AS agent_name")
_WD = ", ".join(Withdrawal.__slots__)  # type: ignore[attr-defined]


async def insert_invoice(
    conn: asyncpg.Connection, *, agent_id: uuid.UUID, purpose: str, backend: str, payment_hash: str, bolt11: str,
    amount_msat: int, memo: str, expires_at: dt.datetime,
) -> Invoice:
    row = await conn.fetchrow(
        f"""INSERT INTO payment_invoices (agent_id, purpose, backend, payment_hash, bolt11, amount_msat, memo, expires_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {_INV}""",
        agent_id, purpose, backend, payment_hash, bolt11, amount_msat, memo, expires_at,
    )
    return Invoice(**dict(row))


async def get_invoice_by_hash(conn: asyncpg.Connection, payment_hash: str, *, lock: bool = False) -> Invoice | None:
    row = await conn.fetchrow(
        f"SELECT {_INV} FROM payment_invoices WHERE payment_hash = $1" + (" FOR UPDATE" if lock else ""),
        payment_hash.lower(),
    )
    return Invoice(**dict(row)) if row else None


async def mark_invoice_expired(conn: asyncpg.Connection, invoice_id: uuid.UUID) -> bool:
    return bool(await conn.fetchval(
        "UPDATE payment_invoices SET state = 'expired' WHERE id = $1 AND state = 'pending' RETURNING true", invoice_id
    ))


async def expire_internal_invoices(conn: asyncpg.Connection) -> int:
    """Internal invoices past their expiry: nobody can pay them any more."""
    status = await conn.execute(
        "UPDATE payment_invoices SET state = 'expired' WHERE state = 'pending' AND backend = 'internal' "
        "AND expires_at <= now()"
    )
    return int(status.split()[-1])


async def pending_backend_invoices(conn: asyncpg.Connection, limit: int) -> list[Invoice]:
    """Invoices of the Lightning backend still waiting for their payment, oldest first."""
    rows = await conn.fetch(
        f"""SELECT {_INV} FROM payment_invoices WHERE state = 'pending' AND backend <> 'internal'
             ORDER BY created_at LIMIT $1""",
        limit,
    )
    return [Invoice(**dict(r)) for r in rows]


async def settled_inside_backend_invoices(conn: asyncpg.Connection, limit: int) -> list[Invoice]:
    """Backend invoices an agent of this node paid internally: someone outside may still pay the same bolt11
    at the backend until it expires (asked about until a day past expiry, in case the news comes late)."""
    rows = await conn.fetch(
        f"""SELECT {_INV} FROM payment_invoices
             WHERE state = 'paid' AND paid_by IS NOT NULL AND backend <> 'internal' AND outside_tx IS NULL
               AND expires_at > now() - interval '1 day'
             ORDER BY expires_at LIMIT $1""",
        limit,
    )
    return [Invoice(**dict(r)) for r in rows]


async def mark_paid_outside(conn: asyncpg.Connection, invoice_id: uuid.UUID, transaction_id: int) -> bool:
    return bool(await conn.fetchval(
        "UPDATE payment_invoices SET outside_tx = $2 WHERE id = $1 AND outside_tx IS NULL RETURNING true",
        invoice_id, transaction_id,
    ))


async def pending_deposits_msat(conn: asyncpg.Connection, agent_id: uuid.UUID) -> int:
    return await conn.fetchval(
        """SELECT coalesce(sum(amount_msat), 0)::bigint FROM payment_invoices
            WHERE agent_id = $1 AND purpose = 'deposit' AND state = 'pending' AND expires_at > now()""",
        agent_id,
    )


async def insert_withdrawal(
    conn: asyncpg.Connection, *, withdrawal_id: uuid.UUID, agent_id: uuid.UUID, bolt11: str, payment_hash: str,
    amount_msat: int, max_fee_msat: int, reserve_tx: int,
) -> Withdrawal:
    row = await conn.fetchrow(
        f"""INSERT INTO payment_withdrawals (id, agent_id, bolt11, payment_hash, amount_msat, max_fee_msat, reserve_tx)
            VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_WD}""",
        withdrawal_id, agent_id, bolt11, payment_hash, amount_msat, max_fee_msat, reserve_tx,
    )
    return Withdrawal(**dict(row))


async def live_withdrawal_for(conn: asyncpg.Connection, payment_hash: str) -> Withdrawal | None:
    row = await conn.fetchrow(
        f"SELECT {_WD} FROM payment_withdrawals WHERE payment_hash = $1 AND state <> 'failed'", payment_hash
    )
    return Withdrawal(**dict(row)) if row else None


async def get_withdrawal(conn: asyncpg.Connection, withdrawal_id: uuid.UUID, *, lock: bool = False) -> Withdrawal | None:
    row = await conn.fetchrow(
        f"SELECT {_WD} FROM payment_withdrawals WHERE id = $1" + (" FOR UPDATE" if lock else ""), withdrawal_id
    )
    return Withdrawal(**dict(row)) if row else None


async def move_withdrawal(conn: asyncpg.Connection, withdrawal_id: uuid.UUID, from_state: str, to_state: str) -> bool:
    """One state step, only from the state the caller saw (two workers cannot both take a row)."""
    return bool(await conn.fetchval(
        """UPDATE payment_withdrawals SET state = $3, updated_at = now() WHERE id = $1 AND state = $2 RETURNING true""",
        withdrawal_id, from_state, to_state,
    ))


async def finish_withdrawal(
    conn: asyncpg.Connection, withdrawal_id: uuid.UUID, *, state: str, fee_msat: int | None, reason: str,
    preimage: str | None, settle_tx: int | None,
) -> None:
    await conn.execute(
        """UPDATE payment_withdrawals SET state = $2, fee_msat = $3, reason = $4, preimage = $5, settle_tx = $6,
                  updated_at = now() WHERE id = $1""",
        withdrawal_id, state, fee_msat, reason, preimage, settle_tx,
    )


async def open_withdrawals(conn: asyncpg.Connection, older_than: dt.datetime, limit: int) -> list[Withdrawal]:
    """Reserved or in-flight rows untouched since older_than: the reconciler's work."""
    rows = await conn.fetch(
        f"""SELECT {_WD} FROM payment_withdrawals WHERE state IN ('reserved', 'in_flight') AND updated_at <= $1
             ORDER BY updated_at LIMIT $2""",
        older_than, limit,
    )
    return [Withdrawal(**dict(r)) for r in rows]


async def in_flight_msat(conn: asyncpg.Connection, agent_id: uuid.UUID) -> int:
    return await conn.fetchval(
        """SELECT coalesce(sum(amount_msat + max_fee_msat), 0)::bigint FROM payment_withdrawals
            WHERE agent_id = $1 AND state IN ('reserved', 'in_flight')""",
        agent_id,
    )
