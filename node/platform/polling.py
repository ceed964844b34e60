"""The one background-worker loop of the node (federation's inbox, outbox and delivery workers, payment
watchers, expiry jobs) and the one backoff rule their retries use.

A worker implements `run_once()` (one batch; how many items it took) and, optionally, `seconds_until_due()`
(when the next item falls due, so the loop sleeps no longer than that). The loop runs batches while there is
work, then sleeps until the poll interval, the next due item or a `wake()` (a NOTIFY, a local write). A
database or network failure is logged and retried a second later; it never ends the loop. Several loops may
run in one worker (`loops`), several workers on one database: the queries take rows with SKIP LOCKED.
"""
from __future__ import annotations

import asyncio
import logging
import random
from typing import Callable

import asyncpg

log = logging.getLogger(__name__)

RETRYABLE = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


def backoff(base: float, cap: float, attempts: int, *, jitter: float = 0.2,
            rand: Callable[[], float] = random.random) -> float:
    """Seconds before the next try after `attempts` failed ones: base * 2^(attempts-1), jittered by ±jitter,
    capped at `cap`."""
    raw = base * (2 ** max(0, min(attempts - 1, 30)))
    return min(cap, raw * (1 + jitter * (2 * rand() - 1)))


class PollingWorker:
    task_name = "reef-worker"
    poll_seconds: float = 5.0
    loops: int = 1  # concurrent loops of this worker in one process

    def __init__(self) -> None:
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    # --- what a worker implements ----------------------------------------------------------------

    async def run_once(self) -> int:
        raise NotImplementedError

    async def seconds_until_due(self) -> float | None:
        """When the next item falls due (None: nothing is scheduled; poll)."""
        return None

    async def housekeeping(self) -> None:
        """Called after every batch (e.g. pruning old rows at most once an hour)."""

    def more_waiting(self, taken: int) -> bool:
        """After a batch of `taken` items: go on at once (True) or sleep. A full batch means there may be more."""
        return taken > 0

    # --- lifecycle ---------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._stopping = False
        loop = asyncio.get_running_loop()
        name = self.task_name
        self._tasks = [loop.create_task(self._loop(i), name=name if self.loops == 1 else f"{name}-{i}")
                       for i in range(self.loops)]

    async def stop(self, grace: float | None = None) -> None:
        """Let the rounds in flight finish (within `grace` seconds when given, then cancel them) and stop."""
        self._stopping = True
        self._wake.set()
        tasks, self._tasks = self._tasks, []
        if not tasks:
            return
        if grace is not None:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _loop(self, index: int) -> None:
        while not self._stopping:
            self._wake.clear()  # before the batch: a wake() during it is not lost
            try:
                taken = await self.run_once()
                await self.housekeeping()
                if self._stopping or self.more_waiting(taken):
                    continue
                due_in = await self.seconds_until_due()
            except RETRYABLE as exc:
                log.warning("%s (loop %d): %s; retrying shortly", self.task_name, index, exc)
                await asyncio.sleep(1)
                continue
            except Exception:  # a bug must not end the loop for the life of the process: logged, retried
                log.exception("%s (loop %d) failed; retrying in 5 s", self.task_name, index)
                await asyncio.sleep(5)
                continue
            timeout = self.poll_seconds if due_in is None else min(self.poll_seconds, max(due_in, 0.05))
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass
