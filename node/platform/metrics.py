"""Prometheus metrics: request counters and latency histograms, plus gauges read at scrape time."""
from __future__ import annotations

import bisect
import math
import time
from typing import Awaitable, Callable, Iterable

from aiohttp import web

from . import appkeys, gctune

# Latency buckets in seconds: fine below 100 ms, where API requests should be.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

Gauge = tuple[str, str, dict[str, str], float]  # name, help, labels, value
Collector = Callable[[web.Application], Awaitable[Iterable[Gauge]]]


class Metrics:
    """Per-process request metrics. Several processes are scraped one by one, as Prometheus expects."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str], int] = {}
        self.latency: dict[tuple[str, str], list[float]] = {}  # per bucket counts + [sum, count]
        self.collectors: list[Collector] = []

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, str(status))
        self.requests[key] = self.requests.get(key, 0) + 1
        hist = self.latency.setdefault((method, route), [0.0] * (len(BUCKETS) + 2))
        idx = bisect.bisect_left(BUCKETS, seconds)
        if idx < len(BUCKETS):
            hist[idx] += 1
        hist[-2] += seconds
        hist[-1] += 1

    def add_collector(self, fn: Collector) -> None:
        self.collectors.append(fn)

    async def render(self, app: web.Application) -> str:
        out = [
            "# HELP reef_http_requests_total HTTP requests by method, route and status.",
            "# TYPE reef_http_requests_total counter",
        ]
        for (method, route, status), n in sorted(self.requests.items()):
            out.append(f'reef_http_requests_total{{method="{method}",route="{_esc(route)}",status="{status}"}} {n}')
        out += [
            "# HELP reef_http_request_duration_seconds Time to answer a request.",
            "# TYPE reef_http_request_duration_seconds histogram",
        ]
        for (method, route), hist in sorted(self.latency.items()):
            labels = f'method="{method}",route="{_esc(route)}"'
            cumulative = 0.0
            for bound, count in zip(BUCKETS, hist):
                cumulative += count
                out.append(f'reef_http_request_duration_seconds_bucket{{{labels},le="{bound}"}} {int(cumulative)}')
            out.append(f'reef_http_request_duration_seconds_bucket{{{labels},le="+Inf"}} {int(hist[-1])}')
            out.append(f"reef_http_request_duration_seconds_sum{{{labels}}} {hist[-2]:.6f}")
            out.append(f"reef_http_request_duration_seconds_count{{{labels}}} {int(hist[-1])}")
        seen_help: set[str] = set()
        for collect in [_builtin_gauges, *self.collectors]:
            for name, help_, labels, value in await collect(app):
                if name not in seen_help:
                    out += [f"# HELP {name} {help_}", f"# TYPE {name} gauge"]
                    seen_help.add(name)
                lab = ",".join(f'{k}="{_esc(v)}"' for k, v in labels.items())
                out.append(f"{name}{{{lab}}} {_num(value)}" if lab else f"{name} {_num(value)}")
        return "\n".join(out) + "\n"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _num(value: float) -> str:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    return repr(float(value)) if isinstance(value, float) else str(value)


async def _builtin_gauges(app: web.Application) -> list[Gauge]:
    pool = app[appkeys.POOL]
    gauges: list[Gauge] = [
        ("reef_uptime_seconds", "Seconds since this process started.", {}, round(time.time() - app[appkeys.STARTED_AT], 1)),
        ("reef_db_pool_size", "Connections in the database pool.", {}, pool.get_size()),
        ("reef_db_pool_idle", "Idle connections in the database pool.", {}, pool.get_idle_size()),
    ]
    stats = gctune.STATS
    for gen in range(3):
        labels = {"generation": str(gen)}
        gauges += [
            ("reef_gc_collections", "Garbage collections since the process started.", labels, stats.collections[gen]),
            ("reef_gc_pause_seconds", "Time spent in garbage collections since the process started.", labels,
             round(stats.pause_seconds[gen], 6)),
            ("reef_gc_pause_max_seconds", "The longest garbage-collection pause since the process started.", labels,
             round(stats.max_pause_seconds[gen], 6)),
        ]
    return gauges


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
    text = await request.app[appkeys.METRICS].render(request.app)
    return web.Response(text=text, content_type="text/plain", charset="utf-8", headers={"X-Content-Type-Options": "nosniff"})


def setup(app: web.Application) -> None:
    app[appkeys.METRICS] = Metrics()
    gctune.measure()
    if app[appkeys.CONFIG].metrics.enabled:
        app.router.add_get("/metrics", metrics_handler, name="metrics")
