"""Prometheus metrics through prometheus-client: the node's instruments, its registry and GET /metrics.

One `Metrics` per app holds every instrument. With several worker processes, set PROMETHEUS_MULTIPROC_DIR (or
[metrics] multiprocess_dir) to a directory the processes share and that is emptied before they start: values
then live in per-process files there and a scrape of any process sums them (prometheus-client's multiprocess
mode). Gauges that describe the whole node (queues read from PostgreSQL) are set at scrape time.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Awaitable, Callable

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.process_collector import ProcessCollector

from . import appkeys, gctune
from .diskspace import disk_usage
from .samples import RequestTally

log = logging.getLogger(__name__)

# Latency buckets in seconds: fine below 100 ms, where API requests should be.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
QUERY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
LOOP_TICK = 0.5  # seconds between two event-loop lag probes
PING_TIMEOUT = 2.0  # seconds a scrape waits for PostgreSQL or Redis before reporting it down

# Async hooks run before each scrape (federation sets its queue gauges from PostgreSQL in one).
Refresher = Callable[[web.Application], Awaitable[None]]


def multiprocess_dir(setting: str = "") -> str:
    """The directory of multiprocess mode: PROMETHEUS_MULTIPROC_DIR, else [metrics] multiprocess_dir, else ''."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "") or setting


class Metrics:
    """The instruments of one node process, registered in its own registry (or in multiprocess files)."""

    def __init__(self, multiproc_dir: str = "", slow_query_seconds: float = 0.5) -> None:
        self.multiproc_dir = multiproc_dir
        self.slow_query_seconds = slow_query_seconds
        if multiproc_dir:
            os.makedirs(multiproc_dir, exist_ok=True)
            # prometheus-client reads the directory from the environment when it opens a process's files.
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiproc_dir
            if not getattr(values.ValueClass, "_multiprocess", False):
                values.ValueClass = values.MultiProcessValue()
        self.refreshers: list[Refresher] = []
        self.tally = RequestTally(BUCKETS)  # this process's requests per minute, for the admin's status page
        self.registry = r = CollectorRegistry(auto_describe=True)
        # --- HTTP
        self.requests = Counter("reef_http_requests", "HTTP requests by method, route pattern and status.",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("reef_http_request_duration_seconds", "Time to answer a request, by route pattern.",
                                 ["method", "route"], buckets=BUCKETS, registry=r)
        self.errors = Counter("reef_http_errors", "Error answers by route pattern, status, class (4xx/5xx) and "
                              "error type (ReefError, an aiohttp HTTP exception, or the unhandled exception's class).",
                              ["route", "status", "class", "error"], registry=r)
        # --- the stream
        self.ws_open = Gauge("reef_websocket_connections", "Open WebSocket stream connections.", registry=r,
                             multiprocess_mode="livesum")
        self.ws_drops = Counter("reef_websocket_queue_drops", "Stream frames dropped: slow_consumer (a full send "
                                "queue closed the session), frame_skipped (an ephemeral frame skipped during a "
                                "replay).", ["reason"], registry=r)
        self.stream_pruned = Counter("reef_stream_events_pruned", "Stream events deleted by retention.", registry=r)
        self.stream_prune_time = Gauge("reef_stream_retention_last_run_timestamp_seconds",
                                       "When retention last pruned stream events successfully.", registry=r,
                                       multiprocess_mode="max")
        # --- the database
        self.queries = Counter("reef_db_queries", "Database statements, by outcome (ok, error).", ["outcome"],
                               registry=r)
        self.query_seconds = Histogram("reef_db_query_duration_seconds", "Time of one database statement.",
                                       buckets=QUERY_BUCKETS, registry=r)
        self.slow_queries = Counter("reef_db_slow_queries", "Database statements slower than [metrics] "
                                    "slow_query_seconds.", registry=r)
        self.pool_size = Gauge("reef_db_pool_size", "Connections in the database pool.", registry=r,
                               multiprocess_mode="livesum")
        self.pool_idle = Gauge("reef_db_pool_idle", "Idle connections in the database pool.", registry=r,
                               multiprocess_mode="livesum")
        self.pool_in_use = Gauge("reef_db_pool_in_use", "Pool connections lent out.", registry=r,
                                 multiprocess_mode="livesum")
        self.pool_max = Gauge("reef_db_pool_max", "The pool's maximum size.", registry=r, multiprocess_mode="livesum")
        self.pool_waits = Counter("reef_db_pool_waits", "Acquires that found every pool connection in use and "
                                  "waited.", registry=r)
        self.pool_acquire = Histogram("reef_db_pool_acquire_seconds", "Time to get a connection from the pool.",
                                      buckets=QUERY_BUCKETS, registry=r)
        self.db_up = Gauge("reef_database_up", "1 if PostgreSQL answered the scrape's ping.", registry=r,
                           multiprocess_mode="mostrecent")
        self.db_ping = Gauge("reef_database_ping_seconds", "Round trip of the scrape's ping to PostgreSQL.",
                             registry=r, multiprocess_mode="mostrecent")
        self.redis_up: Gauge | None = None  # made at the first scrape with Redis configured: absent without it
        # --- caches
        self.cache = Counter("reef_cache_requests", "Cache look-ups by cache and result (hit, miss).",
                             ["cache", "result"], registry=r)
        # --- federation (the queue gauges are set at scrape time by federation's refresher)
        self.deliveries = Counter("reef_federation_deliveries", "Delivery attempts by outcome (delivered, retry, "
                                  "failed, gone).", ["outcome"], registry=r)
        self.delivery_seconds = Histogram("reef_federation_delivery_duration_seconds", "Time of one delivery POST.",
                                          buckets=BUCKETS, registry=r)
        self.queue_depth = Gauge("reef_federation_queue_depth", "Deliveries waiting, by destination host.", ["host"],
                                 registry=r, multiprocess_mode="mostrecent")
        self.queue_age = Gauge("reef_federation_queue_oldest_age_seconds", "Age of the oldest waiting delivery, by "
                               "destination host.", ["host"], registry=r, multiprocess_mode="mostrecent")
        self.inbox_backlog = Gauge("reef_inbox_backlog", "Received activities not yet processed.", registry=r,
                                   multiprocess_mode="mostrecent")
        self.inbox_lag = Gauge("reef_inbox_lag_seconds", "Age of the oldest received activity not yet processed.",
                               registry=r, multiprocess_mode="mostrecent")
        self.inbox_processed = Counter("reef_inbox_processed", "Received activities processed, by outcome (ok, "
                                       "retry, failed).", ["outcome"], registry=r)
        self.inbox_delay = Histogram("reef_inbox_processing_delay_seconds", "From receiving an activity to having "
                                     "processed it.", buckets=LAG_BUCKETS + (30.0, 300.0), registry=r)
        # --- the process
        self.loop_lag = Histogram("reef_event_loop_lag_seconds", "How late the event loop ran a timer.",
                                  buckets=LAG_BUCKETS, registry=r)
        self.loop_lag_last = Gauge("reef_event_loop_lag_last_seconds", "The last event-loop lag probe.", registry=r,
                                   multiprocess_mode="livemax")
        self._hosts_seen: set[str] = set()
        self.local = _ProcessCollector(self)
        r.register(self.local)
        ProcessCollector(registry=r)
        GCCollector(registry=r)

    # --- recording ----------------------------------------------------------------------------

    def observe_request(self, method: str, route: str, status: int, seconds: float, error: str = "") -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)
        self.tally.observe(status, seconds)
        if status >= 400:
            self.errors.labels(route, str(status), "5xx" if status >= 500 else "4xx", error).inc()

    def observe_query(self, seconds: float, failed: bool) -> bool:
        """Count one statement; True if it was slow."""
        self.queries.labels("error" if failed else "ok").inc()
        self.query_seconds.observe(seconds)
        if seconds >= self.slow_query_seconds:
            self.slow_queries.inc()
            return True
        return False

    def observe_acquire(self, waited: bool, seconds: float) -> None:
        if waited:
            self.pool_waits.inc()
        self.pool_acquire.observe(seconds)

    def set_queue(self, by_host: dict[str, tuple[int, float]]) -> None:
        """The delivery queue per host: (waiting, oldest age in seconds). Hosts that emptied read 0."""
        for host in self._hosts_seen - by_host.keys():
            self.queue_depth.labels(host).set(0)
            self.queue_age.labels(host).set(0)
        for host, (depth, age) in by_host.items():
            self.queue_depth.labels(host).set(depth)
            self.queue_age.labels(host).set(age)
        self._hosts_seen |= by_host.keys()

    def sample_pool(self, pool) -> None:  # noqa: ANN001 - an asyncpg.Pool
        size, idle = pool.get_size(), pool.get_idle_size()
        self.pool_size.set(size)
        self.pool_idle.set(idle)
        self.pool_in_use.set(size - idle)
        self.pool_max.set(pool.get_max_size())

    # --- scraping -----------------------------------------------------------------------------

    async def refresh(self, app: web.Application) -> None:
        """Before a scrape: ping the backing services, sample the pool and run the registered refreshers."""
        pool = app.get(appkeys.POOL)
        if pool is not None:
            self.sample_pool(pool)
            started = time.perf_counter()
            try:
                async with asyncio.timeout(PING_TIMEOUT):
                    async with pool.acquire() as conn:
                        await conn.fetchval("SELECT 1")
                self.db_up.set(1)
                self.db_ping.set(time.perf_counter() - started)
            except Exception as exc:  # noqa: BLE001 - any failure means down
                log.warning("metrics: the database did not answer: %r", exc)
                self.db_up.set(0)
        redis = app.get(appkeys.REDIS)
        if redis is not None:
            if self.redis_up is None:
                self.redis_up = Gauge("reef_redis_up", "1 if Redis answered the scrape's ping.", registry=self.registry,
                                      multiprocess_mode="mostrecent")
            try:
                await asyncio.wait_for(redis.ping(), PING_TIMEOUT)
                self.redis_up.set(1)
            except Exception as exc:  # noqa: BLE001 - any failure means down
                log.warning("metrics: Redis did not answer: %r", exc)
                self.redis_up.set(0)
        for refresh in self.refreshers:
            try:
                await refresh(app)
            except Exception as exc:  # noqa: BLE001 - one failing gauge must not take the scrape down
                log.warning("metrics: %s failed: %r", getattr(refresh, "__name__", refresh), exc)

    def exposition(self) -> bytes:
        if not self.multiproc_dir:
            return generate_latest(self.registry)
        scrape = CollectorRegistry()
        MultiProcessCollector(scrape, path=self.multiproc_dir)
        scrape.register(self.local)  # this process's scrape-time gauges (uptime, GC, data-dir disk)
        ProcessCollector(registry=scrape)
        GCCollector(registry=scrape)
        return generate_latest(scrape)


class _ProcessCollector:
    """Gauges read when scraped: uptime, the GC pauses measured by gctune, and the data directory's disk."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.started_at = time.time()
        self.data_dir = ""

    def collect(self):  # noqa: ANN201 - the prometheus-client collector protocol
        yield GaugeMetricFamily("reef_uptime_seconds", "Seconds since this process started.",
                                value=round(time.time() - self.started_at, 1))
        stats = gctune.STATS
        fams = [
            GaugeMetricFamily("reef_gc_collections", "Garbage collections since the process started.",
                              labels=["generation"]),
            GaugeMetricFamily("reef_gc_pause_seconds", "Time spent in garbage collections since the process started.",
                              labels=["generation"]),
            GaugeMetricFamily("reef_gc_pause_max_seconds", "The longest garbage-collection pause since the process "
                              "started.", labels=["generation"]),
        ]
        for gen in range(3):
            fams[0].add_metric([str(gen)], stats.collections[gen])
            fams[1].add_metric([str(gen)], round(stats.pause_seconds[gen], 6))
            fams[2].add_metric([str(gen)], round(stats.max_pause_seconds[gen], 6))
        yield from fams
        if self.data_dir:
            usage = disk_usage(self.data_dir)
            yield GaugeMetricFamily("reef_data_dir_free_bytes", "Free space on the data directory's file system "
                                    "(for the node's user).", value=usage.free)
            yield GaugeMetricFamily("reef_data_dir_size_bytes", "Size of the data directory's file system.",
                                    value=usage.total)


def route_label(request: web.Request) -> str:
    """The route's pattern (bounded cardinality), never the raw path."""
    route = request.match_info.route
    resource = route.resource if route is not None else None
    return resource.canonical if resource is not None else "unmatched"


async def metrics_handler(request: web.Request) -> web.Response:
    cfg = request.app[appkeys.CONFIG]
    token = cfg.metrics.token
    if token and request.headers.get("Authorization", "") != f"Bearer {token}":
        return web.Response(status=401, text="metrics need 'Authorization: Bearer <[metrics] token>'\n")
    metrics: Metrics = request.app[appkeys.METRICS]
    await metrics.refresh(request.app)
    return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST,
                                                            "X-Content-Type-Options": "nosniff"})


async def _loop_lag(metrics: Metrics, app: web.Application) -> None:
    """Every LOOP_TICK: how late the loop woke us up (event-loop lag), and the pool's gauges."""
    loop = asyncio.get_running_loop()
    while True:
        expected = loop.time() + LOOP_TICK
        await asyncio.sleep(LOOP_TICK)
        lag = max(0.0, loop.time() - expected)
        metrics.loop_lag.observe(lag)
        metrics.loop_lag_last.set(lag)
        pool = app.get(appkeys.POOL)
        if pool is not None:
            metrics.sample_pool(pool)


async def _probes_ctx(app: web.Application):  # noqa: ANN202 - a cleanup context
    metrics = app[appkeys.METRICS]
    task = asyncio.get_running_loop().create_task(_loop_lag(metrics, app), name="reef-loop-lag")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if metrics.multiproc_dir:
            # The live gauges (open sockets, pool) of a process that stopped must not count any more.
            mark_process_dead(os.getpid(), metrics.multiproc_dir)


def setup(app: web.Application) -> None:
    cfg = app[appkeys.CONFIG]
    metrics = Metrics(multiprocess_dir(cfg.metrics.multiprocess_dir), cfg.metrics.slow_query_seconds)
    metrics.local.started_at = app[appkeys.STARTED_AT]
    metrics.local.data_dir = str(cfg.data_dir)
    app[appkeys.METRICS] = metrics
    gctune.measure()
    app.cleanup_ctx.append(_probes_ctx)
    if cfg.metrics.enabled:
        app.router.add_get("/metrics", metrics_handler, name="metrics")
