"""The outbox worker: takes pending domain events in order and turns each into activities and deliveries."""
from __future__ import annotations

import asyncio
import logging
from typing import Callable

import asyncpg

from node.platform.config import Config

from node.platform.polling import PollingWorker

from . import activity_store
from .outbox import process_event

log = logging.getLogger(__name__)


class OutboxWorker(PollingWorker):
    """Takes pending events in order (FOR UPDATE SKIP LOCKED), turns each into activities and deliveries and
    marks it processed, all in one transaction; woken by NOTIFY reef_outbox, polling as a fallback."""

    task_name = "reef-outbox"

    def __init__(
        self, pool: asyncpg.Pool, cfg: Config, *, on_deliveries: Callable[[], None] | None = None,
        batch_size: int = 100, poll_seconds: float = 5.0,
    ) -> None:
        self.pool = pool
        self.cfg = cfg
        self.on_deliveries = on_deliveries
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        super().__init__()
        self._last_prune = float("-inf")

    def more_waiting(self, taken: int) -> bool:
        return taken >= self.batch_size  # a short batch took all there was

    async def housekeeping(self) -> None:
        await self.prune_if_due()

    async def prune_if_due(self) -> None:
        """Old finished queue rows go, at most once an hour per process."""
        now = asyncio.get_running_loop().time()
        if now - self._last_prune < 3600:
            return
        self._last_prune = now
        async with self.pool.acquire() as conn:
            removed = await activity_store.prune(conn)
        if removed:
            log.info("pruned %d finished federation queue rows", removed)

    async def run_once(self) -> int:
        """Process one batch of events; returns how many were taken."""
        deliveries = 0
        async with self.pool.acquire() as conn, conn.transaction():
            events = await activity_store.take_outbox_events(conn, self.batch_size)
            for ev in events:
                try:
                    async with conn.transaction():  # a savepoint: one bad event does not undo the others
                        deliveries += await process_event(conn, self.cfg, ev)
                        await activity_store.mark_event_processed(conn, ev.id)
                except (asyncpg.PostgresError, LookupError, KeyError, TypeError, ValueError, AssertionError) as exc:
                    # A bug or an inconsistent row must not block the queue: record it, log it, move on.
                    log.exception("outbox event %d (%s) could not be turned into activities", ev.id, ev.kind)
                    await activity_store.mark_event_processed(conn, ev.id, error=f"{exc.__class__.__name__}: {exc}")
        if deliveries and self.on_deliveries is not None:
            self.on_deliveries()
        return len(events)
