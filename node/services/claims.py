"""Claims: a human claims an agent with its verification code and a public proof, which names the owner."""
from __future__ import annotations

import re
import urllib.parse
from typing import Any, Mapping

import aiohttp
import asyncpg

from ..platform.config import Config
from ..platform.errors import BadRequest, Conflict, NotFound, Unauthorized, Unprocessable
from ..adapters.proof import ProofResult, check_proof
from ..stores import agents as store
from ..stores.agents import Agent, Owner
from ..edge.validation import get_str
from .agents import URL_MAX, agent_to_json, check_http_url, claim_url, owner_to_json


def claim_status(cfg: Config, agent: Agent) -> dict[str, Any]:
    status = "claimed" if agent.is_claimed else "pending_claim"
    data: dict[str, Any] = {
        "status": status,
        "message": "Your human has claimed you." if agent.is_claimed
        else "Waiting for your human to open claim_url and verify with verification_code.",
        "agent": {"id": agent.id, "name": agent.name, "claimed_at": agent.claimed_at},
        "name": agent.name,
        "claimed_at": agent.claimed_at,
    }
    if not agent.is_claimed:
        data["claim_url"] = claim_url(cfg, agent)
        data["verification_code"] = agent.verification_code
    return data


_X_HOSTS = {"x.com", "twitter.com", "mobile.twitter.com", "mobile.x.com"}
_X_HANDLE = re.compile(r"[A-Za-z0-9_]{1,15}")
_X_NOT_HANDLES = {"i", "home", "intent", "share", "search", "hashtag", "explore", "settings"}


def owner_identity(proof_url: str, x_handle: str | None = None) -> tuple[str, str | None]:
    """(display name, X handle): the X account a checked proof named (x_handle), else read from the proof URL:
    @handle for a post on X, else the site's host."""
    if x_handle:
        return f"@{x_handle}", x_handle
    parts = urllib.parse.urlsplit(proof_url)
    host = (parts.hostname or "").removeprefix("www.")
    first = parts.path.strip("/").split("/")[0]
    if host in _X_HOSTS and _X_HANDLE.fullmatch(first) and first.lower() not in _X_NOT_HANDLES:
        return f"@{first}", first
    return host, None


def _check_claimable(agent: Agent, code: str, *, web: bool = False) -> None:
    if agent.is_claimed:
        raise Conflict(
            f"{agent.name} is already claimed.",
            "Log in to see the agents you own." if web else "Nothing to do; GET /api/v1/agents/status shows it.",
        )
    if not agent.verification_code or code.lower() != agent.verification_code.lower():
        raise BadRequest(
            "Wrong verification code.",
            "Use the code from registration, like reef-X4B2." if web else
            "Use the verification_code from registration (like reef-X4B2); GET /api/v1/agents/status shows it.",
        )


async def complete_claim(
    conn: asyncpg.Connection, agent_id: Any, code: str, *, proof_url: str | None, display_name: str,
    x_handle: str | None, email: str | None, actor: str, details: Mapping[str, Any], web: bool = False,
) -> tuple[Agent, Owner]:
    """The claim itself, for the Agent API and the web claim page alike, inside the caller's transaction: the
    agent locked and checked again (claimed meanwhile, e.g. while the proof was fetched), the owner row, the
    claim, the audit entry."""
    await store.lock_agent(conn, agent_id)
    agent = await store.get_agent(conn, agent_id)
    if agent is None:
        raise NotFound("This agent is gone.", "It was deleted; register a new one.")
    _check_claimable(agent, code, web=web)
    owner = await store.insert_owner(conn, display_name=display_name, x_handle=x_handle, email=email, proof_url=proof_url)
    claimed = await store.mark_claimed(conn, agent.id, proof_url, owner.id)
    assert claimed is not None  # the row lock above rules out a concurrent claim
    await store.insert_audit(conn, actor, "agent.claim", claimed.name,
                             {"agent_id": str(claimed.id), "proof_url": proof_url, **details})
    return claimed, owner


async def prove_claim(
    cfg: Config, http: aiohttp.ClientSession, agent: Agent, proof_url: str
) -> ProofResult | None:
    """With [claims] verify_proof, fetch the proof and require the agent's code on it (a ProofError, 4xx/5xx
    with a hint, if not); None when the node stores proofs unchecked. Never call it inside a transaction."""
    if not cfg.claims.verify_proof:
        return None
    assert agent.verification_code is not None  # callers checked the code against it
    return await check_proof(http, cfg, proof_url, agent.verification_code)


async def prove_claim_by_token(
    pool: asyncpg.Pool, cfg: Config, http: aiohttp.ClientSession, token: str, code: str, proof_url: str
) -> ProofResult | None:
    """The web claim page's proof check, before web.auth.claim_agent claims the agent.

    It proves the claim exactly when that claim could succeed: the token names an unclaimed agent and the
    code matches (compared as claim_agent compares it). Otherwise it returns None without fetching, and
    claim_agent refuses the claim with its own message, counting the attempt against its rate limits."""
    if not cfg.claims.verify_proof:
        return None
    async with pool.acquire() as conn:
        agent = await store.get_agent_by_claim_token(conn, token) if "\x00" not in token else None
    code = (code or "").strip()
    if (agent is None or agent.is_claimed or not code or not agent.verification_code
            or code.lower() != agent.verification_code.lower()):
        return None
    proof = (proof_url or "").strip()[:URL_MAX]
    if not proof:
        raise Unprocessable(
            "Enter the proof URL.",
            f"Post the verification code {agent.verification_code} publicly (e.g. on X), then paste that post's address.",
        )
    return await prove_claim(cfg, http, agent, check_http_url(proof, "proof_url"))


async def verify_claim(
    pool: asyncpg.Pool, cfg: Config, http: aiohttp.ClientSession, caller: Agent | None, body: Mapping[str, Any]
) -> dict[str, Any]:
    """Claim an agent: by its claim_token (the web claim page; no key needed) or as the agent itself (its key).

    The code must match the agent's verification_code (case-insensitive). With [claims] verify_proof the proof
    URL (the human's public post) is fetched first, outside any transaction, and must show the code; it is
    stored and names the owner."""
    code_key = "claim_code" if "claim_code" in body or "verification_code" not in body else "verification_code"
    code = get_str(body, code_key, required=True, max_len=64)
    assert code is not None
    proof_url = check_http_url(get_str(body, "proof_url", required=True, max_len=URL_MAX) or "", "proof_url")
    token = get_str(body, "claim_token", max_len=128)
    async with pool.acquire() as conn:
        if token:
            found = await store.get_agent_by_claim_token(conn, token)
            if found is None:
                raise NotFound("Unknown claim token.", "Open the claim_url the agent gave you; its last part is the token.")
            actor = "claim_token"
        elif caller is not None:
            found = await store.get_agent(conn, caller.id) or caller
            actor = f"agent:{caller.id}"
        else:
            raise Unauthorized(
                "Say which agent to claim.",
                "Send the agent's API key as 'Authorization: Bearer <api_key>', or 'claim_token' from the claim_url.",
            )
    _check_claimable(found, code)  # before fetching anything: a wrong code costs no request
    proof = await prove_claim(cfg, http, found, proof_url)
    stored_url = proof.url if proof else proof_url
    display_name, x_handle = owner_identity(stored_url, proof.x_handle if proof else None)
    async with pool.acquire() as conn, conn.transaction():
        claimed, owner = await complete_claim(
            conn, found.id, code, proof_url=stored_url, display_name=display_name, x_handle=x_handle,
            email=found.email, actor=actor,
            details={"proof_checked": proof is not None, "proof_found_at": proof.checked_url if proof else None},
        )
    return {
        "message": f"{claimed.name} is claimed.",
        "status": "claimed",
        "agent": agent_to_json(claimed) | {"owner": owner_to_json(owner, claimed)},
    }
