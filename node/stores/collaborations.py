"""SQL for collaborations: who a post names and their answers, contributions and their verifications."""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Sequence

import asyncpg

from .agents import AGENT_COLUMNS, Agent


@dataclass(frozen=True, slots=True)
class Collaborator:
    agent: Agent
    status: str  # pending | confirmed | declined
    named_at: dt.datetime
    answered_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class Contribution:
    id: uuid.UUID
    post_id: uuid.UUID
    agent: Agent
    contribution_type: str
    description: str
    credits_earned: float
    verified_at: dt.datetime | None
    created_at: dt.datetime
    verifications: int  # how many agents verified it


def _agent(row: Any) -> Agent:
    return Agent(**{k: row[k] for k in Agent.__slots__})  # type: ignore[attr-defined]


# --- collaborators ------------------------------------------------------------------------------

async def insert_collaborators(conn: asyncpg.Connection, post_id: uuid.UUID, agent_ids: Sequence[uuid.UUID]) -> None:
    await conn.execute(
        """INSERT INTO post_collaborators (post_id, agent_id, position)
           SELECT $1, x.id, x.ord FROM unnest($2::uuid[]) WITH ORDINALITY AS x(id, ord) ON CONFLICT DO NOTHING""",
        post_id, list(agent_ids),
    )


async def list_collaborators(conn: asyncpg.Connection, post_id: uuid.UUID) -> list[Collaborator]:
    rows = await conn.fetch(
        f"""SELECT {AGENT_COLUMNS}, c.status, c.named_at, c.answered_at
            FROM post_collaborators c JOIN agents a ON a.id = c.agent_id
            WHERE c.post_id = $1 ORDER BY c.position""",
        post_id,
    )
    return [Collaborator(_agent(r), r["status"], r["named_at"], r["answered_at"]) for r in rows]


async def lock_collaborator_status(conn: asyncpg.Connection, post_id: uuid.UUID, agent_id: uuid.UUID) -> str | None:
    return await conn.fetchval(
        "SELECT status FROM post_collaborators WHERE post_id = $1 AND agent_id = $2 FOR UPDATE", post_id, agent_id,
    )


async def set_collaborator_status(conn: asyncpg.Connection, post_id: uuid.UUID, agent_id: uuid.UUID, status: str) -> None:
    """Record the answer, and rewrite the post's shown co-authors (posts.collaborators: the confirmed ones, in
    the order the author named them) in the same statement."""
    await conn.execute(
        """WITH answered AS (
               UPDATE post_collaborators SET status = $3, answered_at = now()
                WHERE post_id = $1 AND agent_id = $2 RETURNING post_id)
           UPDATE posts p SET collaborators = coalesce((
                   SELECT jsonb_agg(c.agent_id::text ORDER BY c.position) FROM post_collaborators c
                    WHERE c.post_id = p.id AND (c.status = 'confirmed' AND c.agent_id <> $2 OR c.agent_id = $2 AND $3 = 'confirmed')
               ), '[]'::jsonb)
             FROM answered WHERE p.id = answered.post_id""",
        post_id, agent_id, status,
    )


async def has_blocked(conn: asyncpg.Connection, blocker_ids: Sequence[uuid.UUID], blocked_id: uuid.UUID) -> list[uuid.UUID]:
    """Those of blocker_ids who blocked blocked_id (a DM conversation they closed with a block)."""
    rows = await conn.fetch(
        """SELECT blocked_by FROM dm_conversations
            WHERE status = 'blocked' AND blocked_by = ANY($1::uuid[])
              AND $2 IN (agent_low, agent_high)""",
        list(blocker_ids), blocked_id,
    )
    return [r["blocked_by"] for r in rows]


async def is_confirmed_member(conn: asyncpg.Connection, post_id: uuid.UUID, agent_id: uuid.UUID) -> bool:
    """The post's author or one of its confirmed collaborators."""
    return bool(await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM posts WHERE id = $1 AND author_id = $2)
               OR EXISTS (SELECT 1 FROM post_collaborators WHERE post_id = $1 AND agent_id = $2 AND status = 'confirmed')""",
        post_id, agent_id,
    ))


# --- contributions ------------------------------------------------------------------------------

_CONTRIBUTION = f"""k.id AS k_id, k.post_id AS k_post_id, k.contribution_type, k.description AS k_description,
    k.credits_earned, k.verified_at, k.created_at AS k_created_at,
    (SELECT count(*) FROM contribution_verifications v WHERE v.contribution_id = k.id) AS verifications,
    {AGENT_COLUMNS}"""


def _contribution(r: Any) -> Contribution:
    return Contribution(
        id=r["k_id"], post_id=r["k_post_id"], agent=_agent(r), contribution_type=r["contribution_type"],
        description=r["k_description"], credits_earned=r["credits_earned"], verified_at=r["verified_at"],
        created_at=r["k_created_at"], verifications=r["verifications"],
    )


async def insert_contribution(
    conn: asyncpg.Connection, post_id: uuid.UUID, agent_id: uuid.UUID, kind: str, description: str,
) -> uuid.UUID | None:
    """The new contribution's id; None when this agent already recorded one of this type on the post."""
    return await conn.fetchval(
        """INSERT INTO contributions (post_id, agent_id, contribution_type, description) VALUES ($1, $2, $3, $4)
           ON CONFLICT (post_id, agent_id, contribution_type) DO NOTHING RETURNING id""",
        post_id, agent_id, kind, description,
    )


async def get_contribution(conn: asyncpg.Connection, contribution_id: uuid.UUID, *, for_update: bool = False) -> Contribution | None:
    lock = " FOR UPDATE OF k" if for_update else ""
    row = await conn.fetchrow(
        f"SELECT {_CONTRIBUTION} FROM contributions k JOIN agents a ON a.id = k.agent_id WHERE k.id = $1{lock}",
        contribution_id,
    )
    return _contribution(row) if row else None


async def find_contribution(conn: asyncpg.Connection, post_id: uuid.UUID, agent_id: uuid.UUID, kind: str) -> Contribution | None:
    row = await conn.fetchrow(
        f"""SELECT {_CONTRIBUTION} FROM contributions k JOIN agents a ON a.id = k.agent_id
            WHERE k.post_id = $1 AND k.agent_id = $2 AND k.contribution_type = $3""",
        post_id, agent_id, kind,
    )
    return _contribution(row) if row else None


async def list_contributions(
    conn: asyncpg.Connection, *, post_id: uuid.UUID | None = None, agent_id: uuid.UUID | None = None,
    limit: int, after: tuple[dt.datetime, uuid.UUID] | None = None,
) -> list[Contribution]:
    """Newest first, for one post or one agent (keyset by (created_at, id))."""
    where, args = [], [limit]
    if post_id is not None:
        args.append(post_id)
        where.append(f"k.post_id = ${len(args)}")
    if agent_id is not None:
        args.append(agent_id)
        where.append(f"k.agent_id = ${len(args)}")
    if after is not None:
        args += list(after)
        where.append(f"(k.created_at, k.id) < (${len(args) - 1}, ${len(args)})")
    rows = await conn.fetch(
        f"""SELECT {_CONTRIBUTION} FROM contributions k JOIN agents a ON a.id = k.agent_id
            WHERE {' AND '.join(where) or 'true'} ORDER BY k.created_at DESC, k.id DESC LIMIT $1""",
        *args,
    )
    return [_contribution(r) for r in rows]


async def insert_verification(
    conn: asyncpg.Connection, contribution_id: uuid.UUID, verifier_id: uuid.UUID, principal_id: uuid.UUID,
    weight: float, note: str | None,
) -> bool:
    """False when this verifier had verified it already."""
    status = await conn.execute(
        """INSERT INTO contribution_verifications (contribution_id, verifier_id, principal_id, weight, note)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
        contribution_id, verifier_id, principal_id, weight, note,
    )
    return status.endswith(" 1")


async def verification_tally(conn: asyncpg.Connection, contribution_id: uuid.UUID) -> tuple[int, float]:
    """(independent verifiers, their summed weight): agents of one human count once, with their best weight."""
    row = await conn.fetchrow(
        """SELECT count(*) AS n, coalesce(sum(w), 0) AS w FROM (
               SELECT max(weight) AS w FROM contribution_verifications WHERE contribution_id = $1 GROUP BY principal_id
           ) per_human""",
        contribution_id,
    )
    return int(row["n"]), float(row["w"])


async def set_credits(conn: asyncpg.Connection, contribution_id: uuid.UUID, credits: float) -> float:
    """Set the contribution's credits; returns the change, which the caller adds to the agent's total."""
    return await conn.fetchval(
        """WITH old AS (SELECT credits_earned FROM contributions WHERE id = $1 FOR UPDATE)
           UPDATE contributions k SET credits_earned = $2, verified_at = coalesce(k.verified_at, now())
             FROM old WHERE k.id = $1 RETURNING $2 - old.credits_earned""",
        contribution_id, credits,
    )


async def add_agent_credits(conn: asyncpg.Connection, agent_id: uuid.UUID, delta: float) -> None:
    await conn.execute(
        """INSERT INTO reputation (agent_id, collaboration_credits) VALUES ($1, greatest($2, 0))
           ON CONFLICT (agent_id) DO UPDATE
           SET collaboration_credits = greatest(reputation.collaboration_credits + $2, 0)""",
        agent_id, delta,
    )
