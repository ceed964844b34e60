"""Finding the PostgreSQL server binaries (initdb, pg_ctl, postgres) for the embedded cluster."""
from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .process import EmbeddedPostgresError, exec_command

MIN_MAJOR = 12
INSTALL_HINT = (
    "Install the PostgreSQL server (Debian/Ubuntu: apt-get install postgresql; Fedora: dnf install "
    "postgresql-server; macOS: brew install postgresql), or pip install 'reef[embedded]' for bundled "
    "binaries, or set [database] url to use an existing PostgreSQL server."
)


@dataclass(frozen=True, slots=True)
class Binaries:
    bindir: Path
    major: int
    source: str

    def exe(self, name: str) -> str:
        return str(self.bindir / name)


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path)) or (0,)


def pgserver_bindir() -> Path | None:
    """The bindir of the pip-installable pgserver package, found without importing it."""
    try:
        spec = importlib.util.find_spec("pgserver")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"


async def default_bindirs() -> list[tuple[str, Path]]:
    """Where to look, in order: pg_config --bindir, packaged versions (newest first), PATH, pgserver."""
    found: list[tuple[str, Path]] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            rc, out = await exec_command([pg_config, "--bindir"], timeout=15)
            if rc == 0 and out.strip():
                found.append(("pg_config --bindir", Path(out.strip().splitlines()[-1])))
        except (OSError, asyncio.TimeoutError):
            pass
    for pattern in ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/usr/local/pgsql/bin"):
        for path in sorted(Path("/").glob(pattern.lstrip("/")), key=lambda p: _version_key(str(p)), reverse=True):
            found.append((pattern, path))
    for name in ("pg_ctl", "initdb", "postgres"):
        exe = shutil.which(name)
        if exe:
            found.append(("PATH", Path(os.path.realpath(exe)).parent))
    bundled = pgserver_bindir()
    if bundled is not None:
        found.append(("pgserver package", bundled))
    return found


async def find_binaries(candidates: Sequence[tuple[str, Path]], want_major: int | None = None) -> Binaries:
    """The first bindir with initdb, pg_ctl and postgres (of want_major, when an existing cluster needs it)."""
    seen: set[str] = set()
    usable: list[Binaries] = []
    for source, bindir in candidates:
        real = os.path.realpath(bindir)
        if real in seen or not all(os.access(os.path.join(real, n), os.X_OK) for n in ("initdb", "pg_ctl", "postgres")):
            continue
        seen.add(real)
        try:
            rc, out = await exec_command([os.path.join(real, "pg_ctl"), "--version"], timeout=15)
        except (OSError, asyncio.TimeoutError):
            continue
        m = re.search(r"\(PostgreSQL\) (\d+)", out)
        if rc != 0 or not m or int(m.group(1)) < MIN_MAJOR:
            continue
        found = Binaries(Path(real), int(m.group(1)), source)
        if want_major is None or found.major == want_major:
            return found
        usable.append(found)
    if usable:
        have = ", ".join(f"{b.major} ({b.bindir})" for b in usable)
        raise EmbeddedPostgresError(
            f"The embedded cluster was created by PostgreSQL {want_major}, but only PostgreSQL {have} was found. "
            f"Install PostgreSQL {want_major} (Debian/Ubuntu: apt-get install postgresql-{want_major}), "
            "or upgrade the cluster with pg_upgrade."
        )
    looked = ", ".join(str(p) for _, p in candidates) or "nowhere"
    raise EmbeddedPostgresError(
        f"No PostgreSQL {MIN_MAJOR}+ server binaries (initdb, pg_ctl, postgres) found; looked in: {looked}. {INSTALL_HINT}"
    )
