"""The embedded PostgreSQL: real initdb/pg_ctl/postgres processes in temporary directories."""
from __future__ import annotations

import asyncio
import importlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import asyncpg
import pytest

from node.platform.embedded import cluster as embedded_pg, runas as pg_runas
from node.platform.embedded.cluster import EmbeddedPostgres, EmbeddedPostgresError
from node.platform.embedded.binaries import default_bindirs, find_binaries, pgserver_bindir

REPO = Path(__file__).resolve().parents[1]


def _alive(pid: int) -> bool:
    return embedded_pg._proc_alive(pid)


def _kill_cluster(directory: Path) -> None:
    """Leave no server behind when a test fails half-way."""
    pidfile = directory / "data" / "postmaster.pid"
    if pidfile.exists():
        pid = int(pidfile.read_text().split()[0])
        if embedded_pg._is_postgres_in(pid, os.path.realpath(directory / "data"), unknown=False):
            os.kill(pid, signal.SIGQUIT)


@pytest.fixture(scope="module")
def template_cluster() -> Iterator[Path]:
    """One cluster created (initdb) and stopped once; tests that need a cluster get a copy of it."""
    root = Path(tempfile.mkdtemp(prefix="reef-epg-"))
    cluster = EmbeddedPostgres(root / "postgres")
    asyncio.run(cluster.start())
    asyncio.run(cluster.stop())
    yield root / "postgres"
    shutil.rmtree(root, ignore_errors=True)


def _copy(template: Path, parent: Path) -> Path:
    target = parent / "postgres"
    shutil.copytree(template, target, symlinks=True)
    return target


@pytest.fixture
def cluster_dir(template_cluster: Path, tmp_path: Path) -> Iterator[Path]:
    directory = _copy(template_cluster, tmp_path)
    yield directory
    _kill_cluster(directory)


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user can traverse (pytest's own tmp root is mode 0700)."""
    root = Path(tempfile.mkdtemp(prefix="reef-epg-open-"))
    os.chmod(root, 0o755)
    yield root
    _kill_cluster(root / "postgres")
    shutil.rmtree(root, ignore_errors=True)


async def _execute(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _query(dsn: str, sql: str, *args: object) -> object:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


def _proc_uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError("no Uid line")


async def test_first_start_creates_a_socket_only_cluster(tmp_path: Path) -> None:
    # Given an empty data dir (we run as root here, so the server must run unprivileged)
    cluster = EmbeddedPostgres(tmp_path / "postgres")
    try:
        dsn = await cluster.start()
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("SELECT current_database()") == "reef"
            assert await conn.fetchval("SHOW server_encoding") == "UTF8"
            assert await conn.fetchval("SHOW listen_addresses") == ""
            assert await conn.fetchval("SHOW unix_socket_directories") == str(tmp_path / "postgres")
            assert await conn.fetchval("SELECT inet_server_addr()") is None  # connected over the socket
            rules = {(r["type"], r["auth_method"]) for r in await conn.fetch("SELECT type, auth_method FROM pg_hba_file_rules")}
        finally:
            await conn.close()
        assert ("local", "trust") in rules and all(m in ("trust", "reject") for _, m in rules)
        assert all(m == "reject" for t, m in rules if t != "local")
        assert (tmp_path / "postgres" / ".s.PGSQL.5432").is_socket()
        assert os.stat(tmp_path / "postgres").st_mode & 0o077 == 0
        pid = cluster.server_pid()
        assert pid is not None
        assert cluster.mode is not None and "user namespace" in cluster.mode
        # the postmaster runs in its own user namespace (it sees itself as non-root)
        assert Path(f"/proc/{pid}/uid_map").read_text() != Path("/proc/self/uid_map").read_text()
        assert list((tmp_path / "postgres" / "log").glob("postgresql-*.log"))
    finally:
        await cluster.stop()
    assert not _alive(pid)


async def test_restart_keeps_data_and_stop_is_idempotent(cluster_dir: Path) -> None:
    first = EmbeddedPostgres(cluster_dir)
    dsn = await first.start()
    await _execute(dsn, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")
    pid = first.server_pid()
    await first.stop()
    await first.stop()
    assert pid is not None and not _alive(pid)
    assert not (cluster_dir / "data" / "postmaster.pid").exists()
    (cluster_dir / "data" / "postmaster.pid").write_text("not a pid\n")  # garbage must not block a start

    second = EmbeddedPostgres(cluster_dir)
    dsn = await second.start()
    try:
        assert await _query(dsn, "SELECT v FROM kept") == "still here"
        assert second.server_pid() != pid
    finally:
        await second.stop()


HOLDER = """
import asyncio, sys
from pathlib import Path
from node.platform.embedded.cluster import EmbeddedPostgres

async def main():
    cluster = EmbeddedPostgres(Path(sys.argv[1]))
    dsn = await cluster.start()
    print(cluster.server_pid(), dsn, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def _start_holder(directory: Path) -> tuple[asyncio.subprocess.Process, int, str]:
    """A separate process (standing for a node) that starts the cluster and then never stops it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, str(directory), cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 120)).decode().split()
    assert line, "the holder process did not start the cluster"
    return proc, int(line[0]), line[1]


async def test_start_stops_a_server_left_behind_by_a_killed_node(cluster_dir: Path) -> None:
    # Given a node that started the cluster and was killed with SIGKILL: its postmaster is still running
    holder, old_pid, dsn = await _start_holder(cluster_dir)
    await _execute(dsn, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)")
    holder.kill()
    await holder.wait()
    assert _alive(old_pid)

    cluster = EmbeddedPostgres(cluster_dir)
    dsn = await cluster.start()
    try:
        assert not _alive(old_pid)
        assert cluster.server_pid() not in (None, old_pid)
        assert await _query(dsn, "SELECT v FROM kept") == 7
    finally:
        await cluster.stop()


async def test_start_recovers_from_a_killed_postmaster_and_a_stale_pid_file(cluster_dir: Path) -> None:
    holder, old_pid, dsn = await _start_holder(cluster_dir)
    await _execute(dsn, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)")
    holder.kill()
    os.kill(old_pid, signal.SIGKILL)
    await holder.wait()
    # the old pid now belongs to an unrelated live process, as after a reboot or pid reuse
    unrelated = await asyncio.create_subprocess_exec("sleep", "600")
    pidfile = cluster_dir / "data" / "postmaster.pid"
    lines = pidfile.read_text().splitlines()
    pidfile.write_text("\n".join([str(unrelated.pid), *lines[1:]]) + "\n")
    try:
        cluster = EmbeddedPostgres(cluster_dir)
        dsn = await cluster.start()
        try:
            assert await _query(dsn, "SELECT v FROM kept") == 42
            assert cluster.server_pid() not in (None, unrelated.pid)
            assert unrelated.returncode is None and _alive(unrelated.pid)
        finally:
            await cluster.stop()
    finally:
        unrelated.kill()
        await unrelated.wait()


async def test_concurrent_starts_share_one_server_and_the_last_stop_stops_it(cluster_dir: Path) -> None:
    a, b = EmbeddedPostgres(cluster_dir), EmbeddedPostgres(cluster_dir)
    dsn_a, dsn_b = await asyncio.gather(a.start(), b.start())
    assert dsn_a == dsn_b
    pid = a.server_pid()
    assert pid is not None and b.server_pid() == pid
    assert "shared" in (a.mode or "") + (b.mode or "")
    await a.stop()
    assert await _query(dsn_b, "SELECT 1") == 1  # b still uses it
    assert _alive(pid)
    await b.stop()
    assert not _alive(pid)


async def test_no_binaries_says_what_to_install(tmp_path: Path) -> None:
    empty = tmp_path / "no-postgres-here"
    empty.mkdir()
    cluster = EmbeddedPostgres(tmp_path / "postgres", bindirs=[empty])
    with pytest.raises(EmbeddedPostgresError) as err:
        await cluster.start()
    message = str(err.value)
    assert str(empty) in message
    assert "apt-get install postgresql" in message and "pip install 'reef[embedded]'" in message
    assert not (tmp_path / "postgres" / "data").exists()
    await cluster.stop()  # a failed start leaves nothing to stop


async def test_a_cluster_of_another_major_version_is_refused(tmp_path: Path) -> None:
    (tmp_path / "postgres" / "data").mkdir(parents=True)
    (tmp_path / "postgres" / "data" / "PG_VERSION").write_text("99\n")
    with pytest.raises(EmbeddedPostgresError, match=r"created by PostgreSQL 99.*pg_upgrade"):
        await EmbeddedPostgres(tmp_path / "postgres").start()


async def test_too_long_socket_path_names_the_setting(tmp_path: Path) -> None:
    directory = tmp_path / ("d" * 100) / "postgres"
    with pytest.raises(EmbeddedPostgresError) as err:
        await EmbeddedPostgres(directory).start()
    assert "[node] data_dir" in str(err.value) and "107" in str(err.value)
    assert not directory.exists()


async def test_pgserver_package_binaries_are_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in for the pip-installable pgserver package: same layout, the system's binaries inside.
    system = await find_binaries(await default_bindirs())
    bindir = tmp_path / "site" / "pgserver" / "pginstall" / "bin"
    bindir.mkdir(parents=True)
    (tmp_path / "site" / "pgserver" / "__init__.py").write_text("")
    for name in ("initdb", "pg_ctl", "postgres"):
        (bindir / name).symlink_to(system.bindir / name)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    assert pgserver_bindir() == bindir
    assert (await default_bindirs())[-1] == ("pgserver package", bindir)
    found = await find_binaries([("pgserver package", bindir)])
    assert found.bindir == bindir and found.major == system.major


async def test_runs_as_the_configured_user_and_can_switch_back(template_cluster: Path, open_dir: Path) -> None:
    directory = _copy(template_cluster, open_dir)
    postgres = pwd.getpwnam("postgres")
    cluster = EmbeddedPostgres(directory, run_as="postgres")
    dsn = await cluster.start()
    try:
        assert cluster.mode == "user postgres"
        assert _proc_uid(cluster.server_pid() or 0) == postgres.pw_uid
        assert os.stat(directory / "data" / "PG_VERSION").st_uid == postgres.pw_uid
        await _execute(dsn, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (1)")
    finally:
        await cluster.stop()
    # Without embedded_user, root falls back to a user namespace; the files are given back to root.
    cluster = EmbeddedPostgres(directory)
    dsn = await cluster.start()
    try:
        assert "user namespace" in (cluster.mode or "")
        assert await _query(dsn, "SELECT v FROM kept") == 1
        assert os.stat(directory / "data" / "PG_VERSION").st_uid == 0
    finally:
        await cluster.stop()


async def test_configured_user_that_cannot_reach_the_dir_gets_told_what_to_do(tmp_path: Path) -> None:
    # pytest's tmp root (/tmp/pytest-of-root) is mode 0700: postgres cannot enter it
    with pytest.raises(EmbeddedPostgresError) as err:
        await EmbeddedPostgres(tmp_path / "postgres", run_as="postgres").start()
    message = str(err.value)
    assert "embedded_user = 'postgres'" in message and "cannot enter /tmp/pytest-of-root (owner root, mode 0700)" in message
    assert "chmod o+x" in message and "[node] data_dir" in message
    assert not (tmp_path / "postgres" / "data").exists()


async def test_unknown_configured_user_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedPostgresError, match="there is no user 'reef-no-such-user'"):
        await EmbeddedPostgres(tmp_path / "postgres", run_as="reef-no-such-user").start()


async def test_without_unshare_root_falls_back_to_the_postgres_user(
    template_cluster: Path, open_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_runas, "UNSHARE", "/nonexistent/unshare")
    directory = _copy(template_cluster, open_dir)
    cluster = EmbeddedPostgres(directory)
    dsn = await cluster.start()
    try:
        assert cluster.mode == "user postgres"
        assert await _query(dsn, "SELECT current_user") == "reef"
    finally:
        await cluster.stop()


async def test_without_unshare_and_an_unreachable_dir_root_gets_every_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_runas, "UNSHARE", "/nonexistent/unshare")
    with pytest.raises(EmbeddedPostgresError) as err:
        await EmbeddedPostgres(tmp_path / "postgres").start()
    message = str(err.value)
    assert "refuses to run as root" in message
    assert "unshare (util-linux) is not installed" in message and "user postgres: it cannot enter" in message
    assert "embedded_user" in message and "[database] url" in message


NORMAL_USER = """
import asyncio, json, sys
from pathlib import Path
import asyncpg
from node.platform.embedded.cluster import EmbeddedPostgres

async def main():
    directory = Path(sys.argv[1])
    cluster = EmbeddedPostgres(directory)
    dsn = await cluster.start()
    conn = await asyncpg.connect(dsn)
    await conn.execute("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('mine')")
    await conn.close()
    pid = cluster.server_pid()
    uid = [int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith("Uid:")][0]
    mode = cluster.mode
    await cluster.stop()
    cluster = EmbeddedPostgres(directory)
    conn = await asyncpg.connect(await cluster.start())
    value = await conn.fetchval("SELECT v FROM kept")
    await conn.close()
    await cluster.stop()
    print(json.dumps({"mode": mode, "server_uid": uid, "value": value, "stopped": cluster.server_pid() is None}))

asyncio.run(main())
"""


async def test_runs_as_a_normal_user(open_dir: Path) -> None:
    # The venv's interpreter lives under /root (unreachable for nobody), so use the system's Python 3.11
    # with the venv's packages; asyncpg's extension is built for the same CPython 3.11 ABI.
    nobody = pwd.getpwnam("nobody")
    os.chown(open_dir, nobody.pw_uid, nobody.pw_gid)
    site = Path(asyncpg.__file__).resolve().parents[1]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": f"{REPO}:{site}"}
    proc = await asyncio.create_subprocess_exec(
        "runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", NORMAL_USER, str(open_dir / "postgres"),
        cwd=open_dir, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result == {"mode": "the current user (nobody)", "server_uid": nobody.pw_uid, "value": "mine", "stopped": True}
    assert os.stat(open_dir / "postgres" / "data").st_uid == nobody.pw_uid
