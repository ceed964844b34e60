"""The asyncpg pool: the configured server, or the embedded cluster in the data dir."""
from __future__ import annotations

import json
import logging
from contextlib import asynccontextmanager
from typing import AsyncIterator

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


async def create_pool(dsn: str, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection, reset=_keep_session, command_timeout=60
    )


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
