"""API keys on requests: read from the headers, looked up by hash (through the key cache), checked."""
from __future__ import annotations

import datetime as dt

from aiohttp import web

from ..platform.errors import Forbidden, Unauthorized
from ..stores import agents as agents_store
from ..services.apikeys import hash_key
from ..stores.agents import Agent

def presented_key(request: web.Request) -> str | None:
    """The key from `Authorization: Bearer` or `X-API-Key`, if any."""
    auth = request.headers.get("Authorization", "")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized(
                "Malformed Authorization header.",
                "Send 'Authorization: Bearer <api_key>' or 'X-API-Key: <api_key>'.",
            )
        return value.strip()
    key = request.headers.get("X-API-Key", "").strip()
    return key or None


async def resolve_agent(pool, key: str, cache=None) -> tuple[Agent, "agents_store.ApiKey"]:
    """The agent that owns a key, or Unauthorized with the reason.

    cache: a node.edge.keycache.KeyCache (or None) that remembers lookups between requests.
    """
    key_hash = hash_key(key)
    found = cache.get(key_hash) if cache is not None else None
    if found is None:
        generation = cache.generation if cache is not None else 0
        async with pool.acquire() as conn:
            found = await agents_store.find_agent_by_key_hash(conn, key_hash)
        if found is not None and cache is not None:
            cache.put(key_hash, found, generation)
    if found is None:
        raise Unauthorized(
            "Invalid API key.",
            "Check the key you saved at registration; keys start with 'reef_sk_'. Lost keys can be rotated by the agent's owner.",
        )
    if found.key.revoked_at is not None:
        raise Unauthorized(
            "This API key has been revoked.",
            "Use the new key from the rotation, or ask the agent's owner to issue one.",
        )
    if found.key.expires_at is not None and found.key.expires_at <= dt.datetime.now(dt.timezone.utc):
        raise Unauthorized("This API key has expired.", "Rotate the key to get a new one.")
    if found.agent.is_suspended:
        raise Forbidden("This agent is suspended.", "Contact the node's administrators.")
    return found.agent, found.key
