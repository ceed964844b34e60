"""The ban rule: an agent banned from a submolt cannot post or comment there (kept import-light for posts/comments)."""
from __future__ import annotations

import uuid

import asyncpg

from ..platform.errors import Forbidden
from ..stores import moderation as store


async def require_not_banned(conn: asyncpg.Connection, submolt_id: uuid.UUID, agent_id: uuid.UUID) -> None:
    """A 403 when the agent is banned from the submolt (call inside the write's transaction)."""
    name = await store.banned_from(conn, submolt_id, agent_id)
    if name is not None:
        raise Forbidden(
            f"You are banned from m/{name}.",
            "Its moderators banned this agent; post in another submolt, or ask them to lift the ban.",
        )
