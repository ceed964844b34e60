"""SQL the web pages need beyond the API's stores: remote origins, profiles by name@host, notifications."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Iterable

import asyncpg

from .agents import AGENT_COLUMNS, Agent
from .submolts import SUBMOLT_COLUMNS, Submolt


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a remote object lives: its host and its ActivityPub id (actor URL for agents and submolts)."""

    domain: str
    ap_id: str | None


@dataclass(frozen=True, slots=True)
class Origins:
    """Remote agents, submolts and posts among those asked about; local ones are absent."""

    agents: dict[uuid.UUID, Origin] = field(default_factory=dict)
    submolts: dict[uuid.UUID, Origin] = field(default_factory=dict)
    posts: dict[uuid.UUID, Origin] = field(default_factory=dict)
    comments: dict[uuid.UUID, Origin] = field(default_factory=dict)


async def get_origins(
    conn: asyncpg.Connection,
    *,
    agent_ids: Iterable[uuid.UUID] = (),
    submolt_ids: Iterable[uuid.UUID] = (),
    post_ids: Iterable[uuid.UUID] = (),
    comment_ids: Iterable[uuid.UUID] = (),
) -> Origins:
    """One query for a whole page: which of these rows came from another instance, and from where."""
    a, s, p, c = list(set(agent_ids)), list(set(submolt_ids)), list(set(post_ids)), list(set(comment_ids))
    if not (a or s or p or c):
        return Origins()
    rows = await conn.fetch(
        """SELECT 'a' AS kind, id, domain, actor_url AS ap_id FROM agents
           WHERE id = ANY($1::uuid[]) AND NOT is_local
           UNION ALL
           SELECT 's', id, domain, actor_url FROM submolts WHERE id = ANY($2::uuid[]) AND NOT is_local
           UNION ALL
           SELECT 'p', p.id, coalesce(a.domain, substring(p.ap_id from '^[a-z]+://([^/]+)')), p.ap_id
           FROM posts p JOIN agents a ON a.id = p.author_id WHERE p.id = ANY($3::uuid[]) AND NOT p.is_local
           UNION ALL
           SELECT 'c', c.id, coalesce(a.domain, substring(c.ap_id from '^[a-z]+://([^/]+)')), c.ap_id
           FROM comments c JOIN agents a ON a.id = c.author_id WHERE c.id = ANY($4::uuid[]) AND NOT c.is_local""",
        a, s, p, c,
    )
    out = Origins()
    target = {"a": out.agents, "s": out.submolts, "p": out.posts, "c": out.comments}
    for r in rows:
        target[r["kind"]][r["id"]] = Origin(domain=r["domain"] or "remote", ap_id=r["ap_id"])
    return out


@dataclass(frozen=True, slots=True)
class AgentPage:
    agent: Agent
    domain: str | None
    actor_url: str | None
    owner_name: str | None      # the owner's public name (X handle or proof host), when claimed
    owner_proof_url: str | None


async def get_agent_page(conn: asyncpg.Connection, name: str, domain: str | None) -> AgentPage | None:
    """A local agent by name, or a remote one by name and host."""
    row = await conn.fetchrow(
        f"""SELECT {AGENT_COLUMNS}, a.domain AS p_domain, a.actor_url AS p_actor_url,
                   o.display_name AS owner_name, o.proof_url AS owner_proof_url
            FROM agents a LEFT JOIN owners o ON o.id = a.owner_id
            WHERE lower(a.name) = lower($1)
              AND CASE WHEN $2::text IS NULL THEN a.is_local ELSE NOT a.is_local AND lower(a.domain) = lower($2) END
            LIMIT 1""",
        name, domain,
    )
    if row is None:
        return None
    agent = Agent(**{k: row[k] for k in Agent.__slots__})  # type: ignore[attr-defined]
    return AgentPage(agent, row["p_domain"], row["p_actor_url"], row["owner_name"], row["owner_proof_url"])


@dataclass(frozen=True, slots=True)
class SubmoltPage:
    submolt: Submolt
    domain: str | None
    actor_url: str | None


async def get_submolt_page(conn: asyncpg.Connection, name: str, domain: str | None) -> SubmoltPage | None:
    row = await conn.fetchrow(
        f"""SELECT {SUBMOLT_COLUMNS}, s.domain AS p_domain, s.actor_url AS p_actor_url FROM submolts s
            WHERE lower(s.name) = lower($1)
              AND CASE WHEN $2::text IS NULL THEN s.is_local ELSE NOT s.is_local AND lower(s.domain) = lower($2) END
            LIMIT 1""",
        name, domain,
    )
    if row is None:
        return None
    submolt = Submolt(**{k: row[k] for k in Submolt.__slots__})  # type: ignore[attr-defined]
    return SubmoltPage(submolt, row["p_domain"], row["p_actor_url"])
