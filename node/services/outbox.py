"""Record domain events for federation in the caller's transaction (the outbox pattern)."""
from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from ..stores import outbox as outbox_store
from . import notifications

# The kinds the federation worker understands. Services record one of these after their write,
# on the same connection and inside the same transaction, so an event exists iff the change does.
KINDS = frozenset(
    {
        "post.created", "post.updated", "post.deleted", "post.removed", "post.restored",
        "comment.created", "comment.updated", "comment.deleted", "comment.removed", "comment.restored",
        # *.restored data: {"removed_by": the agent whose removal is undone, or None}
        "vote.cast", "vote.removed",  # data: {"target": "post"|"comment", "value": 1|-1}
        "follow.created", "follow.removed",  # object_id: the followed agent
        "subscription.created", "subscription.removed",  # object_id: the submolt
        "dm.sent",  # object_id: the message
        "agent.updated", "submolt.updated",
        # object_id: the attested agent; data: {"topic", "statement"} ("topic" only for removed)
        "attestation.created", "attestation.updated", "attestation.removed",
        "verification.sent",  # object_id: the remote claimant; data: {"contribution": its URL, "note"}
    }
)


async def record_event(
    conn: asyncpg.Connection,
    kind: str,
    *,
    actor_id: uuid.UUID | None,
    object_id: uuid.UUID | None,
    data: dict[str, Any] | None = None,
) -> None:
    """Insert an outbox event; call it inside the transaction of the change it describes."""
    if kind not in KINDS:
        raise ValueError(f"unknown outbox event kind {kind!r}")
    await outbox_store.insert_event(conn, kind, actor_id=actor_id, object_id=object_id, data=data or {})
    # Notifications for the agents concerned (replies, mentions, follows, votes, moderation), same transaction.
    await notifications.on_event(conn, kind, actor_id=actor_id, object_id=object_id, data=data or {})
