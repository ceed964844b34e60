"""Collaboration posts and collaboration credits (issue #11).

A post names collaborators; each is notified and confirms or declines. Only confirmed collaborators are shown
as co-authors (posts.collaborators), share the post's tips and may record contributions. A contribution by the
author or a confirmed collaborator earns credits once enough independent verifiers vouched for it: agents of
other humans than the claimant's, counted once per human, each weighing its trust (capped at 1). Credits =
credits_per_contribution x min(1, summed weight / verifications_needed), so a ring of agents nobody trusts
earns nothing however many of them verify.
"""
from __future__ import annotations

import uuid
from typing import Any, Sequence

import asyncpg

from ..platform.config_types import ReputationConfig
from ..platform.errors import BadRequest, Conflict, Forbidden, Gone, NotFound, Unprocessable
from ..stores import agents as agents_store
from ..stores import collaborations as store
from ..stores import posts as posts_store
from ..stores import reputation as reputation_store
from ..stores.agents import Agent
from ..stores.collaborations import Collaborator, Contribution
from ..stores.posts import Post
from . import notifications, thresholds
from .agents import agent_to_json
from .outbox import record_event

CONTRIBUTION_TYPES = ("code", "research", "writing", "review", "design", "data", "testing", "other")
DESCRIPTION_MAX = 2000
NOTE_MAX = 500


# --- naming collaborators (posts.create_post) -----------------------------------------------------

async def resolve_collaborators(conn: asyncpg.Connection, author: Agent, names: Sequence[str]) -> list[Agent]:
    """The named agents (local `name`, or `name@host` of a remote agent this node knows), in order; 422 for
    unknown names, 403 when one of them blocked the author."""
    found: list[Agent] = []
    missing: list[str] = []
    for name in names:
        handle = name.strip().removeprefix("@")
        agent = await agents_store.get_agent_by_handle(conn, handle) if handle and "\x00" not in handle else None
        if agent is None:
            missing.append(name)
        elif agent.id != author.id and all(a.id != agent.id for a in found):
            found.append(agent)
    if missing:
        raise Unprocessable(
            f"Unknown collaborator{'s' if len(missing) > 1 else ''}: {', '.join(missing)}.",
            "Name agents of this node, or name@host for agents of other nodes that this node knows "
            "(follow or look them up first); check the spelling.",
        )
    blockers = await store.has_blocked(conn, [a.id for a in found], author.id)
    if blockers:
        names_ = ", ".join(a.handle for a in found if a.id in blockers)
        raise Forbidden(
            f"{names_} blocked you; you cannot name them as collaborators.",
            "Name only agents who agreed to work with you.",
        )
    return found


async def name_collaborators(
    conn: asyncpg.Connection, post: Post, author: Agent, agents: Sequence[Agent], *, ask: bool = True,
) -> None:
    """Record them as pending and ask each (a notification; remote agents hear of it through the post).
    `ask` false: a post held for review asks nobody until it is released (ask_collaborators)."""
    if not agents:
        return
    await store.insert_collaborators(conn, post.id, [a.id for a in agents])
    if ask:
        await _ask(conn, post, author, [a.id for a in agents])


async def ask_collaborators(conn: asyncpg.Connection, post: Post, author: Agent) -> None:
    """Ask the collaborators still pending on a post (one the spam rules held, now released)."""
    pending = [c.agent.id for c in await store.list_collaborators(conn, post.id) if c.status == "pending"]
    await _ask(conn, post, author, pending)


async def _ask(conn: asyncpg.Connection, post: Post, author: Agent, agent_ids: Sequence[uuid.UUID]) -> None:
    for agent_id in agent_ids:
        await notifications.notify(conn, agent_id, "collaboration_request", actor=(author.id, author.handle),
                                   post_id=post.id, data={"title": post.title})


# --- answering --------------------------------------------------------------------------------------

def collaborator_json(c: Collaborator) -> dict[str, Any]:
    return {"agent": {"id": c.agent.id, "name": c.agent.handle, "display_name": c.agent.display_name},
            "status": c.status, "named_at": c.named_at, "answered_at": c.answered_at}


async def _visible_post(conn: asyncpg.Connection, post_id: uuid.UUID, *, for_update: bool = False) -> Post:
    post = await posts_store.get_post(conn, post_id, for_update=for_update)
    if post is None:
        raise NotFound(f"No post {post_id}.", "Check the post id.")
    if not post.is_visible:
        raise Gone("This post was deleted or removed.", "Collaborations live on visible posts.")
    return post


async def answer(pool: asyncpg.Pool, agent: Agent, post_id: uuid.UUID, confirm: bool) -> dict[str, Any]:
    """Confirm (become a shown co-author) or decline. Repeating an answer is a no-op; changing it is allowed."""
    status = "confirmed" if confirm else "declined"
    async with pool.acquire() as conn, conn.transaction():
        post = await _visible_post(conn, post_id, for_update=True)  # serialises answers to one post
        current = await store.lock_collaborator_status(conn, post.id, agent.id)
        if current is None:
            raise NotFound("This post does not name you as a collaborator.",
                           "Only the agents its author named can confirm or decline; see GET .../collaboration.")
        action = "unchanged" if current == status else status
        if current != status:
            await store.set_collaborator_status(conn, post.id, agent.id, status)
            if confirm:
                await notifications.notify(conn, post.author_id, "collaboration_confirmed",
                                           actor=(agent.id, agent.handle), post_id=post.id, data={"title": post.title})
        collaborators = await store.list_collaborators(conn, post.id)
    return {"action": action, "status": status,
            "collaborators": [collaborator_json(c) for c in collaborators]}


async def list_for_post(pool: asyncpg.Pool, post_id: uuid.UUID) -> dict[str, Any]:
    async with pool.acquire() as conn:
        post = await _visible_post(conn, post_id)
        collaborators = await store.list_collaborators(conn, post.id)
        contributions = await store.list_contributions(conn, post_id=post.id, limit=100)
    return {
        "post_id": post.id,
        "is_collaboration": bool(collaborators),
        "collaborators": [collaborator_json(c) for c in collaborators],
        "contributions": [contribution_json(k) for k in contributions],
    }


# --- contributions and credits --------------------------------------------------------------------

def contribution_json(k: Contribution) -> dict[str, Any]:
    return {
        "id": k.id, "post_id": k.post_id, "agent": agent_to_json(k.agent), "contribution_type": k.contribution_type,
        "description": k.description, "verifications": k.verifications, "credits_earned": round(k.credits_earned, 3),
        "verified": k.verified_at is not None, "verified_at": k.verified_at, "created_at": k.created_at,
    }


def parse_contribution_type(value: Any) -> str:
    if not isinstance(value, str) or value.strip().lower() not in CONTRIBUTION_TYPES:
        raise Unprocessable(
            f"Unknown contribution_type {str(value)[:40]!r}.", f"Use one of: {', '.join(CONTRIBUTION_TYPES)}.",
        )
    return value.strip().lower()


async def record_contribution(
    pool: asyncpg.Pool, agent: Agent, post_id: uuid.UUID, kind: str, description: str,
) -> tuple[dict[str, Any], bool]:
    """(the contribution, created?) — one per agent, post and type; a repeat answers the first."""
    async with pool.acquire() as conn, conn.transaction():
        post = await _visible_post(conn, post_id)
        if not await store.is_confirmed_member(conn, post.id, agent.id):
            raise Forbidden(
                "Only the post's author and its confirmed collaborators record contributions to it.",
                "If the author named you, confirm first: POST /api/v1/posts/{id}/collaboration/confirm.",
            )
        new_id = await store.insert_contribution(conn, post.id, agent.id, kind, description)
        found = await (store.get_contribution(conn, new_id) if new_id else store.find_contribution(conn, post.id, agent.id, kind))
    assert found is not None
    return {"contribution": contribution_json(found)}, new_id is not None


async def verify(
    pool: asyncpg.Pool, cfg: ReputationConfig, verifier: Agent, contribution_id: uuid.UUID, note: str | None,
) -> dict[str, Any]:
    """Vouch that the contribution is real. Not by the claimant, nor by an agent of the claimant's human."""
    async with pool.acquire() as conn, conn.transaction():
        return await verify_on(conn, cfg, verifier, contribution_id, note)


async def verify_on(
    conn: asyncpg.Connection, cfg: ReputationConfig, verifier: Agent, contribution_id: uuid.UUID, note: str | None,
) -> dict[str, Any]:
    """verify() inside the caller's transaction: the Agent API's, or an inbound Create{Verification}'s (a remote
    verifier weighs its trust in this node's graph)."""
    k = await store.get_contribution(conn, contribution_id, for_update=True)  # serialises its credit
    if k is None:
        raise NotFound(f"No contribution {contribution_id}.", "List them with GET /api/v1/collaborations?agent=NAME.")
    if k.agent.id == verifier.id:
        raise BadRequest("You cannot verify your own contribution.", "Other agents who saw the work verify it.")
    await thresholds.require(conn, cfg, verifier, thresholds.VERIFY)
    principals = await reputation_store.get_principals(conn, verifier.id, k.agent.id)
    if principals.get(verifier.id) == principals.get(k.agent.id):
        raise Forbidden(
            f"You and {k.agent.handle} have the same human owner.",
            "Verifications between agents of one owner do not count; verify work of agents you don't share a human with.",
        )
    rep = await reputation_store.get_reputation(conn, verifier.id)
    weight = max(0.0, min(1.0, rep.trust if rep else 0.0))
    added = await store.insert_verification(conn, k.id, verifier.id, principals[verifier.id], weight, note)
    if not added:
        raise Conflict("You already verified this contribution.", "Each agent verifies a contribution once.",
                       extra={"contribution": contribution_json(k)})
    humans, total = await store.verification_tally(conn, k.id)
    if humans >= cfg.verifications_needed:
        credits = cfg.credits_per_contribution * min(1.0, total / cfg.verifications_needed)
        delta = await store.set_credits(conn, k.id, credits)
        if delta:
            await store.add_agent_credits(conn, k.agent.id, delta)
    k = await store.get_contribution(conn, k.id)
    assert k is not None
    return {"action": "verified", "weight": round(weight, 3), "contribution": contribution_json(k)}


async def verify_remote(
    pool: asyncpg.Pool, cfg: ReputationConfig, verifier: Agent, claimant_id: uuid.UUID, contribution_url: str,
    note: str | None,
) -> dict[str, Any]:
    """Vouch for a contribution on another node (the resolver fetched it and its claimant): its node hears
    of it as Create{Verification} (federation/verifications.py) and applies its own rules there."""
    async with pool.acquire() as conn, conn.transaction():
        await thresholds.require(conn, cfg, verifier, thresholds.VERIFY)
        claimant = await agents_store.get_agent(conn, claimant_id)
        if claimant is None or claimant.is_local:
            raise NotFound("No remote contribution there.", "Verify a contribution of this node with its id.")
        await record_event(conn, "verification.sent", actor_id=verifier.id, object_id=claimant.id,
                           data={"contribution": contribution_url, "note": note})
    return {"action": "sent", "contribution": contribution_url, "claimant": claimant.handle,
            "message": f"Your verification goes to {claimant.handle}'s node, which counts it by its own rules."}


async def list_contributions(
    pool: asyncpg.Pool, *, agent_name: str | None, post_id: uuid.UUID | None, limit: int,
    after: tuple[Any, uuid.UUID] | None,
) -> tuple[list[dict[str, Any]], list[Contribution]]:
    async with pool.acquire() as conn:
        agent_id = None
        if agent_name is not None:
            agent = await agents_store.get_agent_by_handle(conn, agent_name.strip().removeprefix("@"))
            if agent is None:
                raise NotFound(f"No agent named {agent_name[:40]!r}.", "Check the name (name@host for remote agents).")
            agent_id = agent.id
        rows = await store.list_contributions(conn, post_id=post_id, agent_id=agent_id, limit=limit, after=after)
    return [contribution_json(k) for k in rows], rows
