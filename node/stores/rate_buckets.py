"""SQL for token buckets shared through PostgreSQL (rate_buckets, migration 0044); pg_buckets decides with them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import asyncpg


@dataclass(frozen=True, slots=True)
class Take:
    granted: int  # tokens taken (the cost, or a lease of more); 0 when refused; negative for a refund
    tokens: float  # left in the bucket afterwards
    now: float  # unix time the bucket was read at (the database's clock unless one was given)


async def take_tokens(
    pool: asyncpg.Pool, key: str, capacity: int, per_seconds: float, cost: int, *,
    want: int | None = None, back: int = 0, chunk: int = 0, now: float | None = None,
) -> Take:
    """Refill, give `back` tokens, take `cost` (up to `want` as a lease): one atomic round trip (rate_bucket_take)."""
    row = await pool.fetchrow(
        "SELECT granted, remaining, clock FROM rate_bucket_take($1, $2, $3, $4, $5, $6, $7, $8)",
        key, capacity, float(per_seconds), cost, cost if want is None else want, back, chunk, now,
    )
    return Take(row["granted"], row["remaining"], row["clock"])


async def give_back(pool: asyncpg.Pool, leftovers: Sequence[tuple[str, int, float, int]], now: float | None = None) -> None:
    """Return unspent leased tokens, (key, capacity, per_seconds, tokens) each, in one round trip.

    Sorted by key: every row stays locked until the statement commits, so two processes giving back the
    same keys must lock them in the same order or they could deadlock (unnest yields them in order)."""
    rows = sorted(leftovers)
    await pool.execute(
        """SELECT count(*) FROM unnest($1::text[], $2::int[], $3::float8[], $4::int[]) AS u(key, capacity, per_seconds, tokens),
                LATERAL rate_bucket_take(u.key, u.capacity, u.per_seconds, -u.tokens, -u.tokens, 0, 0, $5)""",
        [r[0] for r in rows], [r[1] for r in rows], [float(r[2]) for r in rows], [r[3] for r in rows], now,
    )


async def delete_full_buckets(pool: asyncpg.Pool, now: float | None = None) -> int:
    """Forget buckets that have refilled completely (a missing row is a full bucket); returns how many."""
    status = await pool.execute(
        "DELETE FROM rate_buckets WHERE full_at <= coalesce($1, extract(epoch FROM clock_timestamp())::float8)",
        now,
    )
    return int(status.split()[-1])
