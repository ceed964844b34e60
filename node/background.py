"""Every periodic job of the node, started with the app and stopped before the database closes: one list to
read to know what runs in the background. (The federation workers — inbox, outbox, delivery, on
node.platform.polling — start in federation.workers; the stream's sweeps live with the stream's hub.)"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, AsyncIterator, Awaitable, Callable

from aiohttp import web

from .platform import appkeys
from .services import bounties as bounties_service
from .realtime.state import REALTIME
from .services import feeds as feeds_service
from .services import node_status as status_service
from .services import payments as payments_service
from .services import spam as spam_service
from .services import wallet as wallet_service
from .services.trust import run_trust_job

log = logging.getLogger(__name__)

# name -> the running task (tests look them up; the admin's status page may list them)
BACKGROUND = web.AppKey("background_jobs", dict)


def _jobs(app: web.Application) -> dict[str, Callable[[], Awaitable[None]]]:
    cfg = app[appkeys.CONFIG]
    pool = app[appkeys.POOL]
    jobs: dict[str, Callable[[], Awaitable[None]]] = {
        "rising-refresh": lambda: feeds_service.run_rising_refresh(pool),
        "status-samples-prune": lambda: _every(3600, "status-samples-prune",
                                               lambda: status_service.prune_samples(pool)),
    }
    if cfg.reputation.recompute_seconds > 0:
        jobs["trust"] = lambda: run_trust_job(pool, cfg.reputation)
    if cfg.spam.enabled:  # fingerprints older than the window are never compared again
        jobs["spam-prune"] = lambda: _every(3600, "spam-prune", lambda: spam_service.prune(pool, cfg.spam))
    jobs.update(_payment_jobs(app))
    return jobs


async def _every(seconds: float, name: str, step: Callable[[], Awaitable[Any]]) -> None:
    while True:
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception:  # a background job must outlive one bad pass; the next pass retries
            log.exception("background job %s failed", name)
        await asyncio.sleep(seconds)


def _payment_jobs(app: web.Application) -> dict[str, Callable[[], Awaitable[None]]]:
    """The bounty expiry job and the hourly pruning of idempotency keys; with a Lightning backend also the
    deposit watcher and the withdrawal reconciler (its first pass at start-up: rows a crash left in flight are
    asked about, never paid again). app[LIGHTNING] is set by the context before this one."""
    pool, pay, backend = app[appkeys.POOL], app[appkeys.CONFIG].payments, app[appkeys.LIGHTNING]
    jobs: dict[str, Callable[[], Awaitable[None]]] = {
        "bounty-expiry": lambda: _every(pay.bounty_check_seconds, "bounty-expiry",
                                        lambda: bounties_service.refund_expired(pool)),
        "payments-housekeeping": lambda: _every(3600, "payments-housekeeping",
                                                lambda: wallet_service.prune_idempotency(pool, pay)),
    }
    if backend.name != "none":
        jobs["deposit-watcher"] = lambda: _every(
            pay.deposit_poll_seconds, "deposit-watcher", lambda: wallet_service.check_pending_invoices(pool, pay, backend))
        jobs["withdrawal-reconciler"] = lambda: _every(
            max(pay.deposit_poll_seconds, 5.0), "withdrawal-reconciler",
            lambda: payments_service.reconcile_withdrawals(pool, pay, backend))
    return jobs


async def background_ctx(app: web.Application) -> AsyncIterator[None]:
    """Registered after the database context, so the pool exists; the jobs are cancelled before it closes."""
    loop = asyncio.get_running_loop()
    # [server] background = false: another process (worker 0 of `reef run --workers`, or `reef worker`) runs them.
    jobs = _jobs(app) if app[appkeys.CONFIG].server.background else {}
    tasks = {name: loop.create_task(job(), name=name) for name, job in jobs.items()}
    app[BACKGROUND] = tasks
    try:
        yield
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)


# name -> this process's status sampler task (every process runs one: each samples itself)
SAMPLER = web.AppKey("status_sampler", asyncio.Task)


async def sampler_ctx(app: web.Application) -> AsyncIterator[None]:
    """Every serving process, background or not, writes its own requests per minute for /admin/status
    (node.services.node_status); cancelled, with a last write, before the database closes."""
    metrics = app[appkeys.METRICS]

    def sockets() -> int:
        realtime = app.get(REALTIME)
        return realtime.hub.connection_count if realtime is not None else 0

    task = asyncio.get_running_loop().create_task(
        status_service.run_sampler(app[appkeys.POOL], metrics.tally, sockets, status_service.instance_name()),
        name="status-sampler")
    app[SAMPLER] = task
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
