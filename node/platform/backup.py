"""`reef backup` / `reef restore`: pg_dump and pg_restore of the configured database or the embedded cluster."""
from __future__ import annotations

import asyncio
import datetime as dt
import os
from pathlib import Path

import asyncpg

from .config import Config
from .db import database_dsn
from .embedded.binaries import default_bindirs


class BackupError(Exception):
    """A backup or restore that could not be done, with what to do about it."""


async def pg_tool(name: str) -> str:
    """pg_dump or pg_restore from the newest PostgreSQL installed (it must be at least the server's version)."""
    for _, bindir in await default_bindirs():
        exe = bindir / name
        if os.access(exe, os.X_OK):
            return str(exe)
    raise BackupError(f"{name} not found. Install PostgreSQL's client programs (Debian: apt-get install postgresql-client).")


def default_backup_path(cfg: Config) -> Path:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return cfg.data_dir / "backups" / f"reef-{stamp}.dump"


async def _run(args: list[str], what: str) -> None:
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise BackupError(f"{what} failed (exit {proc.returncode}):\n{out.decode(errors='replace').strip()[-3000:]}")


async def backup(cfg: Config, output: Path) -> Path:
    """Dump the whole database (pg_dump's custom format: compressed, restorable table by table)."""
    output = output.expanduser().resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    pg_dump = await pg_tool("pg_dump")
    async with database_dsn(cfg) as dsn:
        partial = output.with_name(output.name + ".partial")
        try:
            await _run([pg_dump, "--format=custom", "--no-owner", "--no-privileges", f"--file={partial}",
                        f"--dbname={dsn}"], "pg_dump")
            os.replace(partial, output)  # a backup file exists only once it is complete
        finally:
            partial.unlink(missing_ok=True)
    return output


async def _agents_in(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        if not await conn.fetchval("SELECT to_regclass('public.agents') IS NOT NULL"):
            return 0
        return await conn.fetchval("SELECT count(*) FROM agents")
    finally:
        await conn.close()


async def restore(cfg: Config, source: Path, *, force: bool = False) -> int:
    """Restore a backup into the configured (or embedded) database; returns the agents it holds afterwards.
    A database that already has agents is only replaced with force."""
    source = source.expanduser().resolve()
    if not source.is_file():
        raise BackupError(f"No backup file at {source}.")
    pg_restore = await pg_tool("pg_restore")
    async with database_dsn(cfg) as dsn:
        present = await _agents_in(dsn)
        if present and not force:
            raise BackupError(
                f"The database already holds {present} agents; restoring would replace them. "
                "Restore into a fresh data dir or database, or pass --force to replace it."
            )
        await _run([pg_restore, "--clean", "--if-exists", "--no-owner", "--no-privileges", "--single-transaction",
                    "--exit-on-error", f"--dbname={dsn}", str(source)], "pg_restore")
        return await _agents_in(dsn)
