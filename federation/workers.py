"""The federation workers (inbox processor, outbox worker, delivery worker), started and stopped with the app."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import AsyncIterator

from aiohttp import web

from node.platform import appkeys, tracing

from . import delivery_store, inbox_store
from .delivery import DeliverySettings, DeliveryWorker
from .fetch import FETCHER
from .inbox import InboxProcessor
from .outbox_worker import OutboxWorker

log = logging.getLogger(__name__)

# Tests set RUN_WORKERS False (before the app starts) to drive the workers by hand with run_once(),
# and DELIVERY_SETTINGS to shrink backoff and down-host thresholds instead of waiting.
RUN_WORKERS = web.AppKey("federation_run_workers", bool)
DELIVERY_SETTINGS = web.AppKey("federation_delivery_settings", DeliverySettings)


@dataclass
class Workers:
    inbox: InboxProcessor
    outbox: OutboxWorker
    delivery: DeliveryWorker
    running: bool = False


WORKERS = web.AppKey("federation_workers", Workers)


async def _workers(app: web.Application) -> AsyncIterator[None]:
    cfg = app[appkeys.CONFIG]
    pool = app[appkeys.POOL]
    delivery = DeliveryWorker(pool, cfg, app[FETCHER], app.get(DELIVERY_SETTINGS))
    delivery.metrics = app.get(appkeys.METRICS)
    delivery.tracer = tracing.tracer_of(app)
    outbox = OutboxWorker(pool, cfg, on_deliveries=delivery.wake)
    workers = Workers(InboxProcessor(app), outbox, delivery)
    app[WORKERS] = workers
    if app.get(RUN_WORKERS) is False or not cfg.server.background:  # background: another process runs them
        yield
        return
    if not cfg.federation.enabled:
        # Services still record events; the outbox worker marks them done (and prunes) so none pile up.
        outbox.start()
        try:
            yield
        finally:
            await outbox.stop()
        return
    # NOTIFY wakes a worker at once (other processes' writes included), through the process's one LISTEN
    # connection (node.platform.listen). Each worker still polls, so a lost notification only delays, never loses,
    # work; after a reconnection every worker looks for work at once.
    listener = app[appkeys.LISTENER]
    for channel, wake in (("reef_inbox", workers.inbox.wake), ("reef_outbox", outbox.wake),
                          ("reef_delivery", delivery.wake)):
        await listener.subscribe(channel, lambda _payload, wake=wake: wake(), lambda _first, wake=wake: wake())
    try:
        workers.inbox.start()
        outbox.start()
        delivery.start()
        workers.running = True
        yield
    finally:
        workers.running = False
        await workers.inbox.stop()
        await outbox.stop()
        await delivery.stop()


async def refresh_queue_metrics(app: web.Application) -> None:
    """At scrape time: the delivery queue per host and the inbox backlog, from PostgreSQL (shared by every
    process, so any process's scrape tells the same)."""
    metrics = app[appkeys.METRICS]
    async with app[appkeys.POOL].acquire() as conn:
        by_host = await delivery_store.pending_by_host(conn)
        backlog, lag = await inbox_store.inbox_backlog(conn)
    metrics.set_queue(by_host)
    metrics.inbox_backlog.set(backlog)
    metrics.inbox_lag.set(lag)


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(_workers)
    metrics = app.get(appkeys.METRICS)
    if metrics is not None:
        metrics.refreshers.append(refresh_queue_metrics)
