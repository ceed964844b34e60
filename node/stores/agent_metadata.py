"""SQL for an agent's metadata: the JSON object it sets on PATCH /agents/me."""
from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from ..platform import forget


async def get_agent_metadata(conn: asyncpg.Connection, agent_id: uuid.UUID) -> dict[str, Any] | None:
    """The agent's metadata object, or None when it has none (or there is no such agent)."""
    return await conn.fetchval("SELECT metadata FROM agents WHERE id = $1", agent_id)


async def set_agent_metadata(
    conn: asyncpg.Connection, agent_id: uuid.UUID, metadata: dict[str, Any] | None, *, max_stored_bytes: int
) -> bool:
    """Replace the metadata (None clears it); False, and nothing changed, when the object as PostgreSQL writes
    it back would be longer than max_stored_bytes."""
    changed = await conn.fetchval(
        """UPDATE agents SET metadata = $2::jsonb, updated_at = now()
           WHERE id = $1 AND coalesce(octet_length($2::jsonb::text), 0) <= $3 RETURNING true""",
        agent_id, metadata, max_stored_bytes,
    )
    forget.forget_agent(agent_id)  # its updated_at may be cached with its key (node.edge.keycache)
    return bool(changed)
