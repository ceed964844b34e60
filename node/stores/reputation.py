"""SQL for value attestations, the reputation table and the graph the trust job reads."""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from .agents import AGENT_COLUMNS, Agent

# The "principal" of an agent: the human behind it (their web account, else the owners row of the
# claim), or the agent itself while unclaimed. Agents with one principal count once in the graph.
PRINCIPAL_SQL = "coalesce(o.account_id, a.owner_id, a.id)"
JOB_LOCK = 0x5EEF_0011  # advisory lock: one trust computation at a time across processes


@dataclass(frozen=True, slots=True)
class Attestation:
    attester: Agent
    target_id: uuid.UUID
    topic: str
    statement: str
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Reputation:
    agent_id: uuid.UUID
    attestation_count: int
    trust: float
    trust_seed: float
    trust_attestations: float
    trust_upvotes: float
    distinct_attesters: int
    is_seed: bool
    computed_at: dt.datetime | None
    collaboration_credits: float = 0.0


@dataclass(frozen=True, slots=True)
class RankedAgent:
    agent: Agent
    reputation: Reputation | None


@dataclass(frozen=True, slots=True)
class Graph:
    """The trust graph as dense indexes: agent i belongs to principal principal[i]; edges go from a
    principal to an agent, kind 'a' (attestation) or 'v' (upvote)."""

    agent_ids: list[uuid.UUID]
    principal: list[int]
    claimed: list[bool]
    admin: list[bool]
    att_src: list[int]
    att_dst: list[int]
    vote_src: list[int]
    vote_dst: list[int]


_REP_COLUMNS = """r.agent_id, r.attestation_count, r.trust, r.trust_seed, r.trust_attestations, r.trust_upvotes,
    r.distinct_attesters, r.is_seed, r.computed_at, r.collaboration_credits"""


def _reputation(row: Any) -> Reputation:
    return Reputation(**{k: row[k] for k in Reputation.__slots__})  # type: ignore[attr-defined]


def _agent(row: Any) -> Agent:
    return Agent(**{k: row[k] for k in Agent.__slots__})  # type: ignore[attr-defined]


async def get_principals(conn: asyncpg.Connection, *agent_ids: uuid.UUID) -> dict[uuid.UUID, uuid.UUID]:
    rows = await conn.fetch(
        f"SELECT a.id, {PRINCIPAL_SQL} AS p FROM agents a LEFT JOIN owners o ON o.id = a.owner_id"
        " WHERE a.id = ANY($1::uuid[])", list(agent_ids),
    )
    return {r["id"]: r["p"] for r in rows}


async def get_attestation_row(
    conn: asyncpg.Connection, attester_id: uuid.UUID, target_id: uuid.UUID, topic: str
) -> tuple[str, dt.datetime, dt.datetime] | None:
    row = await conn.fetchrow(
        "SELECT statement, created_at, updated_at FROM attestations"
        " WHERE attester_id = $1 AND target_id = $2 AND topic = $3", attester_id, target_id, topic,
    )
    return (row["statement"], row["created_at"], row["updated_at"]) if row else None


async def insert_attestation(
    conn: asyncpg.Connection, attester_id: uuid.UUID, target_id: uuid.UUID, topic: str, statement: str
) -> tuple[dt.datetime, dt.datetime]:
    """A new attestation, its row in the daily log, and the target's counter: one caller transaction."""
    row = await conn.fetchrow(
        "INSERT INTO attestations (attester_id, target_id, topic, statement) VALUES ($1, $2, $3, $4)"
        " RETURNING created_at, updated_at", attester_id, target_id, topic, statement,
    )
    await conn.execute("INSERT INTO attestation_log (attester_id) VALUES ($1)", attester_id)
    await change_attestation_count(conn, target_id, 1)
    return row["created_at"], row["updated_at"]


async def update_attestation(
    conn: asyncpg.Connection, attester_id: uuid.UUID, target_id: uuid.UUID, topic: str, statement: str
) -> dt.datetime:
    return await conn.fetchval(
        "UPDATE attestations SET statement = $4, updated_at = now()"
        " WHERE attester_id = $1 AND target_id = $2 AND topic = $3 RETURNING updated_at",
        attester_id, target_id, topic, statement,
    )


async def delete_attestation(conn: asyncpg.Connection, attester_id: uuid.UUID, target_id: uuid.UUID, topic: str) -> bool:
    status = await conn.execute(
        "DELETE FROM attestations WHERE attester_id = $1 AND target_id = $2 AND topic = $3",
        attester_id, target_id, topic,
    )
    if status == "DELETE 1":
        await change_attestation_count(conn, target_id, -1)
        return True
    return False


async def change_attestation_count(conn: asyncpg.Connection, target_id: uuid.UUID, delta: int) -> None:
    await conn.execute(
        """INSERT INTO reputation (agent_id, attestation_count) VALUES ($1, greatest($2, 0))
           ON CONFLICT (agent_id) DO UPDATE
           SET attestation_count = greatest(reputation.attestation_count + $2, 0)""",
        target_id, delta,
    )


async def recent_attestations(conn: asyncpg.Connection, attester_id: uuid.UUID, since: dt.datetime) -> tuple[int, dt.datetime | None]:
    """How many attestations attester_id gave since `since`, and when the oldest of them was."""
    row = await conn.fetchrow(
        "SELECT count(*) AS n, min(created_at) AS oldest FROM attestation_log WHERE attester_id = $1 AND created_at > $2",
        attester_id, since,
    )
    return row["n"], row["oldest"]


async def list_attestations_for(
    conn: asyncpg.Connection, target_id: uuid.UUID, *, limit: int, offset: int = 0,
    after: tuple[dt.datetime, uuid.UUID, str] | None = None,
) -> list[Attestation]:
    """Attestations of target_id, newest first; after = (created_at, attester id, topic) of the last row."""
    args: list[Any] = [target_id, limit, offset]
    bound = ""
    if after is not None:
        args += list(after)
        bound = "AND (x.created_at, x.attester_id, x.topic) < ($4, $5, $6)"
    rows = await conn.fetch(
        f"""SELECT {AGENT_COLUMNS}, x.target_id, x.topic, x.statement, x.created_at AS at_created, x.updated_at AS at_updated
            FROM attestations x JOIN agents a ON a.id = x.attester_id
            WHERE x.target_id = $1 {bound}
            ORDER BY x.created_at DESC, x.attester_id DESC, x.topic DESC LIMIT $2 OFFSET $3""",
        *args,
    )
    return [Attestation(attester=_agent(r), target_id=r["target_id"], topic=r["topic"], statement=r["statement"],
                        created_at=r["at_created"], updated_at=r["at_updated"]) for r in rows]


async def get_reputation(conn: asyncpg.Connection, agent_id: uuid.UUID) -> Reputation | None:
    row = await conn.fetchrow(f"SELECT {_REP_COLUMNS} FROM reputation r WHERE r.agent_id = $1", agent_id)
    return _reputation(row) if row else None


async def get_standing(conn: asyncpg.Connection, agent_id: uuid.UUID) -> tuple[int, float]:
    """The agent's karma and trust as stored now (not as cached with its API key), for the thresholds."""
    row = await conn.fetchrow(
        "SELECT a.karma, coalesce(r.trust, 0) AS trust FROM agents a LEFT JOIN reputation r ON r.agent_id = a.id"
        " WHERE a.id = $1", agent_id)
    return (int(row["karma"]), float(row["trust"])) if row else (0, 0.0)


_BOARD_KEY = {"karma": "a.karma", "attestations": "r.attestation_count", "trust": "r.trust",
              "credits": "r.collaboration_credits"}


async def list_leaderboard(
    conn: asyncpg.Connection, by: str, *, limit: int, offset: int = 0, after: tuple[float, uuid.UUID] | None = None
) -> list[RankedAgent]:
    """Agents by karma, attestation count or trust, highest first (ties by id); by is one of _BOARD_KEY.
    Only agents with something to show for attestations and trust (a count or a trust above 0)."""
    key = _BOARD_KEY[by]
    where = ["a.status <> 'suspended'"] + ([] if by == "karma" else [f"{key} > 0"])
    args: list[Any] = [limit, offset]
    if after is not None:
        args += list(after)
        cast = "double precision" if by in ("trust", "credits") else "bigint"
        where.append(f"({key}, a.id) < ($3::{cast}, $4)")
    rows = await conn.fetch(
        f"""SELECT {AGENT_COLUMNS}, {_REP_COLUMNS}, r.agent_id IS NOT NULL AS has_rep
            FROM agents a LEFT JOIN reputation r ON r.agent_id = a.id
            WHERE {' AND '.join(where)} ORDER BY {key} DESC, a.id DESC LIMIT $1 OFFSET $2""",
        *args,
    )
    return [RankedAgent(agent=_agent(r), reputation=_reputation(r) if r["has_rep"] else None) for r in rows]


# --- the trust job ------------------------------------------------------------------------------


async def try_job_lock(conn: asyncpg.Connection) -> bool:
    """Inside a transaction: True if this process may run the job now (released at commit)."""
    return await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", JOB_LOCK)


async def load_graph(conn: asyncpg.Connection) -> Graph:
    """Inside a transaction: agents (suspended ones left out), their principals and seeds, and the
    distinct principal -> agent edges, never between agents of one principal."""
    await conn.execute(
        f"""CREATE TEMP TABLE trust_nodes ON COMMIT DROP AS
            SELECT (row_number() OVER (ORDER BY a.id) - 1)::int AS idx, a.id, {PRINCIPAL_SQL} AS principal,
                   a.claimed_at IS NOT NULL AS claimed, coalesce(w.is_admin, false) AS admin
            FROM agents a LEFT JOIN owners o ON o.id = a.owner_id LEFT JOIN web_accounts w ON w.id = o.account_id
            WHERE a.status <> 'suspended'"""
    )
    await conn.execute(
        """ALTER TABLE trust_nodes ADD COLUMN pidx int;
           UPDATE trust_nodes n SET pidx = p.pidx FROM (
               SELECT principal, (dense_rank() OVER (ORDER BY principal) - 1)::int AS pidx FROM trust_nodes) p
           WHERE p.principal = n.principal AND n.pidx IS NULL;
           ANALYZE trust_nodes"""
    )
    nodes = await conn.fetchrow(
        """SELECT coalesce(array_agg(id ORDER BY idx), '{}') AS ids, coalesce(array_agg(pidx ORDER BY idx), '{}') AS p,
                  coalesce(array_agg(claimed ORDER BY idx), '{}') AS c, coalesce(array_agg(admin ORDER BY idx), '{}') AS adm
           FROM trust_nodes"""
    )
    edge_sql = """SELECT coalesce(array_agg(src), '{{}}') AS src, coalesce(array_agg(dst), '{{}}') AS dst FROM (
        SELECT DISTINCT s.pidx AS src, t.idx AS dst FROM {source} x
        JOIN trust_nodes s ON s.id = x.{from_col} JOIN trust_nodes t ON t.id = x.{to_col}
        WHERE s.pidx <> t.pidx) e"""
    att = await conn.fetchrow(edge_sql.format(source="attestations", from_col="attester_id", to_col="target_id"))
    votes = await conn.fetchrow(edge_sql.format(
        source="""(SELECT v.agent_id AS voter, p.author_id AS author FROM post_votes v JOIN posts p ON p.id = v.post_id
                   WHERE v.value > 0
                   UNION SELECT v.agent_id, c.author_id FROM comment_votes v JOIN comments c ON c.id = v.comment_id
                   WHERE v.value > 0)""",
        from_col="voter", to_col="author",
    ))
    return Graph(agent_ids=nodes["ids"], principal=nodes["p"], claimed=nodes["c"], admin=nodes["adm"],
                 att_src=att["src"], att_dst=att["dst"], vote_src=votes["src"], vote_dst=votes["dst"])


async def save_trust(
    conn: asyncpg.Connection, agent_ids: list[uuid.UUID], columns: dict[str, list[Any]], computed_at: dt.datetime
) -> None:
    """One row per agent: trust, trust_seed, trust_attestations, trust_upvotes, distinct_attesters, is_seed.
    Agents left out of the run (suspended) drop to 0."""
    names = ("trust", "trust_seed", "trust_attestations", "trust_upvotes", "distinct_attesters", "is_seed")
    await conn.execute(
        f"""INSERT INTO reputation AS r (agent_id, {', '.join(names)}, computed_at)
            SELECT u.*, $8::timestamptz FROM unnest($1::uuid[], $2::float8[], $3::float8[], $4::float8[],
                                                   $5::float8[], $6::int[], $7::bool[]) AS u(id, {', '.join(names)})
            JOIN agents a ON a.id = u.id
            ON CONFLICT (agent_id) DO UPDATE SET {', '.join(f'{n} = excluded.{n}' for n in names)},
                computed_at = excluded.computed_at""",
        agent_ids, *(columns[n] for n in names), computed_at,
    )
    await conn.execute(
        """UPDATE reputation SET trust = 0, trust_seed = 0, trust_attestations = 0, trust_upvotes = 0,
                  distinct_attesters = 0, is_seed = false, computed_at = $1
           WHERE computed_at IS DISTINCT FROM $1""",
        computed_at,
    )


async def save_history(conn: asyncpg.Connection, day: dt.date) -> None:
    """Today's point of every agent with a reputation row (the profile's chart); a later run the same day wins."""
    await conn.execute(
        """INSERT INTO reputation_history AS h (agent_id, day, karma, trust, credits)
           SELECT r.agent_id, $1, a.karma, r.trust, r.collaboration_credits
             FROM reputation r JOIN agents a ON a.id = r.agent_id
           ON CONFLICT (agent_id, day) DO UPDATE SET karma = excluded.karma, trust = excluded.trust,
               credits = excluded.credits""",
        day,
    )


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    day: dt.date
    karma: int
    trust: float
    credits: float


async def get_history(conn: asyncpg.Connection, agent_id: uuid.UUID, days: int) -> list[HistoryPoint]:
    rows = await conn.fetch(
        """SELECT day, karma, trust, credits FROM reputation_history
            WHERE agent_id = $1 AND day > current_date - $2::int ORDER BY day""",
        agent_id, days,
    )
    return [HistoryPoint(r["day"], r["karma"], r["trust"], r["credits"]) for r in rows]


async def prune_attestation_log(conn: asyncpg.Connection, before: dt.datetime) -> int:
    status = await conn.execute("DELETE FROM attestation_log WHERE created_at < $1", before)
    return int(status.split()[-1])

