"""This process's requests per minute (count, 4xx, 5xx, latency histogram), kept until the status sampler writes them.

Fed by Metrics.observe_request (the request middleware) beside the prometheus instruments: a per-minute tally is
exact per process and needs no reading back of prometheus-client's (possibly multiprocess) values. The sampler
(node.services.node_status) writes it to node_samples once a minute; the admin's status page sums the processes.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Sequence


@dataclass
class MinuteCounts:
    """One minute of one process. buckets[i]: requests that took at most bounds[i] seconds and more than the
    bound before; the last one (beyond every bound) is +Inf."""

    requests: int = 0
    errors_4xx: int = 0
    errors_5xx: int = 0
    buckets: list[int] = field(default_factory=list)


def minute_of(at: dt.datetime) -> dt.datetime:
    return at.replace(second=0, microsecond=0)


class RequestTally:
    """Requests by the minute they ended in (UTC), until take() hands them over."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.minutes: dict[dt.datetime, MinuteCounts] = {}

    def observe(self, status: int, seconds: float, at: dt.datetime | None = None) -> None:
        minute = minute_of(at or dt.datetime.now(dt.timezone.utc))
        counts = self.minutes.get(minute)
        if counts is None:
            counts = self.minutes[minute] = MinuteCounts(buckets=[0] * (len(self.bounds) + 1))
        counts.requests += 1
        if 400 <= status < 500:
            counts.errors_4xx += 1
        elif status >= 500:
            counts.errors_5xx += 1
        counts.buckets[bucket_index(self.bounds, seconds)] += 1

    def take(self) -> dict[dt.datetime, MinuteCounts]:
        """Everything counted so far; the tally starts empty again."""
        taken, self.minutes = self.minutes, {}
        return taken

    def give_back(self, taken: dict[dt.datetime, MinuteCounts]) -> None:
        """Counts that could not be written (the database was away) are counted again, for the next write."""
        for minute, c in taken.items():
            mine = self.minutes.setdefault(minute, MinuteCounts(buckets=[0] * (len(self.bounds) + 1)))
            mine.requests += c.requests
            mine.errors_4xx += c.errors_4xx
            mine.errors_5xx += c.errors_5xx
            mine.buckets = [a + b for a, b in zip(mine.buckets, c.buckets)]


def bucket_index(bounds: Sequence[float], seconds: float) -> int:
    for i, bound in enumerate(bounds):
        if seconds <= bound:
            return i
    return len(bounds)


def quantile(bounds: Sequence[float], buckets: Sequence[int], q: float) -> float | None:
    """The q-quantile of a histogram (prometheus' histogram_quantile: linear inside the bucket it falls in; in the
    +Inf bucket, the highest finite bound). None without observations."""
    total = sum(buckets)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(buckets):
        if count and seen + count >= rank:
            if i >= len(bounds):
                return float(bounds[-1])
            lower = 0.0 if i == 0 else float(bounds[i - 1])
            return lower + (float(bounds[i]) - lower) * (rank - seen) / count
        seen += count
    return float(bounds[-1])
