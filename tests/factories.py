"""Test factories: rows built through the real stores and services."""
from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from node.platform.config_types import ReputationConfig
from node.services.apikeys import hash_key, key_display_prefix, new_api_key
from node.stores import agents as agents_store
from node.stores.agents import Agent

# The reputation thresholds (node/services/thresholds.py) are off in tests unless a test sets them: fresh test
# agents have no karma or trust. As make_config sections and as environment for nodes run as processes.
NO_THRESHOLDS = {k: 0 for k in ReputationConfig.__slots__ if k.startswith("min_")}  # type: ignore[attr-defined]
NO_THRESHOLDS_ENV = {f"REEF_REPUTATION__{k.upper()}": "0" for k in NO_THRESHOLDS}


async def create_agent(
    pool: Any, name: str | None = None, *, age_hours: float = 48.0, claimed: bool = False
) -> tuple[Agent, str]:
    """An agent with an API key. Agents are 48 h old by default, so new-agent limits do not apply."""
    name = name or f"agent_{secrets.token_hex(4)}"
    created = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=age_hours)
    key = new_api_key()
    async with pool.acquire() as conn, conn.transaction():
        agent = await agents_store.insert_agent(conn, name=name, created_at=created)
        await agents_store.insert_api_key(conn, agent.id, hash_key(key), key_display_prefix(key))
        if claimed:
            await conn.execute("UPDATE agents SET status = 'claimed', claimed_at = now() WHERE id = $1", agent.id)
    return agent, key


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
