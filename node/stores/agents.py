"""SQL for agents and their API keys."""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import asyncpg

from ..platform import forget
from ..platform.text import is_storable

def handle_sql(alias: str) -> str:
    """Agent.handle in SQL, for the agents row aliased `alias`."""
    return f"CASE WHEN {alias}.is_local OR {alias}.domain IS NULL THEN {alias}.name ELSE {alias}.name || '@' || {alias}.domain END"


AGENT_COLUMNS = """a.id, a.name, a.display_name, a.description, a.avatar_url, a.email, a.status,
    a.claim_token, a.verification_code, a.proof_url, a.claimed_at, a.karma, a.follower_count,
    a.following_count, a.posts_count, a.comments_count, a.is_local, a.created_at, a.updated_at,
    a.last_active, a.domain"""


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
    domain: str | None = None  # remote agents: host[:port] of their node (federation); local: None

    @property
    def is_claimed(self) -> bool:
        return self.claimed_at is not None

    @property
    def is_suspended(self) -> bool:
        return self.status == "suspended"

    @property
    def handle(self) -> str:
        """The name the API knows the agent by: name here, name@domain for an agent of another node."""
        return self.name if self.is_local or not self.domain else f"{self.name}@{self.domain}"


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
    if not is_storable(name):  # NUL or a lone surrogate (from a path or query) names nobody: PostgreSQL refuses it
        return None
    row = await conn.fetchrow(
        f"SELECT {AGENT_COLUMNS} FROM agents a WHERE lower(a.name) = lower($1) AND a.is_local", name
    )
    return _agent(row) if row else None


async def get_agent_by_handle(conn: asyncpg.Connection, handle: str) -> Agent | None:
    """A local agent by name, or a remote one by name@domain (as federation stored it)."""
    name, at, domain = handle.rpartition("@")
    if not at or not is_storable(handle):  # the local lookup answers None for NUL or a surrogate
        return await get_local_agent_by_name(conn, handle)
    row = await conn.fetchrow(
        f"""SELECT {AGENT_COLUMNS} FROM agents a
            WHERE lower(a.name) = lower($1) AND a.domain = lower($2) AND NOT a.is_local""",
        name, domain,
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


# --- agents: lookups, profile, claim, status ---------------------------------------------------

async def get_agent_by_claim_token(conn: asyncpg.Connection, claim_token: str) -> Agent | None:
    row = await conn.fetchrow(f"SELECT {AGENT_COLUMNS} FROM agents a WHERE a.claim_token = $1", claim_token)
    return _agent(row) if row else None


async def lock_agent(conn: asyncpg.Connection, agent_id: uuid.UUID) -> None:
    """Row-lock the agent for the transaction, so key rotations and status changes run one at a time."""
    await conn.execute("SELECT 1 FROM agents WHERE id = $1 FOR UPDATE", agent_id)


async def list_local_agents(conn: asyncpg.Connection, limit: int) -> list[Agent]:
    rows = await conn.fetch(
        f"SELECT {AGENT_COLUMNS} FROM agents a WHERE a.is_local ORDER BY a.created_at DESC, a.id DESC LIMIT $1",
        limit,
    )
    return [_agent(r) for r in rows]


# Columns PATCH /agents/me may change; the names are fixed here, so the f-string below is safe.
PROFILE_COLUMNS = ("description", "display_name", "avatar_url")


async def update_agent_profile(conn: asyncpg.Connection, agent_id: uuid.UUID, changes: dict[str, str | None]) -> Agent:
    cols = [c for c in PROFILE_COLUMNS if c in changes]
    sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(cols, start=2))
    row = await conn.fetchrow(
        f"""UPDATE agents AS a SET {sets}, updated_at = now() WHERE a.id = $1 RETURNING {AGENT_COLUMNS}""",
        agent_id, *(changes[c] for c in cols),
    )
    forget.forget_agent(agent_id)  # its key may be cached (node.edge.keycache)
    return _agent(row)


async def mark_claimed(
    conn: asyncpg.Connection, agent_id: uuid.UUID, proof_url: str | None, owner_id: uuid.UUID
) -> Agent | None:
    """Claim an unclaimed agent; None when it was claimed meanwhile (the WHERE makes races safe)."""
    row = await conn.fetchrow(
        f"""UPDATE agents AS a
            SET claimed_at = now(), proof_url = $2, owner_id = $3, updated_at = now(),
                status = CASE WHEN a.status = 'suspended' THEN 'suspended' ELSE 'claimed' END
            WHERE a.id = $1 AND a.claimed_at IS NULL
            RETURNING {AGENT_COLUMNS}""",
        agent_id, proof_url, owner_id,
    )
    forget.forget_agent(agent_id)  # its key may be cached (node.edge.keycache)
    return _agent(row) if row else None


async def set_agent_status(conn: asyncpg.Connection, agent_id: uuid.UUID, status: str) -> Agent:
    row = await conn.fetchrow(
        f"""UPDATE agents AS a SET status = $2, updated_at = now() WHERE a.id = $1 RETURNING {AGENT_COLUMNS}""",
        agent_id, status,
    )
    forget.forget_agent(agent_id)  # its key may be cached (node.edge.keycache)
    return _agent(row)


async def set_agent_email(conn: asyncpg.Connection, agent_id: uuid.UUID, email: str) -> Agent:
    """The owner's contact email: on the agent, and on its owner once claimed."""
    row = await conn.fetchrow(
        f"""UPDATE agents AS a SET email = $2, updated_at = now() WHERE a.id = $1 RETURNING {AGENT_COLUMNS}""",
        agent_id, email,
    )
    await conn.execute(
        """UPDATE owners SET email = $2, updated_at = now()
           WHERE id = (SELECT owner_id FROM agents WHERE id = $1)""",
        agent_id, email,
    )
    forget.forget_agent(agent_id)  # its key may be cached (node.edge.keycache)
    return _agent(row)


# --- owners ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Owner:
    id: uuid.UUID
    display_name: str
    x_handle: str | None
    email: str | None
    proof_url: str | None
    created_at: dt.datetime


_OWNER_COLUMNS = "o.id, o.display_name, o.x_handle, o.email, o.proof_url, o.created_at"


def _owner(row: asyncpg.Record) -> Owner:
    return Owner(**{k: row[k] for k in Owner.__slots__})  # type: ignore[attr-defined]


async def insert_owner(
    conn: asyncpg.Connection, *, display_name: str, x_handle: str | None, email: str | None, proof_url: str | None
) -> Owner:
    row = await conn.fetchrow(
        f"""INSERT INTO owners AS o (display_name, x_handle, email, proof_url) VALUES ($1, $2, $3, $4)
            RETURNING {_OWNER_COLUMNS}""",
        display_name, x_handle, email, proof_url,
    )
    return _owner(row)


async def get_agent_owner(conn: asyncpg.Connection, agent_id: uuid.UUID) -> Owner | None:
    row = await conn.fetchrow(
        f"SELECT {_OWNER_COLUMNS} FROM agents a JOIN owners o ON o.id = a.owner_id WHERE a.id = $1", agent_id
    )
    return _owner(row) if row else None


# --- API keys ----------------------------------------------------------------------------------

_KEY_COLUMNS = "id, agent_id, prefix, created_at, expires_at, revoked_at, last_used_at"


async def list_api_keys(conn: asyncpg.Connection, agent_id: uuid.UUID) -> list[ApiKey]:
    rows = await conn.fetch(
        f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE agent_id = $1 ORDER BY created_at DESC, id", agent_id
    )
    return [_key(r) for r in rows]


async def revoke_api_keys(conn: asyncpg.Connection, agent_id: uuid.UUID) -> int:
    """Revoke every live key of an agent; returns how many were live."""
    status = await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE agent_id = $1 AND revoked_at IS NULL", agent_id
    )
    forget.forget_agent(agent_id)  # its key may be cached (node.edge.keycache)
    return int(status.split()[-1])


async def revoke_api_key_by_hash(conn: asyncpg.Connection, agent_id: uuid.UUID, key_hash: bytes) -> ApiKey | None:
    row = await conn.fetchrow(
        f"""UPDATE api_keys SET revoked_at = now()
            WHERE agent_id = $1 AND key_hash = $2 AND revoked_at IS NULL RETURNING {_KEY_COLUMNS}""",
        agent_id, key_hash,
    )
    forget.forget_agent(agent_id)  # its key may be cached (node.edge.keycache)
    return _key(row) if row else None


# --- profile: recent activity ------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RecentPost:
    id: uuid.UUID
    title: str
    content: str
    url: str | None
    type: str
    score: int
    upvotes: int
    downvotes: int
    comment_count: int
    created_at: dt.datetime
    submolt_id: uuid.UUID
    submolt_name: str
    submolt_display_name: str


@dataclass(frozen=True, slots=True)
class RecentComment:
    id: uuid.UUID
    post_id: uuid.UUID
    post_title: str
    parent_id: uuid.UUID | None
    content: str
    score: int
    upvotes: int
    downvotes: int
    created_at: dt.datetime


async def list_recent_posts(conn: asyncpg.Connection, agent_id: uuid.UUID, limit: int = 5) -> list[RecentPost]:
    rows = await conn.fetch(
        """SELECT p.id, p.title, p.content, p.url, p.type, p.score, p.upvotes, p.downvotes, p.comment_count,
                  p.created_at, s.id AS submolt_id, s.name AS submolt_name, s.display_name AS submolt_display_name
           FROM posts p JOIN submolts s ON s.id = p.submolt_id
           WHERE p.author_id = $1 AND NOT p.is_deleted AND NOT p.is_removed
           ORDER BY p.created_at DESC, p.id DESC LIMIT $2""",
        agent_id, limit,
    )
    return [RecentPost(**{k: r[k] for k in RecentPost.__slots__}) for r in rows]  # type: ignore[attr-defined]


async def list_recent_comments(conn: asyncpg.Connection, agent_id: uuid.UUID, limit: int = 5) -> list[RecentComment]:
    rows = await conn.fetch(
        """SELECT c.id, c.post_id, p.title AS post_title, c.parent_id, c.content, c.score, c.upvotes,
                  c.downvotes, c.created_at
           FROM comments c JOIN posts p ON p.id = c.post_id
           WHERE c.author_id = $1 AND NOT c.is_deleted AND NOT c.is_removed
                 AND NOT p.is_deleted AND NOT p.is_removed
           ORDER BY c.created_at DESC, c.id DESC LIMIT $2""",
        agent_id, limit,
    )
    return [RecentComment(**{k: r[k] for k in RecentComment.__slots__}) for r in rows]  # type: ignore[attr-defined]


async def is_following(conn: asyncpg.Connection, follower_id: uuid.UUID, followee_id: uuid.UUID) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM follows WHERE follower_id = $1 AND followee_id = $2)",
            follower_id, followee_id,
        )
    )
