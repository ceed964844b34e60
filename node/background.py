"""Every periodic job of the node, started with the app and stopped before the database closes: one list to
read to know what runs in the background. (The federation workers — inbox, outbox, delivery, on
node.platform.polling — start in federation.workers; the stream's sweeps live with the stream's hub.)"""
from __future__ import annotations

import asyncio
from typing import AsyncIterator, Awaitable, Callable

from aiohttp import web

from .platform import appkeys
from .services import feeds as feeds_service
from .services.trust import run_trust_job

# name -> the running task (tests look them up; the admin's status page may list them)
BACKGROUND = web.AppKey("background_jobs", dict)


def _jobs(app: web.Application) -> dict[str, Callable[[], Awaitable[None]]]:
    cfg = app[appkeys.CONFIG]
    pool = app[appkeys.POOL]
    jobs: dict[str, Callable[[], Awaitable[None]]] = {
        "rising-refresh": lambda: feeds_service.run_rising_refresh(pool),
    }
    if cfg.reputation.recompute_seconds > 0:
        jobs["trust"] = lambda: run_trust_job(pool, cfg.reputation)
    return jobs


async def background_ctx(app: web.Application) -> AsyncIterator[None]:
    """Registered after the database context, so the pool exists; the jobs are cancelled before it closes."""
    loop = asyncio.get_running_loop()
    tasks = {name: loop.create_task(job(), name=name) for name, job in _jobs(app).items()}
    app[BACKGROUND] = tasks
    try:
        yield
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
