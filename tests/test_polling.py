"""node/platform/polling.py: the one loop of the background workers and the one backoff rule."""
from __future__ import annotations

import asyncio

import asyncpg
import pytest

from node.platform.polling import PollingWorker, backoff


def test_backoff_doubles_jitters_and_caps():
    assert backoff(30, 3600, 1, rand=lambda: 0.5) == 30
    assert backoff(30, 3600, 3, rand=lambda: 0.5) == 120
    assert backoff(30, 3600, 3, jitter=0.2, rand=lambda: 0.0) == pytest.approx(96)
    assert backoff(30, 3600, 3, jitter=0.2, rand=lambda: 1.0) == pytest.approx(144)
    assert backoff(30, 3600, 50, rand=lambda: 1.0) == 3600
    assert backoff(30, 3600, 0, rand=lambda: 0.5) == 30  # never less than the base before jitter


class Counting(PollingWorker):
    task_name = "test-worker"
    poll_seconds = 30.0

    def __init__(self, batches: list, due: float | None = None) -> None:
        super().__init__()
        self.batches = batches
        self.rounds = 0
        self.due = due
        self.done = asyncio.Event()

    async def run_once(self) -> int:
        self.rounds += 1
        item = self.batches.pop(0) if self.batches else 0
        if isinstance(item, BaseException):
            raise item
        if not self.batches:
            self.done.set()
        return item

    async def seconds_until_due(self) -> float | None:
        return self.due


async def test_runs_while_there_is_work_then_sleeps_until_woken():
    w = Counting([3, 2, 0])
    w.start()
    await asyncio.wait_for(w.done.wait(), 2)
    await asyncio.sleep(0.05)
    assert w.rounds == 3  # two batches with work, one empty: then asleep (poll is 30 s)
    w.batches = [0]
    w.done.clear()
    w.wake()
    await asyncio.wait_for(w.done.wait(), 2)
    assert w.rounds == 4
    await w.stop()
    assert not w.running


async def test_sleeps_no_longer_than_the_next_due_item():
    w = Counting([0, 0], due=0.05)
    w.start()
    await asyncio.wait_for(w.done.wait(), 2)  # the second round came after ~50 ms, not the 30 s poll
    await w.stop()


async def test_failures_are_logged_and_the_loop_goes_on(caplog):
    w = Counting([asyncpg.InterfaceError("gone"), 0])
    w.start()
    await asyncio.wait_for(w.done.wait(), 3)
    await w.stop()
    assert w.rounds == 2 and any("gone" in r.getMessage() for r in caplog.records)


async def test_stop_with_grace_cancels_a_stuck_round():
    class Stuck(PollingWorker):
        async def run_once(self) -> int:
            await asyncio.sleep(60)
            return 0

    w = Stuck()
    w.start()
    await asyncio.sleep(0.01)
    await asyncio.wait_for(w.stop(grace=0.05), 2)
    assert not w.running
