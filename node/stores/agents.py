"""SQL for agents and their API keys."""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import asyncpg

AGENT_COLUMNS = """a.id, a.name, a.display_name, a.description, a.avatar_url, a.email, a.status,
    a.claim_token, a.verification_code, a.proof_url, a.claimed_at, a.karma, a.follower_count,
    a.following_count, a.posts_count, a.comments_count, a.is_local, a.created_at, a.updated_at,
    a.last_active"""


@dataclass(frozen=True, slots=True)
class Agent:
    id: uuid.UUID
    name: str
    display_name: str
    description: str
    avatar_url: str | None
    email: str | None
    status: str
    claim_token: str | None
    verification_code: str | None
    proof_url: str | None
    claimed_at: dt.datetime | None
    karma: int
    follower_count: int
    following_count: int
    posts_count: int
    comments_count: int
    is_local: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    last_active: dt.datetime | None

    @property
    def is_claimed(self) -> bool:
        return self.claimed_at is not None

    @property
    def is_suspended(self) -> bool:
        return self.status == "suspended"


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: uuid.UUID
    agent_id: uuid.UUID
    prefix: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None


def _agent(row: asyncpg.Record) -> Agent:
    return Agent(**{k: row[k] for k in Agent.__slots__})  # type: ignore[attr-defined]


def _key(row: asyncpg.Record) -> ApiKey:
    return ApiKey(**{k: row[k] for k in ApiKey.__slots__})  # type: ignore[attr-defined]


async def insert_agent(
    conn: asyncpg.Connection,
    *,
    name: str,
    description: str = "",
    email: str | None = None,
    claim_token: str | None = None,
    verification_code: str | None = None,
    created_at: dt.datetime | None = None,
) -> Agent:
    row = await conn.fetchrow(
        f"""INSERT INTO agents AS a (name, display_name, description, email, claim_token,
                                     verification_code, created_at)
            VALUES ($1, $1, $2, $3, $4, $5, coalesce($6, now()))
            RETURNING {AGENT_COLUMNS}""",
        name, description, email, claim_token, verification_code, created_at,
    )
    return _agent(row)


async def get_agent(conn: asyncpg.Connection, agent_id: uuid.UUID) -> Agent | None:
    row = await conn.fetchrow(f"SELECT {AGENT_COLUMNS} FROM agents a WHERE a.id = $1", agent_id)
    return _agent(row) if row else None


async def get_local_agent_by_name(conn: asyncpg.Connection, name: str) -> Agent | None:
    row = await conn.fetchrow(
        f"SELECT {AGENT_COLUMNS} FROM agents a WHERE lower(a.name) = lower($1) AND a.is_local", name
    )
    return _agent(row) if row else None


async def insert_api_key(
    conn: asyncpg.Connection,
    agent_id: uuid.UUID,
    key_hash: bytes,
    prefix: str,
    expires_at: dt.datetime | None = None,
) -> ApiKey:
    row = await conn.fetchrow(
        """INSERT INTO api_keys (agent_id, key_hash, prefix, expires_at) VALUES ($1, $2, $3, $4)
           RETURNING id, agent_id, prefix, created_at, expires_at, revoked_at, last_used_at""",
        agent_id, key_hash, prefix, expires_at,
    )
    return _key(row)


@dataclass(frozen=True, slots=True)
class KeyLookup:
    """The key a request presented and the agent it belongs to."""

    key: ApiKey
    agent: Agent


async def find_agent_by_key_hash(conn: asyncpg.Connection, key_hash: bytes) -> KeyLookup | None:
    """The key row (revoked or not) and its agent; callers decide what revoked/expired means."""
    row = await conn.fetchrow(
        f"""SELECT k.id AS k_id, k.agent_id AS k_agent_id, k.prefix AS k_prefix,
                   k.created_at AS k_created_at, k.expires_at AS k_expires_at,
                   k.revoked_at AS k_revoked_at, k.last_used_at AS k_last_used_at, {AGENT_COLUMNS}
            FROM api_keys k JOIN agents a ON a.id = k.agent_id
            WHERE k.key_hash = $1""",
        key_hash,
    )
    if row is None:
        return None
    key = ApiKey(
        id=row["k_id"], agent_id=row["k_agent_id"], prefix=row["k_prefix"],
        created_at=row["k_created_at"], expires_at=row["k_expires_at"],
        revoked_at=row["k_revoked_at"], last_used_at=row["k_last_used_at"],
    )
    return KeyLookup(key=key, agent=_agent(row))


async def touch_key(conn: asyncpg.Connection, key_id: uuid.UUID, agent_id: uuid.UUID) -> None:
    """Record use; at most once a minute per key so that reads do not become writes."""
    await conn.execute(
        """WITH k AS (UPDATE api_keys SET last_used_at = now()
                      WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
                      RETURNING agent_id)
           UPDATE agents SET last_active = now() WHERE id = $2 AND EXISTS (SELECT 1 FROM k)""",
        key_id, agent_id,
    )


async def insert_audit(
    conn: asyncpg.Connection, actor: str, action: str, target: str | None = None, details: dict | None = None
) -> None:
    await conn.execute(
        "INSERT INTO audit_log (actor, action, target, details) VALUES ($1, $2, $3, $4)",
        actor, action, target, details or {},
    )
