"""Stream events written inside a service's transaction and published after it commits."""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Protocol

import asyncpg

from ..stores import stream as stream_store


class Publisher(Protocol):
    async def publish_events(self, deliveries: list[tuple[uuid.UUID, int]], type_: str, payload: dict[str, Any]) -> None: ...

    async def publish_frame(self, agent_ids: list[uuid.UUID], frame: dict[str, Any]) -> None: ...


def iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


class Outbox:
    """Events written in a transaction, published only after it commits (nobody hears of a rollback)."""

    def __init__(self) -> None:
        self.items: list[tuple[list[tuple[uuid.UUID, int]], str, dict[str, Any]]] = []

    async def add(self, conn: asyncpg.Connection, agent_ids: list[uuid.UUID], type_: str, payload: dict[str, Any]) -> None:
        deliveries = await stream_store.insert_events(conn, agent_ids, type_, payload)
        self.items.append((deliveries, type_, payload))

    def defer(self, deliveries: list[tuple[uuid.UUID, int]], type_: str, payload: dict[str, Any]) -> None:
        """Events a store function already wrote (e.g. messages.send_message), to publish with the rest."""
        self.items.append((deliveries, type_, payload))

    async def publish(self, bus: Publisher) -> None:
        for deliveries, type_, payload in self.items:
            await bus.publish_events(deliveries, type_, payload)
