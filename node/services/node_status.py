"""The admin's status page: per-process minute samples written by every process, summed per minute for the page,
the federation queue per host with the admin's retry and skip, and the data dir's disk and the database's size.

Each serving process runs run_sampler: once a minute it writes what its RequestTally counted (node_samples, one
row per process and minute). With `reef run --workers N` there are N rows a minute; the page adds them up, and
takes p99 from the summed latency buckets (never an average of per-process p99s).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import os
import socket
from dataclasses import dataclass
from typing import Callable, Sequence

import asyncpg

from ..platform.config import Config
from ..platform.diskspace import DiskUsage, disk_usage
from ..platform.errors import NotFound, Unprocessable
from ..platform.metrics import BUCKETS
from ..platform.samples import MinuteCounts, RequestTally, minute_of, quantile
from ..stores import agents as agents_store
from ..stores import node_status as store
from ..stores import peers as peers_store
from ..stores.node_status import NodeSample
from ..stores.web_accounts import Account
from .moderation import require_admin

log = logging.getLogger(__name__)

WINDOW_MINUTES = 60  # the page's charts: the last 60 whole minutes (the current one is written when it ends)
KEEP_HOURS = 48  # samples older than this are pruned by the background process
SAMPLE_SECONDS = 60.0
LIVE_MINUTES = 3  # a process whose last sample is older than this is not counted in "open sockets now"
SKIPPED = "skipped by an admin"
MAX_HOST = 253


def instance_name() -> str:
    """This process in node_samples: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


# --- sampling (every process) -------------------------------------------------------------------

async def write_samples(pool: asyncpg.Pool, instance: str, tally: RequestTally, open_sockets: int,
                        now: dt.datetime | None = None, *, whole_minute: bool = True) -> int:
    """Write what the tally counted, one row per minute. whole_minute: the minute that just ended gets a row even
    without requests (the process was up, with its sockets). Returns the rows written."""
    now = now or dt.datetime.now(dt.timezone.utc)
    taken = tally.take()
    if whole_minute:
        ended = minute_of(now) - dt.timedelta(minutes=1)
        taken.setdefault(ended, MinuteCounts(buckets=[0] * (len(tally.bounds) + 1)))
    rows = [NodeSample(minute, instance, c.requests, c.errors_4xx, c.errors_5xx, c.buckets, open_sockets)
            for minute, c in sorted(taken.items())]
    if rows:
        try:
            async with pool.acquire() as conn:
                await store.add_samples(conn, rows)
        except BaseException:
            tally.give_back(taken)  # written with the next minute instead (add_samples adds up)
            raise
    return len(rows)


async def run_sampler(pool: asyncpg.Pool, tally: RequestTally, sockets: Callable[[], int], instance: str,
                      every: float = SAMPLE_SECONDS) -> None:
    """A second after each minute ends (every `every` seconds when not 60): write this process's minute. On
    cancellation (shutdown) the requests of the unfinished minute are written too."""
    try:
        while True:
            now = dt.datetime.now(dt.timezone.utc)
            aligned = every == SAMPLE_SECONDS
            await asyncio.sleep(every - (now.second + now.microsecond / 1e6) + 1.0 if aligned else every)
            try:
                await write_samples(pool, instance, tally, sockets(), whole_minute=aligned)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:  # the database is away
                log.warning("status sampler: could not write the minute (kept for the next write): %r", exc)
    except asyncio.CancelledError:
        try:  # the requests of the last, unfinished minute
            await asyncio.shield(write_samples(pool, instance, tally, sockets(), whole_minute=False))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("status sampler: could not write the last minute: %r", exc)
        raise


async def prune_samples(pool: asyncpg.Pool, keep_hours: float = KEEP_HOURS) -> int:
    async with pool.acquire() as conn:
        return await store.delete_samples_before(conn, dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=keep_hours))


# --- the page -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Minute:
    """One minute of the whole node: every process's row added up."""

    minute: dt.datetime
    requests: int
    errors_4xx: int
    errors_5xx: int
    p99_seconds: float | None  # from the summed latency buckets; None without requests
    open_sockets: int
    processes: int


@dataclass(frozen=True, slots=True)
class HostQueue:
    host: str
    status: str  # up | down
    pending: int
    oldest_age_seconds: float | None
    failed: int  # deliveries given up on
    consecutive_fails: int
    last_failure_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class StatusPage:
    minutes: list[Minute]  # WINDOW_MINUTES of them, oldest first; minutes without samples read 0
    requests: int  # over the window
    errors_4xx: int
    errors_5xx: int
    p99_seconds: float | None  # over the window
    open_sockets: int  # now: the latest sample of each live process
    processes: int  # processes that sampled within LIVE_MINUTES
    hosts: list[HostQueue]
    disk: DiskUsage
    database_bytes: int


def _add(a: Sequence[int], b: Sequence[int]) -> list[int]:
    return [x + y for x, y in itertools.zip_longest(a, b, fillvalue=0)]


def sum_minutes(samples: Sequence[NodeSample], end: dt.datetime, minutes: int = WINDOW_MINUTES,
                bounds: Sequence[float] = BUCKETS) -> list[Minute]:
    """The `minutes` whole minutes before `end`'s minute, each summed over processes."""
    last = minute_of(end) - dt.timedelta(minutes=1)
    by_minute: dict[dt.datetime, list[NodeSample]] = {}
    for s in samples:
        by_minute.setdefault(s.minute, []).append(s)
    out = []
    for i in range(minutes - 1, -1, -1):
        at = last - dt.timedelta(minutes=i)
        rows = by_minute.get(at, [])
        buckets: list[int] = []
        for r in rows:
            buckets = _add(buckets, r.latency_buckets)
        out.append(Minute(at, sum(r.requests for r in rows), sum(r.errors_4xx for r in rows),
                          sum(r.errors_5xx for r in rows), quantile(bounds, buckets, 0.99),
                          sum(r.open_sockets for r in rows), len(rows)))
    return out


def _live_sockets(samples: Sequence[NodeSample], end: dt.datetime) -> tuple[int, int]:
    """(open sockets, processes): the latest sample of each process seen within LIVE_MINUTES."""
    latest: dict[str, NodeSample] = {}
    since = minute_of(end) - dt.timedelta(minutes=LIVE_MINUTES)
    for s in samples:
        if s.minute >= since and (s.instance not in latest or s.minute > latest[s.instance].minute):
            latest[s.instance] = s
    return sum(s.open_sockets for s in latest.values()), len(latest)


async def status_page(pool: asyncpg.Pool, cfg: Config, account: Account | None,
                      now: dt.datetime | None = None) -> StatusPage:
    require_admin(account)
    now = now or dt.datetime.now(dt.timezone.utc)
    since = minute_of(now) - dt.timedelta(minutes=WINDOW_MINUTES)
    async with pool.acquire() as conn:
        rows = await store.list_samples_since(conn, since)
        peers = await peers_store.list_peer_hosts(conn)
        database_bytes = await store.database_size(conn)
    # The current minute's rows (a process that stopped mid-minute wrote its part) wait until the minute is over.
    samples = [s for s in rows if s.minute < minute_of(now)]
    minutes = sum_minutes(samples, now)
    buckets: list[int] = []
    for s in samples:
        buckets = _add(buckets, s.latency_buckets)
    sockets, processes = _live_sockets(rows, now)
    hosts = [
        HostQueue(p.host, p.status, p.queued,
                  (now - p.oldest_queued_at).total_seconds() if p.oldest_queued_at else None,
                  p.failed, p.consecutive_fails, p.last_failure_at)
        for p in peers if p.queued or p.failed or p.status == "down"
    ]
    return StatusPage(minutes, sum(m.requests for m in minutes), sum(m.errors_4xx for m in minutes),
                      sum(m.errors_5xx for m in minutes), quantile(BUCKETS, buckets, 0.99), sockets, processes,
                      hosts, disk_usage(cfg.data_dir), database_bytes)


# --- the admin's actions on one host's queue ----------------------------------------------------

def check_host(host: str | None) -> str:
    host = (host or "").strip().lower()
    if not host or len(host) > MAX_HOST or any(c.isspace() or ord(c) < 32 or c in "/?#@" for c in host):
        raise Unprocessable("That is not a host name.", "Use a host from the delivery queue table, like example.org.")
    return host


async def _act(pool: asyncpg.Pool, account: Account | None, host: str | None, action: str) -> int:
    admin = require_admin(account)
    host = check_host(host)
    async with pool.acquire() as conn, conn.transaction():
        waiting = await store.count_waiting(conn, host, lock=True)
        if waiting == 0:
            raise NotFound(f"No deliveries wait for {host}.", "The queue may have emptied meanwhile; reload the page.")
        if action == "retry":
            moved = await store.make_host_due(conn, host)
            details = {"deliveries": waiting, "made_due": moved}
        else:
            await store.give_up_host(conn, host, SKIPPED)
            details = {"deliveries": waiting}
        await agents_store.insert_audit(conn, f"account:{admin.id}", f"federation.{action}", f"host:{host}", details)
        await store.wake_delivery(conn)
    log.info("admin %s: %s of %d deliveries to %s", admin.email, action, waiting, host)
    return waiting


async def retry_host(pool: asyncpg.Pool, account: Account | None, host: str | None) -> int:
    """Make every waiting delivery to `host` due now (and probe it at once if marked down); audited. Returns how
    many deliveries wait for it."""
    return await _act(pool, account, host, "retry")


async def skip_host(pool: asyncpg.Pool, account: Account | None, host: str | None) -> int:
    """Give up every waiting delivery to `host`, as the worker gives up a permanently failed one; audited."""
    return await _act(pool, account, host, "skip")
