"""Forward-only SQL migrations: applied in order, one transaction each, under an advisory lock."""
from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

# pg_advisory_lock key: "reef" in ASCII, so several processes starting at once migrate one at a time.
LOCK_KEY = 0x72656566
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(Exception):
    """A migration cannot be applied; the message says which file and what to do."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """The migration files, sorted by number; a duplicate number is an error."""
    if directory is None:
        files = [(f.name, f.read_text()) for f in resources.files("migrations").iterdir() if f.name.endswith(".sql")]
    else:
        files = [(p.name, p.read_text()) for p in Path(directory).glob("*.sql")]
    found: list[Migration] = []
    for fname, text in files:
        m = _NAME.match(fname)
        if not m:
            raise MigrationError(f"Migration file {fname!r} is not named NNNN_name.sql.")
        found.append(Migration(int(m.group(1)), m.group(2), text))
    found.sort(key=lambda mig: mig.version)
    # Gaps are allowed (features land in any order); one number used twice is not.
    for prev, mig in zip(found, found[1:]):
        if prev.version == mig.version:
            raise MigrationError(
                f"Two migration files share number {mig.version:04d}: {prev.name} and {mig.name}. Renumber the newer one."
            )
    return found


async def apply_migrations(conn: asyncpg.Connection, migrations: list[Migration] | None = None) -> list[Migration]:
    """Apply what is not yet applied; returns the newly applied ones."""
    migrations = load_migrations() if migrations is None else migrations
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
        applied = {r["version"]: r for r in rows}
        known = {m.version for m in migrations}
        unknown = sorted(set(applied) - known)
        if unknown:
            raise MigrationError(
                f"The database has migration {unknown[-1]:04d} applied, which this version of Reef does not know; "
                "it was written by a newer Reef. Run that version, or restore a backup."
            )
        done: list[Migration] = []
        for mig in migrations:
            row = applied.get(mig.version)
            if row is not None:
                if row["checksum"] != mig.checksum:
                    raise MigrationError(
                        f"Migration {mig.version:04d}_{mig.name}.sql was edited after it was applied "
                        f"(checksum {row['checksum'][:12]} in the database, {mig.checksum[:12]} on disk). "
                        "Applied migrations are never edited: restore the file and add a new migration for the change."
                    )
                continue
            async with conn.transaction():
                await conn.execute(mig.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    mig.version, mig.name, mig.checksum,
                )
            log.info("applied migration %04d_%s", mig.version, mig.name)
            done.append(mig)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
