"""Shared fixtures: a real PostgreSQL (a fresh database per test, cloned from a migrated template), real Redis."""
from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import asyncpg
import pytest

from node.platform import config as config_mod
from node.platform.config import Config, build_config
from node.platform.migrations import apply_migrations
from tests.factories import NO_THRESHOLDS

pytest_plugins = ["ap_fixtures"]  # peer, peer2 and node for the ActivityPub tests

TEST_REDIS_URL = os.environ.get("REEF_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _with_db(dsn: str, dbname: str) -> str:
    """The same server DSN pointing at another database."""
    base, _, query = dsn.partition("?")
    head, _, _ = base.rpartition("/")
    if "://" not in head or head.endswith(":/"):
        head = base
    return f"{head}/{dbname}" + (f"?{query}" if query else "")


@pytest.fixture(scope="session")
def pg_server() -> Any:
    """DSN of a server where tests may create databases: REEF_TEST_DATABASE_URL, else an embedded cluster."""
    url = os.environ.get("REEF_TEST_DATABASE_URL")
    if url:
        yield url
        return
    from node.platform.embedded.cluster import EmbeddedPostgres

    tmp = Path(tempfile.mkdtemp(prefix="reef-test-pg-"))
    cluster = EmbeddedPostgres(tmp / "postgres")
    dsn = asyncio.run(cluster.start())
    try:
        yield dsn
    finally:
        asyncio.run(cluster.stop())
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_template(pg_server: str) -> Any:
    """A database migrated once; every test database is a copy of it."""
    name = f"reef_tmpl_{os.getpid()}_{secrets.token_hex(3)}"

    async def create() -> None:
        conn = await asyncpg.connect(pg_server)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        conn = await asyncpg.connect(_with_db(pg_server, name))
        try:
            await apply_migrations(conn)
        finally:
            await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(pg_server)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(create())
    yield name
    asyncio.run(drop())


async def _fresh_database(pg_server: str, pg_template: str) -> AsyncIterator[str]:
    name = f"reef_t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(pg_server)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    finally:
        await conn.close()
    yield _with_db(pg_server, name)
    conn = await asyncpg.connect(pg_server)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def database_url(pg_server: str, pg_template: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test."""
    async for url in _fresh_database(pg_server, pg_template):
        yield url


@pytest.fixture
async def other_database_url(pg_server: str, pg_template: str) -> AsyncIterator[str]:
    """A second fresh database, for a second node in the same test."""
    async for url in _fresh_database(pg_server, pg_template):
        yield url


@pytest.fixture
def make_config(database_url: str, tmp_path: Path) -> Callable[..., Config]:
    """A Config for a test node on the test database; keyword sections override, e.g. limits={...}."""

    def make(**sections: dict[str, Any]) -> Config:
        base = build_config(
            {
                "node": {"data_dir": str(tmp_path / "data"), "domain": "127.0.0.1:8080"},
                "database": {"url": database_url},
                "log": {"format": "json"},
                "reputation": NO_THRESHOLDS,  # on in tests/test_thresholds.py
                # Many tests have one agent (registered just now) create several submolts; the rule's own
                # tests (tests/test_submolt_new_agent_rule.py) switch it on.
                "limits": {"new_agent_submolts": 0},
                "spam": {"enabled": False},  # tests of the spam rules turn it on
            },
            env={},
        )
        return config_mod.replace(base, **sections) if sections else base

    return make


@pytest.fixture
async def client(aiohttp_client: Any, make_config: Callable[..., Config]) -> Any:
    """An aiohttp test client on a node with default settings."""
    from node.app import create_app

    return await aiohttp_client(create_app(make_config()))


@pytest.fixture
def redis_url() -> str:
    return TEST_REDIS_URL


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Any]:
    """Real Redis (db 15, flushed). Fails, never skips, when Redis is not running."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)
    await client.ping()
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


@pytest.fixture(scope="session")
def lnbits() -> Any:
    """A real LNbits (FakeWallet) on loopback for the whole session, with "node" and "external" wallets.
    Fails, never skips, when REEF_LNBITS_PYTHON (set by scripts/test.sh) is missing; see tests/lnbits_support.py."""
    from lnbits_support import start_lnbits

    server = start_lnbits()
    try:
        yield server
    finally:
        server.cleanup()
