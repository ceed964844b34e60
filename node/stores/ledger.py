"""SQL for the double-entry ledger: accounts, balanced transactions, balances and an agent's history."""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import asyncpg

FEES_ACCOUNT = 1  # the platform's fees (fixed ids, inserted by migration 0033)
CLEARING_ACCOUNT = 2  # Lightning: money in (deposits) and out (withdrawals) crosses this account


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    kind: str
    agent_id: uuid.UUID | None
    bounty_id: uuid.UUID | None
    balance_msat: int | None  # None for the system accounts (their balance is the sum of their entries)
    daily_limit_msat: int | None = None  # a wallet's owner-set spending limit (read with the lock: no extra trip)


@dataclass(frozen=True, slots=True)
class Posted:
    id: int
    created_at: dt.datetime
    balances: dict[int, int]  # the new balance of each account that keeps one on its row
    settled: bool = False  # post_transaction(settles=...): the invoice moved pending -> paid


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """One transaction as one account saw it: amount_msat is that account's entry (+ in, - out)."""

    transaction_id: int
    kind: str
    amount_msat: int
    memo: str
    data: dict[str, Any]
    created_at: dt.datetime


async def wallet_accounts(conn: asyncpg.Connection, agent_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, int]:
    """The wallet account id of each agent, created if missing. Call outside the money transaction: the
    insert takes no lock that the transaction's ordered row locks could deadlock with."""
    ids = sorted(set(agent_ids))
    found: dict[uuid.UUID, int] = {}
    for _ in range(3):  # an account another transaction inserts at the same moment shows on the next try
        rows = await conn.fetch(
            """WITH ins AS (
                   INSERT INTO ledger_accounts (kind, agent_id, balance_msat)
                   SELECT 'wallet', a, 0 FROM unnest($1::uuid[]) AS a ON CONFLICT (agent_id) DO NOTHING
                   RETURNING agent_id, id)
               SELECT agent_id, id FROM ins
               UNION ALL SELECT agent_id, id FROM ledger_accounts WHERE agent_id = ANY($1::uuid[])""",
            ids,
        )
        found = {r["agent_id"]: r["id"] for r in rows}
        if len(found) == len(ids):
            break
    return found


async def insert_escrow_account(conn: asyncpg.Connection, bounty_id: uuid.UUID) -> int:
    return await conn.fetchval(
        "INSERT INTO ledger_accounts (kind, bounty_id, balance_msat) VALUES ('escrow', $1, 0) RETURNING id", bounty_id
    )


async def get_escrow_account(conn: asyncpg.Connection, bounty_id: uuid.UUID) -> int | None:
    return await conn.fetchval("SELECT id FROM ledger_accounts WHERE bounty_id = $1", bounty_id)


_LOCKED = ("id, kind, agent_id, bounty_id, balance_msat, (SELECT l.daily_limit_msat FROM agent_spending_limits l "
           "WHERE l.agent_id = ledger_accounts.agent_id) AS daily_limit_msat")


async def lock_wallets(conn: asyncpg.Connection, agent_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Account]:
    """lock_accounts for the wallets of these agents (id order); agents without a wallet are missing."""
    rows = await conn.fetch(
        f"""SELECT {_LOCKED} FROM ledger_accounts
            WHERE agent_id = ANY($1::uuid[]) ORDER BY id FOR UPDATE""",
        sorted(set(agent_ids)),
    )
    return {r["agent_id"]: Account(**dict(r)) for r in rows}


async def lock_accounts(conn: asyncpg.Connection, account_ids: Iterable[int]) -> dict[int, Account]:
    """Lock the accounts that keep a balance, in id order (every movement locks in this order, so two
    movements over the same accounts cannot deadlock); the system accounts are not locked."""
    rows = await conn.fetch(
        f"""SELECT {_LOCKED} FROM ledger_accounts
            WHERE id = ANY($1::bigint[]) AND balance_msat IS NOT NULL ORDER BY id FOR UPDATE""",
        sorted(set(account_ids)),
    )
    return {r["id"]: Account(**dict(r)) for r in rows}


async def post_transaction(
    conn: asyncpg.Connection,
    kind: str,
    entries: Sequence[tuple[int, int]],
    *,
    source: str | None = None,
    memo: str = "",
    data: dict[str, Any] | None = None,
    audit: tuple[str, dict[str, Any]] | None = None,
    settles: tuple[uuid.UUID, int, uuid.UUID | None] | None = None,
) -> Posted:
    """Insert one transaction with its entries (account id, msat; one per account), move the balances kept
    on account rows and write the audit entry (actor, details), in one statement. The caller holds the row
    locks (lock_accounts) and checked the balances; the CHECK on balance_msat and the deferred zero-sum
    trigger are the backstops. A repeated source raises asyncpg.UniqueViolationError.

    settles = (invoice id, msat received, paying agent or None): the same statement flips that invoice
    pending -> paid with this transaction (Posted.settled says whether it did)."""
    accounts = [a for a, _ in entries]
    amounts = [m for _, m in entries]
    row = await conn.fetchrow(
        """WITH tx AS (
               INSERT INTO ledger_transactions (kind, source, memo, data) VALUES ($1, $2, $3, $4)
               RETURNING id, created_at),
           ent AS (
               INSERT INTO ledger_entries (transaction_id, account_id, amount_msat)
               SELECT tx.id, d.a, d.m FROM tx, unnest($5::bigint[], $6::bigint[]) AS d(a, m)),
           upd AS (
               UPDATE ledger_accounts AS acc SET balance_msat = acc.balance_msat + d.m
                 FROM unnest($5::bigint[], $6::bigint[]) AS d(a, m)
                WHERE acc.id = d.a AND acc.balance_msat IS NOT NULL
            RETURNING acc.id, acc.balance_msat),
           aud AS (
               INSERT INTO audit_log (actor, action, target, details)
               SELECT $7::text, 'payment.' || $1, 'ledger:' || tx.id, $8::jsonb FROM tx WHERE $7::text IS NOT NULL),
           inv AS (
               UPDATE payment_invoices AS i SET state = 'paid', paid_at = now(), transaction_id = tx.id,
                      received_msat = $10, paid_by = $11
                 FROM tx WHERE i.id = $9::uuid AND i.state = 'pending' RETURNING i.id)
           SELECT tx.id, tx.created_at, (SELECT coalesce(jsonb_object_agg(upd.id, upd.balance_msat), '{}')
                                          FROM upd) AS balances, (SELECT count(*) FROM inv) AS settled
             FROM tx""",
        kind, source, memo, data or {}, accounts, amounts, audit[0] if audit else None, audit[1] if audit else None,
        *(settles if settles else (None, None, None)),
    )
    return Posted(row["id"], row["created_at"], {int(k): int(v) for k, v in row["balances"].items()},
                  bool(row["settled"]))


async def balance_of(conn: asyncpg.Connection, account_id: int) -> int:
    return await conn.fetchval("SELECT balance_msat FROM ledger_balances WHERE account_id = $1", account_id) or 0


async def wallet_balance(conn: asyncpg.Connection, agent_id: uuid.UUID) -> int:
    return await conn.fetchval("SELECT balance_msat FROM ledger_accounts WHERE agent_id = $1", agent_id) or 0


async def wallet_account_id(conn: asyncpg.Connection, agent_id: uuid.UUID) -> int | None:
    return await conn.fetchval("SELECT id FROM ledger_accounts WHERE agent_id = $1", agent_id)


async def history(
    conn: asyncpg.Connection, account_id: int, *, limit: int, before: int | None = None
) -> list[HistoryItem]:
    """An account's transactions, newest first; keyset paging on the transaction id."""
    rows = await conn.fetch(
        """SELECT t.id AS transaction_id, t.kind, e.amount_msat, t.memo, t.data, t.created_at
             FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id
            WHERE e.account_id = $1 AND ($2::bigint IS NULL OR e.transaction_id < $2)
            ORDER BY e.transaction_id DESC LIMIT $3""",
        account_id, before, limit,
    )
    return [HistoryItem(**dict(r)) for r in rows]


@dataclass(frozen=True, slots=True)
class LedgerCheck:
    """What must always hold; the tests and the bench assert it."""

    total_msat: int  # sum over every account: 0
    unbalanced_transactions: int  # transactions whose entries do not sum to 0: 0
    negative_accounts: int  # wallet or escrow accounts below 0: 0
    mismatched_accounts: int  # accounts whose row balance differs from the sum of their entries: 0


async def check_ledger(conn: asyncpg.Connection) -> LedgerCheck:
    row = await conn.fetchrow(
        """SELECT (SELECT coalesce(sum(amount_msat), 0) FROM ledger_entries)::bigint AS total_msat,
                  (SELECT count(*) FROM (SELECT 1 FROM ledger_entries GROUP BY transaction_id
                                          HAVING sum(amount_msat) <> 0) u) AS unbalanced_transactions,
                  (SELECT count(*) FROM ledger_accounts WHERE balance_msat < 0) AS negative_accounts,
                  (SELECT count(*) FROM ledger_balances
                    WHERE row_balance_msat IS NOT NULL AND row_balance_msat <> balance_msat) AS mismatched_accounts"""
    )
    return LedgerCheck(**dict(row))
