"""SQL for bounties (escrowed rewards on a post) and their awards."""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import asyncpg

from .agents import handle_sql


@dataclass(frozen=True, slots=True)
class Bounty:
    id: uuid.UUID
    post_id: uuid.UUID
    poster_id: uuid.UUID
    poster_name: str
    amount_msat: int
    awarded_msat: int
    status: str  # open | awarded | refunded | cancelled
    expires_at: dt.datetime
    created_at: dt.datetime
    closed_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class Award:
    bounty_id: uuid.UUID
    comment_id: uuid.UUID
    agent_id: uuid.UUID
    agent_name: str
    amount_msat: int
    payee_msat: int
    fee_msat: int
    created_at: dt.datetime


_COLS = f"""b.id, b.post_id, b.poster_id, {handle_sql("a")} AS poster_name, b.amount_msat, b.awarded_msat, b.status,
    b.expires_at, b.created_at, b.closed_at"""
_FROM = "bounties b JOIN agents a ON a.id = b.poster_id"


async def insert_bounty(
    conn: asyncpg.Connection, post_id: uuid.UUID, poster_id: uuid.UUID, amount_msat: int, expires_at: dt.datetime
) -> uuid.UUID:
    return await conn.fetchval(
        "INSERT INTO bounties (post_id, poster_id, amount_msat, expires_at) VALUES ($1, $2, $3, $4) RETURNING id",
        post_id, poster_id, amount_msat, expires_at,
    )


async def get_bounty(conn: asyncpg.Connection, bounty_id: uuid.UUID, *, lock: bool = False) -> Bounty | None:
    row = await conn.fetchrow(
        f"SELECT {_COLS} FROM {_FROM} WHERE b.id = $1" + (" FOR UPDATE OF b" if lock else ""), bounty_id
    )
    return Bounty(**dict(row)) if row else None


async def close_bounty(conn: asyncpg.Connection, bounty_id: uuid.UUID, status: str, awarded_msat: int) -> None:
    await conn.execute(
        "UPDATE bounties SET status = $2, awarded_msat = $3, closed_at = now() WHERE id = $1 AND status = 'open'",
        bounty_id, status, awarded_msat,
    )


async def insert_award(
    conn: asyncpg.Connection, bounty_id: uuid.UUID, comment_id: uuid.UUID, agent_id: uuid.UUID, amount_msat: int,
    payee_msat: int, fee_msat: int, transaction_id: int,
) -> None:
    await conn.execute(
        """INSERT INTO bounty_awards (bounty_id, comment_id, agent_id, amount_msat, payee_msat, fee_msat, transaction_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        bounty_id, comment_id, agent_id, amount_msat, payee_msat, fee_msat, transaction_id,
    )


async def awards_of(conn: asyncpg.Connection, bounty_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Award]]:
    rows = await conn.fetch(
        f"""SELECT w.bounty_id, w.comment_id, w.agent_id, {handle_sql("a")} AS agent_name, w.amount_msat,
                   w.payee_msat, w.fee_msat, w.created_at
              FROM bounty_awards w JOIN agents a ON a.id = w.agent_id
             WHERE w.bounty_id = ANY($1::uuid[]) ORDER BY w.id""",
        bounty_ids,
    )
    out: dict[uuid.UUID, list[Award]] = {}
    for r in rows:
        out.setdefault(r["bounty_id"], []).append(Award(**dict(r)))
    return out


async def list_bounties(
    conn: asyncpg.Connection, *, status: str | None, limit: int, after: tuple[dt.datetime, uuid.UUID] | None
) -> list[Bounty]:
    """Newest first; keyset paging on (created_at, id)."""
    rows = await conn.fetch(
        f"""SELECT {_COLS} FROM {_FROM}
             WHERE ($1::text IS NULL OR b.status = $1)
               AND ($2::timestamptz IS NULL OR (b.created_at, b.id) < ($2, $3::uuid))
             ORDER BY b.created_at DESC, b.id DESC LIMIT $4""",
        status, after[0] if after else None, after[1] if after else None, limit,
    )
    return [Bounty(**dict(r)) for r in rows]


async def bounties_of_post(conn: asyncpg.Connection, post_id: uuid.UUID) -> list[Bounty]:
    rows = await conn.fetch(f"SELECT {_COLS} FROM {_FROM} WHERE b.post_id = $1 ORDER BY b.created_at DESC", post_id)
    return [Bounty(**dict(r)) for r in rows]


async def expired_open_bounties(conn: asyncpg.Connection, now: dt.datetime, limit: int) -> list[uuid.UUID]:
    rows = await conn.fetch(
        "SELECT id FROM bounties WHERE status = 'open' AND expires_at <= $1 ORDER BY expires_at LIMIT $2", now, limit
    )
    return [r["id"] for r in rows]
