"""The garbage collector of a node process: tuned for many long-lived objects, and its pauses measured.

CPython frees almost everything by reference counting; the cyclic collector only finds cycles. But a full
(generation 2) collection walks every tracked object: with 10,000 open streams that is about a million
objects and 100-200 ms during which no request is answered and no frame is sent. Full collections are
triggered by objects that survive younger collections, and what survives them is mostly whatever requests
are in flight at that instant. Collecting the youngest generation every 50,000 allocations instead of
CPython's 700 promotes about seventy times fewer such objects, so full collections come minutes apart
instead of seconds (measured with tests/bench/bench_realtime.py). The cost: cyclic garbage waits a little
longer, a few MB at most. Objects made while the node starts (modules, templates, config) are frozen out
of collections altogether.
"""
from __future__ import annotations

import gc
import time

YOUNG_THRESHOLD = 50_000


class GcStats:
    """Collections and the time they took, by generation, since the process started."""

    def __init__(self) -> None:
        self.collections = [0, 0, 0]
        self.pause_seconds = [0.0, 0.0, 0.0]
        self.max_pause_seconds = [0.0, 0.0, 0.0]
        self._started = 0.0

    def callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        gen = info.get("generation", 0)
        took = time.perf_counter() - self._started
        self.collections[gen] += 1
        self.pause_seconds[gen] += took
        self.max_pause_seconds[gen] = max(self.max_pause_seconds[gen], took)


STATS = GcStats()


def measure() -> None:
    """Count collections and their pauses (for /metrics); idempotent."""
    if STATS.callback not in gc.callbacks:
        gc.callbacks.append(STATS.callback)


def tune() -> None:
    """For `reef run`: a higher young-generation threshold, and what exists now frozen."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
    gc.collect()
    gc.freeze()
