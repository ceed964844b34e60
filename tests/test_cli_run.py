"""`reef run` and `reef migrate` as real processes, with no database URL: the node's own embedded PostgreSQL."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path
from typing import AsyncIterator

import aiohttp
import asyncpg
import pytest

from node.platform.embedded import cluster as embedded_pg

_script = Path(sys.executable).with_name("reef")
REEF = [str(_script)] if _script.exists() else [sys.executable, "-m", "node"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """Runs reef commands on one data dir; no REEF_* variable of the test run leaks in (no database url)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.data = tmp / "data"
        self.procs: list[asyncio.subprocess.Process] = []
        self.runs = 0

    @property
    def dsn(self) -> str:
        return f"postgresql://reef@/reef?host={self.data / 'postgres'}"

    def env(self, port: int = 8080) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REEF_")}
        env.update(REEF_NODE__DATA_DIR=str(self.data), REEF_SERVER__PORT=str(port), REEF_LOG__FORMAT="json")
        return env

    def postmaster(self) -> int | None:
        return embedded_pg.EmbeddedPostgres(self.data / "postgres").server_pid()

    async def run(self) -> asyncio.subprocess.Process:
        """Start `reef run` (cwd is an empty dir, so no reef.toml is read) and wait until it is healthy."""
        self.runs += 1
        port = _free_port()
        log_path = self.tmp / f"node-{self.runs}.log"
        with open(log_path, "wb") as log_file:
            proc = await asyncio.create_subprocess_exec(
                *REEF, "run", cwd=self.tmp, env=self.env(port), stdout=log_file, stderr=log_file
            )
        self.procs.append(proc)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 120
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            while True:
                assert proc.returncode is None, f"reef run exited {proc.returncode}:\n{log_path.read_text()}"
                assert loop.time() < deadline, f"reef run never became healthy:\n{log_path.read_text()}"
                try:
                    async with http.get(f"http://127.0.0.1:{port}/api/v1/health") as resp:
                        if resp.status == 200:
                            body = await resp.json()
                            assert body["checks"]["database"]["ok"] is True
                            return proc
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)  # the node is still starting: nothing to wait on but its port

    async def stop(self, proc: asyncio.subprocess.Process) -> int:
        proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(proc.wait(), 60)

    async def command(self, *args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            *REEF, *args, cwd=self.tmp, env=self.env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        return proc.returncode or 0, out.decode(), err.decode()

    async def sql(self, query: str) -> object:
        conn = await asyncpg.connect(self.dsn)
        try:
            return await conn.fetchval(query)
        finally:
            await conn.close()

    async def execute(self, query: str) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(query)
        finally:
            await conn.close()


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    n = Node(tmp_path)
    yield n
    for proc in n.procs:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    pid = n.postmaster()
    if pid:
        os.kill(pid, signal.SIGQUIT)


async def test_run_without_database_url_starts_and_stops_its_own_postgres(node: Node) -> None:
    proc = await node.run()
    first = node.postmaster()
    assert first is not None
    assert await node.sql("SELECT count(*) FROM schema_migrations") > 0
    await node.execute("CREATE TABLE cli_kept (v text); INSERT INTO cli_kept VALUES ('persisted')")

    assert await node.stop(proc) == 0
    assert not embedded_pg._proc_alive(first)
    assert not (node.data / "postgres" / "data" / "postmaster.pid").exists()

    proc = await node.run()
    assert await node.sql("SELECT v FROM cli_kept") == "persisted"
    second = node.postmaster()
    assert second not in (None, first)
    assert await node.stop(proc) == 0
    assert not embedded_pg._proc_alive(second)


async def test_run_comes_back_after_the_node_was_killed(node: Node) -> None:
    proc = await node.run()
    orphan = node.postmaster()
    assert orphan is not None
    await node.execute("CREATE TABLE cli_kept (v int); INSERT INTO cli_kept VALUES (9)")
    proc.kill()
    await proc.wait()
    assert embedded_pg._proc_alive(orphan)  # the postmaster outlives a SIGKILLed node

    proc = await node.run()
    assert not embedded_pg._proc_alive(orphan)
    assert await node.sql("SELECT v FROM cli_kept") == 9
    current = node.postmaster()
    assert current not in (None, orphan)
    assert await node.stop(proc) == 0
    assert not embedded_pg._proc_alive(current)


async def test_migrate_twice_and_alongside_a_running_node(node: Node) -> None:
    rc, out, err = await node.command("migrate")
    assert rc == 0, err
    assert "applied 0001_agents" in out
    assert node.postmaster() is None  # the command stopped the cluster it started

    rc, out, err = await node.command("migrate")
    assert (rc, out.strip()) == (0, "database is up to date"), err

    # While a node runs, a command shares its cluster and leaves it running.
    proc = await node.run()
    pid = node.postmaster()
    rc, out, err = await node.command("migrate")
    assert (rc, out.strip()) == (0, "database is up to date"), err
    assert node.postmaster() == pid
    assert await node.sql("SELECT 1") == 1
    assert await node.stop(proc) == 0
    assert pid is not None and not embedded_pg._proc_alive(pid)
