"""Migrations: idempotent, concurrent runners apply each file once, edited files are refused."""
from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from node.platform.migrations import Migration, MigrationError, apply_migrations, load_migrations


@pytest.fixture
async def empty_db(pg_server):
    import uuid

    from tests.conftest import _with_db

    name = f"reef_m_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(pg_server)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    yield _with_db(pg_server, name)
    conn = await asyncpg.connect(pg_server)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


def _migs(*sqls: str) -> list[Migration]:
    return [Migration(i, f"m{i}", sql) for i, sql in enumerate(sqls, start=1)]


async def test_shipped_migrations_apply_and_are_idempotent(empty_db):
    conn = await asyncpg.connect(empty_db)
    try:
        first = await apply_migrations(conn)
        assert [m.version for m in first] == [m.version for m in load_migrations()]
        assert await apply_migrations(conn) == []
        count = await conn.fetchval("SELECT count(*) FROM schema_migrations")
        assert count == len(first)
    finally:
        await conn.close()


async def test_concurrent_runners_apply_each_file_once(empty_db):
    # The counter table records every execution of migration 2: it must run exactly once.
    migs = _migs(
        "CREATE TABLE runs (n int)",
        "INSERT INTO runs VALUES (1); SELECT pg_sleep(0.2)",
        "CREATE TABLE t3 (x int)",
    )
    conns = [await asyncpg.connect(empty_db) for _ in range(5)]
    try:
        results = await asyncio.gather(*(apply_migrations(c, migs) for c in conns))
        assert sum(len(r) for r in results) == 3
        assert await conns[0].fetchval("SELECT count(*) FROM runs") == 1
    finally:
        for c in conns:
            await c.close()


async def test_edited_applied_migration_is_refused(empty_db):
    conn = await asyncpg.connect(empty_db)
    try:
        await apply_migrations(conn, _migs("CREATE TABLE a (x int)"))
        with pytest.raises(MigrationError, match="edited after it was applied"):
            await apply_migrations(conn, _migs("CREATE TABLE a (x int, y int)"))
    finally:
        await conn.close()


async def test_failed_migration_rolls_back_whole_file(empty_db):
    conn = await asyncpg.connect(empty_db)
    try:
        with pytest.raises(asyncpg.PostgresError):
            await apply_migrations(conn, _migs("CREATE TABLE ok1 (x int)", "CREATE TABLE b (x int); SELECT nope"))
        assert await conn.fetchval("SELECT to_regclass('b')") is None
        assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == 1
    finally:
        await conn.close()


def test_file_names_and_duplicates_are_checked(tmp_path: Path):
    (tmp_path / "0001_a.sql").write_text("select 1")
    (tmp_path / "0001_b.sql").write_text("select 1")
    with pytest.raises(MigrationError, match="share number 0001"):
        load_migrations(tmp_path)
    (tmp_path / "0001_b.sql").unlink()
    (tmp_path / "2_bad.sql").write_text("select 1")
    with pytest.raises(MigrationError, match="NNNN_name.sql"):
        load_migrations(tmp_path)
