"""GET /api/v1/health: is the node, its database and its Redis working."""
from __future__ import annotations

import asyncio
import os
import time

from aiohttp import web

from ..platform import appkeys
from ..platform.db import ping
from ..platform.diskspace import disk_usage
from ..edge.http import dumps


async def health(request: web.Request) -> web.Response:
    app = request.app
    checks: dict[str, dict] = {}
    healthy = True
    started = time.perf_counter()
    try:
        async with app[appkeys.POOL].acquire(timeout=5) as conn:
            await ping(conn)
        checks["database"] = {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
    except (OSError, asyncio.TimeoutError, Exception) as exc:  # noqa: BLE001 - any failure means unhealthy
        healthy = False
        checks["database"] = {"ok": False, "error": type(exc).__name__}
    redis = app[appkeys.REDIS]
    if redis is not None:
        started = time.perf_counter()
        try:
            await asyncio.wait_for(redis.ping(), 5)
            checks["redis"] = {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
        except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
            healthy = False
            checks["redis"] = {"ok": False, "error": type(exc).__name__}
    try:
        usage = disk_usage(app[appkeys.CONFIG].data_dir)
        checks["disk"] = {"ok": True, "path": usage.path, "free_bytes": usage.free, "total_bytes": usage.total,
                          "free_ratio": round(usage.free_ratio, 4)}
    except OSError as exc:
        checks["disk"] = {"ok": False, "error": type(exc).__name__}
    body = {
        "success": healthy,
        "status": "ok" if healthy else "degraded",
        "checks": checks,
        "uptime_seconds": round(time.time() - app[appkeys.STARTED_AT], 1),
        # Which process answered: with `reef run --workers N` each serves; one runs the background work.
        "process": {"pid": os.getpid(), "background": app[appkeys.CONFIG].server.background},
    }
    if not healthy:
        body["error"] = "A backing service is unreachable."
        body["hint"] = "See checks for which one; the node keeps retrying."
    return web.json_response(body, status=200 if healthy else 503, dumps=dumps)


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/health", health, name="health")
