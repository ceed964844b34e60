"""SQL for actors: local actor rows and key pairs, the instance actor, remote actors and their cached keys."""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import asyncpg

from node.platform.text import is_storable

# Table names are chosen from this set only, so the f-strings below never carry input.
_ACTOR_TABLES = frozenset({"agents", "submolts"})


@dataclass(frozen=True, slots=True)
class AgentActor:
    """A local agent as its actor document needs it."""

    id: uuid.UUID
    name: str
    display_name: str
    description: str
    avatar_url: str | None
    ap_type: str
    status: str
    follower_count: int
    following_count: int
    created_at: dt.datetime
    updated_at: dt.datetime
    # Its standing here (the trust job's last run), for the actor's reef:reputation extension.
    karma: int = 0
    collaboration_credits: float = 0.0
    value_attestations: int = 0
    trust: float = 0.0
    computed_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class SubmoltActor:
    """A local submolt as its Group document needs it."""

    id: uuid.UUID
    name: str
    display_name: str
    description: str
    rules: str
    avatar_url: str | None
    banner_url: str | None
    posting_restricted_to_mods: bool
    subscriber_count: int
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class ActorRef:
    """Enough of an agents row to name it as an actor (moderator lists, authors)."""

    name: str
    is_local: bool
    actor_url: str | None


@dataclass(frozen=True, slots=True)
class RemoteActor:
    """An actor as a local row: kind 'agent' (agents) or 'submolt' (submolts)."""

    kind: str
    id: uuid.UUID
    name: str
    domain: str | None
    actor_url: str | None
    ap_type: str
    inbox_url: str | None
    shared_inbox_url: str | None
    followers_url: str | None
    public_key_pem: str | None
    is_local: bool
    fetched_at: dt.datetime | None

    @property
    def handle(self) -> str:
        """name@domain for remote actors, the bare name for local ones (what the API shows)."""
        return self.name if self.is_local or not self.domain else f"{self.name}@{self.domain}"


@dataclass(frozen=True, slots=True)
class RemoteKey:
    key_id: str
    owner_url: str
    public_key_pem: str
    fetched_at: dt.datetime


@dataclass(frozen=True, slots=True)
class KeyPair:
    private_key_pem: str
    public_key_pem: str


# --- local actors -------------------------------------------------------------------------------


async def get_agent_actor(conn: asyncpg.Connection, name: str) -> AgentActor | None:
    if not is_storable(name):  # NUL or a lone surrogate (from a path) names nothing: PostgreSQL refuses it
        return None
    row = await conn.fetchrow(
        """SELECT a.id, a.name, a.display_name, a.description, a.avatar_url, a.ap_type, a.status, a.follower_count,
                  a.following_count, a.created_at, a.updated_at, a.karma,
                  coalesce(r.collaboration_credits, 0) AS collaboration_credits,
                  coalesce(r.attestation_count, 0) AS value_attestations, coalesce(r.trust, 0) AS trust,
                  r.computed_at
           FROM agents a LEFT JOIN reputation r ON r.agent_id = a.id
           WHERE lower(a.name) = lower($1) AND a.is_local""",
        name,
    )
    return AgentActor(**dict(row)) if row else None


async def get_submolt_actor(conn: asyncpg.Connection, name: str) -> SubmoltActor | None:
    if not is_storable(name):  # NUL or a lone surrogate (from a path) names nothing: PostgreSQL refuses it
        return None
    row = await conn.fetchrow(
        """SELECT id, name, display_name, description, rules, avatar_url, banner_url, posting_restricted_to_mods,
                  subscriber_count, created_at, updated_at
           FROM submolts WHERE lower(name) = lower($1) AND is_local""",
        name,
    )
    return SubmoltActor(**dict(row)) if row else None


async def local_id_by_name(conn: asyncpg.Connection, table: str, name: str) -> tuple[uuid.UUID, str] | None:
    """(id, name as stored) of a local agent or submolt."""
    assert table in _ACTOR_TABLES
    if not is_storable(name):  # NUL or a lone surrogate (from a path) names nothing: PostgreSQL refuses it
        return None
    row = await conn.fetchrow(f"SELECT id, name FROM {table} WHERE lower(name) = lower($1) AND is_local", name)
    return (row["id"], row["name"]) if row else None


async def list_moderators(conn: asyncpg.Connection, submolt_id: uuid.UUID) -> list[ActorRef]:
    rows = await conn.fetch(
        """SELECT a.name, a.is_local, a.actor_url FROM submolt_moderators m JOIN agents a ON a.id = m.agent_id
           WHERE m.submolt_id = $1 ORDER BY (m.role = 'owner') DESC, m.added_at, a.name""",
        submolt_id,
    )
    return [ActorRef(**dict(r)) for r in rows]


# --- key pairs of local actors ------------------------------------------------------------------


async def get_key_pair(conn: asyncpg.Connection, table: str, actor_id: uuid.UUID) -> KeyPair | None:
    """The stored pair of a local agent or submolt; None when it has none yet (or is not local)."""
    assert table in _ACTOR_TABLES
    row = await conn.fetchrow(
        f"""SELECT private_key_pem, public_key_pem FROM {table}
            WHERE id = $1 AND is_local AND private_key_pem IS NOT NULL""",
        actor_id,
    )
    return KeyPair(row["private_key_pem"], row["public_key_pem"]) if row else None


async def set_key_pair_if_missing(
    conn: asyncpg.Connection, table: str, actor_id: uuid.UUID, pair: KeyPair
) -> KeyPair | None:
    """Store a new pair unless another process stored one first; None when this one lost (reread)."""
    assert table in _ACTOR_TABLES
    row = await conn.fetchrow(
        f"""UPDATE {table} SET private_key_pem = $2, public_key_pem = $3
            WHERE id = $1 AND is_local AND private_key_pem IS NULL
            RETURNING private_key_pem, public_key_pem""",
        actor_id, pair.private_key_pem, pair.public_key_pem,
    )
    return KeyPair(row["private_key_pem"], row["public_key_pem"]) if row else None


async def get_instance_key_pair(conn: asyncpg.Connection) -> KeyPair | None:
    row = await conn.fetchrow("SELECT private_key_pem, public_key_pem FROM instance_actor")
    return KeyPair(row["private_key_pem"], row["public_key_pem"]) if row else None


async def insert_instance_key_pair(conn: asyncpg.Connection, pair: KeyPair) -> None:
    """The single row; a concurrent insert wins and this one is dropped (callers reread)."""
    await conn.execute(
        """INSERT INTO instance_actor (private_key_pem, public_key_pem) VALUES ($1, $2)
           ON CONFLICT (id) DO NOTHING""",
        pair.private_key_pem, pair.public_key_pem,
    )


# --- remote actors as local rows ----------------------------------------------------------------

_AGENT_REMOTE = """'agent' AS kind, id, name, domain, actor_url, ap_type, inbox_url, shared_inbox_url,
    NULL::text AS followers_url, public_key_pem, is_local, fetched_at"""
_SUBMOLT_REMOTE = """'submolt' AS kind, id, name, domain, actor_url, 'Group' AS ap_type, inbox_url, shared_inbox_url,
    followers_url, public_key_pem, is_local, fetched_at"""


def _remote(row: asyncpg.Record) -> RemoteActor:
    return RemoteActor(**dict(row))


async def find_actor_by_url(conn: asyncpg.Connection, actor_url: str) -> RemoteActor | None:
    """The agents or submolts row stored for a remote actor id."""
    row = await conn.fetchrow(f"SELECT {_AGENT_REMOTE} FROM agents WHERE actor_url = $1", actor_url)
    if row is None:
        row = await conn.fetchrow(f"SELECT {_SUBMOLT_REMOTE} FROM submolts WHERE actor_url = $1", actor_url)
    return _remote(row) if row else None


async def find_remote_by_handle(conn: asyncpg.Connection, kind: str, name: str, domain: str) -> RemoteActor | None:
    if not is_storable(name):  # NUL or a lone surrogate (from a path) names nothing: PostgreSQL refuses it
        return None
    if kind == "agent":
        sql = f"SELECT {_AGENT_REMOTE} FROM agents WHERE lower(name) = lower($1) AND domain = $2 AND NOT is_local"
    else:
        sql = f"SELECT {_SUBMOLT_REMOTE} FROM submolts WHERE lower(name) = lower($1) AND domain = $2 AND NOT is_local"
    row = await conn.fetchrow(sql, name, domain.lower())
    return _remote(row) if row else None


async def get_local_actor(conn: asyncpg.Connection, kind: str, name: str) -> RemoteActor | None:
    """A local agent or submolt in the same shape (actor_url NULL: callers derive it)."""
    if not is_storable(name):  # NUL or a lone surrogate (from a path) names nothing: PostgreSQL refuses it
        return None
    if kind == "agent":
        sql = f"SELECT {_AGENT_REMOTE} FROM agents WHERE lower(name) = lower($1) AND is_local"
    else:
        sql = f"SELECT {_SUBMOLT_REMOTE} FROM submolts WHERE lower(name) = lower($1) AND is_local"
    row = await conn.fetchrow(sql, name)
    return _remote(row) if row else None


@dataclass(frozen=True, slots=True)
class RemoteAgentFields:
    actor_url: str
    name: str
    domain: str
    display_name: str
    description: str
    avatar_url: str | None
    ap_type: str
    inbox_url: str
    shared_inbox_url: str | None
    public_key_pem: str | None


@dataclass(frozen=True, slots=True)
class RemoteSubmoltFields:
    actor_url: str
    name: str
    domain: str
    display_name: str
    description: str
    avatar_url: str | None
    banner_url: str | None
    posting_restricted_to_mods: bool
    inbox_url: str
    shared_inbox_url: str | None
    followers_url: str | None
    public_key_pem: str | None


async def upsert_remote_agent(conn: asyncpg.Connection, f: RemoteAgentFields) -> RemoteActor:
    """Insert or refresh by actor URL; an actor that changed its URL but kept name@domain takes over its row."""
    args = (f.name, f.display_name, f.description, f.avatar_url, f.actor_url, f.domain, f.inbox_url,
            f.shared_inbox_url, f.ap_type, f.public_key_pem)
    sets = """name = $1, display_name = $2, description = $3, avatar_url = $4, actor_url = $5, domain = $6,
              inbox_url = $7, shared_inbox_url = $8, ap_type = $9, public_key_pem = coalesce($10, agents.public_key_pem),
              fetched_at = now(), updated_at = now()"""
    try:
        async with conn.transaction():
            row = await conn.fetchrow(
                f"""INSERT INTO agents (name, display_name, description, avatar_url, actor_url, domain, inbox_url,
                                        shared_inbox_url, ap_type, public_key_pem, status, is_local, fetched_at)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'claimed', false, now())
                    ON CONFLICT (actor_url) WHERE actor_url IS NOT NULL DO UPDATE SET {sets}
                    RETURNING {_AGENT_REMOTE}""",
                *args,
            )
    except asyncpg.UniqueViolationError:
        row = await conn.fetchrow(
            f"""UPDATE agents SET {sets} WHERE lower(name) = lower($1) AND domain = $6 AND NOT is_local
                RETURNING {_AGENT_REMOTE}""",
            *args,
        )
    return _remote(row)


async def upsert_remote_submolt(conn: asyncpg.Connection, f: RemoteSubmoltFields) -> RemoteActor:
    args = (f.name, f.display_name, f.description, f.avatar_url, f.banner_url, f.posting_restricted_to_mods,
            f.actor_url, f.domain, f.inbox_url, f.shared_inbox_url, f.followers_url, f.public_key_pem)
    sets = """name = $1, display_name = $2, description = $3, avatar_url = $4, banner_url = $5,
              posting_restricted_to_mods = $6, actor_url = $7, domain = $8, inbox_url = $9, shared_inbox_url = $10,
              followers_url = $11, public_key_pem = coalesce($12, submolts.public_key_pem),
              fetched_at = now(), updated_at = now()"""
    try:
        async with conn.transaction():
            row = await conn.fetchrow(
                f"""INSERT INTO submolts (name, display_name, description, avatar_url, banner_url,
                                          posting_restricted_to_mods, actor_url, domain, inbox_url, shared_inbox_url,
                                          followers_url, public_key_pem, is_local, fetched_at)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, false, now())
                    ON CONFLICT (actor_url) WHERE actor_url IS NOT NULL DO UPDATE SET {sets}
                    RETURNING {_SUBMOLT_REMOTE}""",
                *args,
            )
    except asyncpg.UniqueViolationError:
        row = await conn.fetchrow(
            f"""UPDATE submolts SET {sets} WHERE lower(name) = lower($1) AND domain = $8 AND NOT is_local
                RETURNING {_SUBMOLT_REMOTE}""",
            *args,
        )
    return _remote(row)


# --- remote keys --------------------------------------------------------------------------------


async def get_remote_key(conn: asyncpg.Connection, key_id: str) -> RemoteKey | None:
    row = await conn.fetchrow(
        "SELECT key_id, owner_url, public_key_pem, fetched_at FROM remote_keys WHERE key_id = $1", key_id
    )
    return RemoteKey(**dict(row)) if row else None


async def upsert_remote_key(conn: asyncpg.Connection, key_id: str, owner_url: str, pem: str) -> RemoteKey:
    """Cache a key and keep the owner's actor row (if any) on the same key."""
    row = await conn.fetchrow(
        """INSERT INTO remote_keys (key_id, owner_url, public_key_pem, fetched_at) VALUES ($1, $2, $3, now())
           ON CONFLICT (key_id) DO UPDATE SET owner_url = $2, public_key_pem = $3, fetched_at = now()
           RETURNING key_id, owner_url, public_key_pem, fetched_at""",
        key_id, owner_url, pem,
    )
    await conn.execute(
        "UPDATE agents SET public_key_pem = $2 WHERE actor_url = $1 AND NOT is_local AND public_key_pem IS DISTINCT FROM $2",
        owner_url, pem,
    )
    await conn.execute(
        "UPDATE submolts SET public_key_pem = $2 WHERE actor_url = $1 AND NOT is_local AND public_key_pem IS DISTINCT FROM $2",
        owner_url, pem,
    )
    return RemoteKey(**dict(row))
