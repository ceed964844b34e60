"""The asyncpg pool: the configured server, or the embedded cluster in the data dir."""
from __future__ import annotations

import json
import logging
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import asyncpg

from .config import Config
from .embedded.cluster import EmbeddedPostgres

log = logging.getLogger(__name__)


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typ in ("json", "jsonb"):
        await conn.set_type_codec(typ, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's reset query (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL).

    asyncpg still rolls back an open transaction and drops listeners before calling this. The node never
    leaves other session state on a pooled connection: no SET outside a transaction, cursors only inside
    transactions, LISTEN only on connections held for good, and the one session advisory lock (rising
    ranks) is released in a finally that terminates the connection if it cannot. Skipping the reset saves a
    round trip on every release, which is every request.
    """


class ObservedPool(asyncpg.Pool):
    """asyncpg's pool, counting acquires that had to wait for a connection (every one was lent out)."""

    metrics: Any = None  # node.platform.metrics.Metrics

    async def _acquire(self, timeout):  # noqa: ANN001, ANN202 - asyncpg's own signature
        metrics = self.metrics
        if metrics is None:
            return await super()._acquire(timeout)
        # asyncpg keeps a queue of its max_size connection holders; empty means all are in use.
        queue = getattr(self, "_queue", None)
        waited = queue is not None and queue.empty()
        started = time.perf_counter()
        try:
            return await super()._acquire(timeout)
        finally:
            metrics.observe_acquire(waited, time.perf_counter() - started)


def _query_observer(metrics: Any, tracer: Any):
    """asyncpg calls this (call_soon, in the query's context) after each statement: count, time, trace it."""
    from . import tracing

    def on_query(record: asyncpg.connection.LoggedQuery) -> None:
        if metrics is not None and metrics.observe_query(record.elapsed, record.exception is not None):
            log.warning("slow query: %.3f s: %s", record.elapsed, " ".join(record.query.split())[:300],
                        extra={"elapsed_s": round(record.elapsed, 4)})
        if tracer is not None:
            tracing.record_query_span(tracer, record)

    return on_query


async def create_pool(dsn: str, min_size: int = 1, max_size: int = 10, *, metrics: Any = None,
                      tracer: Any = None) -> asyncpg.Pool:
    """The pool; with metrics and/or a tracer every statement is counted/traced through asyncpg's query logger
    (about 3 us of CPU a statement, against a 100 us round trip for SELECT 1 on loopback)."""
    init = _init_connection
    if metrics is not None or tracer is not None:
        observer = _query_observer(metrics, tracer)

        async def init(conn: asyncpg.Connection) -> None:
            await _init_connection(conn)
            conn.add_query_logger(observer)

    pool = ObservedPool(
        dsn, min_size=min_size, max_size=max_size, max_queries=50000, max_inactive_connection_lifetime=300.0,
        init=init, reset=_keep_session, loop=None, connection_class=asyncpg.Connection,
        record_class=asyncpg.Record, command_timeout=60,
    )
    pool.metrics = metrics
    return await pool


@asynccontextmanager
async def database_dsn(cfg: Config) -> AsyncIterator[str]:
    """Yield the DSN to use: [database] url, or an embedded cluster started for the duration."""
    if cfg.database.url:
        yield cfg.database.url
        return
    cluster = EmbeddedPostgres(cfg.data_dir / "postgres", run_as=cfg.database.embedded_user or None)
    dsn = await cluster.start()
    try:
        yield dsn
    finally:
        await cluster.stop()


async def ping(conn: asyncpg.Connection) -> None:
    """One round trip: raises if the server does not answer (the health check)."""
    await conn.fetchval("SELECT 1")
