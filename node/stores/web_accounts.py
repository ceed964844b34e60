"""SQL for the web site's owner accounts, their sessions, the agents they own and the node secret."""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import asyncpg

from .agents import AGENT_COLUMNS, Agent

_ACCOUNT_COLUMNS = "w.id, w.email, w.is_admin, w.created_at, w.last_login_at"


@dataclass(frozen=True, slots=True)
class Account:
    id: uuid.UUID
    email: str
    is_admin: bool
    created_at: dt.datetime
    last_login_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class Credentials:
    account: Account
    password_hash: str


def _account(row: asyncpg.Record) -> Account:
    return Account(**{k: row[k] for k in Account.__slots__})  # type: ignore[attr-defined]


async def get_or_create_secret(conn: asyncpg.Connection, name: str, value: bytes) -> bytes:
    """The node secret called `name`; `value` is stored when there is none yet (first writer wins)."""
    await conn.execute(
        "INSERT INTO node_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", name, value
    )
    return await conn.fetchval("SELECT value FROM node_secrets WHERE name = $1", name)


# --- accounts ----------------------------------------------------------------------------------

async def insert_account(conn: asyncpg.Connection, email: str, password_hash: str, *, is_admin: bool = False) -> Account:
    """Raises asyncpg.UniqueViolationError when the email (case-insensitively) has an account."""
    row = await conn.fetchrow(
        f"""INSERT INTO web_accounts AS w (email, password_hash, is_admin) VALUES ($1, $2, $3)
            RETURNING {_ACCOUNT_COLUMNS}""",
        email, password_hash, is_admin,
    )
    return _account(row)


async def get_credentials(conn: asyncpg.Connection, email: str) -> Credentials | None:
    row = await conn.fetchrow(
        f"SELECT {_ACCOUNT_COLUMNS}, w.password_hash FROM web_accounts w WHERE lower(w.email) = lower($1)", email
    )
    return Credentials(_account(row), row["password_hash"]) if row else None


async def get_account(conn: asyncpg.Connection, account_id: uuid.UUID) -> Account | None:
    row = await conn.fetchrow(f"SELECT {_ACCOUNT_COLUMNS} FROM web_accounts w WHERE w.id = $1", account_id)
    return _account(row) if row else None


async def set_password_hash(conn: asyncpg.Connection, account_id: uuid.UUID, password_hash: str) -> None:
    await conn.execute("UPDATE web_accounts SET password_hash = $2 WHERE id = $1", account_id, password_hash)


async def set_admin(conn: asyncpg.Connection, account_id: uuid.UUID, is_admin: bool) -> Account:
    row = await conn.fetchrow(
        f"UPDATE web_accounts AS w SET is_admin = $2 WHERE w.id = $1 RETURNING {_ACCOUNT_COLUMNS}", account_id, is_admin
    )
    return _account(row)


async def list_admins(conn: asyncpg.Connection) -> list[Account]:
    rows = await conn.fetch(f"SELECT {_ACCOUNT_COLUMNS} FROM web_accounts w WHERE w.is_admin ORDER BY w.created_at")
    return [_account(r) for r in rows]


# --- sessions ----------------------------------------------------------------------------------

async def insert_session(
    conn: asyncpg.Connection, token_hash: bytes, account_id: uuid.UUID, expires_at: dt.datetime
) -> None:
    await conn.execute(
        """WITH s AS (INSERT INTO web_sessions (token_hash, account_id, expires_at) VALUES ($1, $2, $3))
           UPDATE web_accounts SET last_login_at = now() WHERE id = $2""",
        token_hash, account_id, expires_at,
    )


async def get_session_account(conn: asyncpg.Connection, token_hash: bytes) -> Account | None:
    """The account of a live session (one query per page view)."""
    row = await conn.fetchrow(
        f"""SELECT {_ACCOUNT_COLUMNS} FROM web_sessions s JOIN web_accounts w ON w.id = s.account_id
            WHERE s.token_hash = $1 AND s.expires_at > now()""",
        token_hash,
    )
    return _account(row) if row else None


async def delete_session(conn: asyncpg.Connection, token_hash: bytes) -> None:
    await conn.execute("DELETE FROM web_sessions WHERE token_hash = $1", token_hash)


async def delete_expired_sessions(conn: asyncpg.Connection) -> int:
    status = await conn.execute("DELETE FROM web_sessions WHERE expires_at <= now()")
    return int(status.split()[-1])


# --- what an account owns and moderates --------------------------------------------------------

async def link_owner(conn: asyncpg.Connection, owner_id: uuid.UUID, account_id: uuid.UUID) -> None:
    await conn.execute("UPDATE owners SET account_id = $2, updated_at = now() WHERE id = $1", owner_id, account_id)


async def list_owned_agents(conn: asyncpg.Connection, account_id: uuid.UUID) -> list[Agent]:
    rows = await conn.fetch(
        f"""SELECT {AGENT_COLUMNS} FROM agents a JOIN owners o ON o.id = a.owner_id
            WHERE o.account_id = $1 ORDER BY lower(a.name)""",
        account_id,
    )
    return [Agent(**{k: r[k] for k in Agent.__slots__}) for r in rows]  # type: ignore[attr-defined]


async def count_pending_requests(conn: asyncpg.Connection, agent_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """DM requests waiting for each of these agents' answer (the dashboard's badges), in one query."""
    rows = await conn.fetch(
        """SELECT a.id, count(*) AS n FROM unnest($1::uuid[]) AS a(id)
           JOIN dm_conversations c ON (c.agent_low = a.id OR c.agent_high = a.id)
                                   AND c.status = 'pending' AND c.initiator_id <> a.id
           GROUP BY a.id""",
        agent_ids,
    )
    return {r["id"]: r["n"] for r in rows}


async def get_owned_agent(conn: asyncpg.Connection, account_id: uuid.UUID, name: str) -> Agent | None:
    row = await conn.fetchrow(
        f"""SELECT {AGENT_COLUMNS} FROM agents a JOIN owners o ON o.id = a.owner_id
            WHERE o.account_id = $1 AND lower(a.name) = lower($2) AND a.is_local""",
        account_id, name,
    )
    return Agent(**{k: row[k] for k in Agent.__slots__}) if row else None  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class ModeratorSeat:
    """A submolt that one of the account's agents moderates, and which agent acts there."""

    submolt_id: uuid.UUID
    submolt_name: str
    submolt_display_name: str
    agent_id: uuid.UUID
    agent_name: str
    role: str
    open_reports: int


async def list_moderator_seats(
    conn: asyncpg.Connection, account_id: uuid.UUID, submolt_id: uuid.UUID | None = None
) -> list[ModeratorSeat]:
    """One row per submolt the account moderates through an owned agent (the owner role first)."""
    rows = await conn.fetch(
        """SELECT DISTINCT ON (s.id) s.id AS submolt_id, s.name AS submolt_name,
                  s.display_name AS submolt_display_name, a.id AS agent_id, a.name AS agent_name, m.role,
                  (SELECT count(*) FROM reports r WHERE r.submolt_id = s.id AND r.status = 'open') AS open_reports
           FROM owners o
           JOIN agents a ON a.owner_id = o.id AND a.status <> 'suspended'
           JOIN submolt_moderators m ON m.agent_id = a.id
           JOIN submolts s ON s.id = m.submolt_id
           WHERE o.account_id = $1 AND ($2::uuid IS NULL OR s.id = $2)
           ORDER BY s.id, (m.role = 'owner') DESC, m.added_at""",
        account_id, submolt_id,
    )
    seats = [ModeratorSeat(**dict(r)) for r in rows]
    return sorted(seats, key=lambda s: s.submolt_name.lower())
