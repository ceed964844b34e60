"""The money rules every payment shares: the fee rule (split_fee, the only place a fee is computed), amounts
and their bounds, and move(), the one way a balanced transaction is posted, under ordered row locks."""
from __future__ import annotations

import uuid
from fractions import Fraction
from typing import Any, Iterable, Mapping

import asyncpg

from ..platform.config_types import PaymentsConfig
from ..platform.errors import ReefError, Unprocessable
from ..stores import ledger as store
from ..stores.ledger import CLEARING_ACCOUNT, FEES_ACCOUNT, Account, Posted
from .spending import Spend, check_spend

__all__ = ["CLEARING_ACCOUNT", "FEES_ACCOUNT", "InsufficientFunds", "move", "parse_amount_sat", "split_fee"]

MSAT_PER_SAT = 1000


class InsufficientFunds(ReefError):
    """402 Payment Required: the wallet (or the escrow) holds less than the movement takes; nothing moved."""

    status = 402


def split_fee(amount_msat: int, fee_percent: float) -> tuple[int, int]:
    """(payee_msat, fee_msat) of a payment: the fee is fee_percent of the amount rounded DOWN to the msat, the
    payee gets the rest, so payee + fee == amount exactly. fee_percent is read as its decimal text (1.0 is
    exactly 1/100), so 999 msat at 1 % is (990, 9) and 1000 msat is (990, 10)."""
    if amount_msat < 0:
        raise ValueError("amount_msat must not be negative")
    fee = int(amount_msat * Fraction(str(fee_percent)) / 100)  # int() of a non-negative Fraction rounds down
    return amount_msat - fee, fee


def max_routing_fee_msat(amount_msat: int, cfg: PaymentsConfig) -> int:
    """The most a withdrawal may spend on routing: max_routing_fee_percent of it (rounded up), at least
    min_routing_fee_sat. This much is reserved with the amount; what the route did not use is refunded."""
    share = -(-amount_msat * Fraction(str(cfg.max_routing_fee_percent)) // 100)
    return max(int(share), cfg.min_routing_fee_sat * MSAT_PER_SAT)


def check_amount_msat(amount_msat: int, cfg: PaymentsConfig, what: str = "The amount") -> int:
    if amount_msat < cfg.min_amount_sat * MSAT_PER_SAT:
        raise Unprocessable(
            f"{what} is below this node's minimum of {cfg.min_amount_sat} sat.",
            f"Send at least {cfg.min_amount_sat} sat ([payments] min_amount_sat).",
        )
    if amount_msat > cfg.max_amount_sat * MSAT_PER_SAT:
        raise Unprocessable(
            f"{what} is above this node's maximum of {cfg.max_amount_sat} sat.",
            f"Send at most {cfg.max_amount_sat} sat ([payments] max_amount_sat), or split the payment.",
        )
    return amount_msat


def parse_amount_sat(body: Mapping[str, Any], cfg: PaymentsConfig, key: str = "amount_sat") -> int:
    """A whole number of satoshis within the node's bounds, as msat."""
    value = body.get(key)
    if value is None:
        raise Unprocessable(f"Missing required field '{key}'.", f"Send '{key}' as a whole number of satoshis, e.g. 21.")
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        value = int(value)  # JSON has one number type: 21.0 is the integer 21 (as JSON Schema says)
    if isinstance(value, bool) or not isinstance(value, int):
        raise Unprocessable(
            f"Field '{key}' must be a whole number of satoshis, got {value!r}.",
            f"Send '{key}' as a JSON integer, e.g. 21 (no decimals, no strings).",
        )
    if value <= 0:
        raise Unprocessable(f"Field '{key}' must be positive, got {value}.", f"Send a positive '{key}', e.g. 21.")
    return check_amount_msat(value * MSAT_PER_SAT, cfg, f"Field '{key}'")


def msat_json(msat: int) -> dict[str, int]:
    return {"amount_msat": msat, "amount_sat": msat // MSAT_PER_SAT}


async def wallets(conn: asyncpg.Connection, agent_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Wallet account ids (created on first use). Call before the money transaction opens."""
    return await store.wallet_accounts(conn, agent_ids)


async def move(
    conn: asyncpg.Connection,
    kind: str,
    legs: Iterable[tuple[int, int]],
    *,
    source: str | None = None,
    memo: str = "",
    data: dict[str, Any] | None = None,
    audit_actor: str = "system",
    locked: dict[int, Account] | None = None,
    settles: tuple[uuid.UUID, int, uuid.UUID | None] | None = None,
    spend: Spend | None = None,
) -> Posted:
    """Post one balanced movement inside the caller's transaction: legs are (account id, msat, + in / - out).
    Locks the accounts that keep a balance in id order, refuses (402) a debit the account cannot cover, and
    writes an audit entry. `locked`: the caller already holds these accounts' locks (taken in id order, with
    every account of the legs that keeps a balance); `settles`: see stores.ledger.post_transaction. A debit of
    a wallet is an agent's outgoing payment: `spend` (the request) must come with it, and the owner's spending
    limit (spending.check_spend) is applied here, under the wallet's row lock. Raises ValueError for legs that
    do not sum to 0 or a wallet debit without its spend (bugs, never the client's)."""
    merged: dict[int, int] = {}
    for account, msat in legs:
        merged[account] = merged.get(account, 0) + msat
    entries = [(a, m) for a, m in sorted(merged.items()) if m != 0]
    if sum(m for _, m in entries) != 0 or len(entries) < 2:
        raise ValueError(f"unbalanced movement {kind}: {entries}")
    if locked is None:
        locked = await store.lock_accounts(conn, [a for a, _ in entries])
    for account, msat in entries:
        held = locked.get(account)
        if msat < 0 and held is not None and (held.balance_msat or 0) + msat < 0:
            whose = "Your wallet" if held.kind == "wallet" else "The bounty's escrow"
            raise InsufficientFunds(
                f"{whose} holds {held.balance_msat} msat; this needs {-msat} msat.",
                "Deposit first (POST /api/v1/wallet/deposit) or send a smaller amount; GET /api/v1/wallet shows "
                "your balance. Nothing was moved.",
                extra={"balance_msat": held.balance_msat, "needed_msat": -msat},
            )
    for account, msat in entries:
        held = locked.get(account)
        if msat < 0 and held is not None and held.kind == "wallet":
            await check_spend(conn, held, -msat, spend)
    details = {"entries": [[a, m] for a, m in entries], **({"source": source} if source else {}), **(data or {})}
    return await store.post_transaction(conn, kind, entries, source=source, memo=memo, data=data,
                                        audit=(audit_actor, details), settles=settles)


def split_among(amount_msat: int, shares: int) -> list[int]:
    """amount_msat in `shares` parts that differ by at most 1 msat and sum to it exactly (the first parts
    get the remainder)."""
    if shares < 1:
        raise ValueError("shares must be at least 1")
    base, rest = divmod(amount_msat, shares)
    return [base + (1 if i < rest else 0) for i in range(shares)]
