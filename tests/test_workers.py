"""`reef run --workers N` as a real process tree: N workers share one port, one runs the background work, a dead
worker comes back, SIGTERM drains all of them; `reef worker` runs the background work without HTTP."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import asyncpg
import pytest

from node.platform.embedded import cluster as embedded_pg
from tests.factories import NO_THRESHOLDS_ENV, create_agent

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> set[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return {int(p) for p in f.read().split()}


class Tree:
    def __init__(self, proc: asyncio.subprocess.Process, port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log
        self.url = f"http://127.0.0.1:{port}"

    async def health_by_pid(self, tries: int = 40) -> dict[int, dict[str, Any]]:
        """Ask /api/v1/health over fresh connections (the kernel spreads them over the workers)."""
        seen: dict[int, dict[str, Any]] = {}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            for _ in range(tries):
                async with http.get(f"{self.url}/api/v1/health") as resp:
                    body = await resp.json()
                    assert resp.status == 200, body
                seen[body["process"]["pid"]] = body["process"]
        return seen

    async def wait_for_workers(self, count: int, timeout: float = 60) -> set[int]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            kids = children(self.proc.pid)
            if len(kids) == count:
                try:
                    if set(await self.health_by_pid()) == kids:
                        return kids
                except (aiohttp.ClientError, OSError):
                    pass
            if loop.time() > deadline:
                raise AssertionError(f"workers {kids} not all serving; log:\n{self.log.read_text()[-3000:]}")
            await asyncio.sleep(0.3)


async def start(tmp: Path, args: list[str], env: dict[str, str]) -> Tree:
    port = _free_port()
    log = tmp / f"run-{port}.log"
    base = {k: v for k, v in os.environ.items() if not k.startswith("REEF_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    base.update(PYTHONPATH=str(ROOT), REEF_SERVER__PORT=str(port), REEF_NODE__DATA_DIR=str(tmp / "data"),
                REEF_LOG__FORMAT="json", REEF_REDIS__URL="", **NO_THRESHOLDS_ENV, **env)
    with open(log, "wb") as out:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "node", *args, cwd=tmp, env=base,
                                                    stdout=out, stderr=out)
    return Tree(proc, port, log)


async def stop(tree: Tree) -> int:
    if tree.proc.returncode is None:
        tree.proc.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(tree.proc.wait(), 60)


@pytest.fixture
async def two(tmp_path: Path, database_url: str) -> AsyncIterator[Tree]:
    tree = await start(tmp_path, ["run", "--workers", "2"], {"REEF_DATABASE__URL": database_url})
    try:
        yield tree
    finally:
        if tree.proc.returncode is None:
            for pid in children(tree.proc.pid):
                os.kill(pid, signal.SIGKILL)
            tree.proc.kill()
            await tree.proc.wait()


async def test_two_workers_serve_one_port_and_only_one_runs_the_background_work(two: Tree):
    workers = await two.wait_for_workers(2)
    seen = await two.health_by_pid()
    assert set(seen) == workers
    assert sorted(p["background"] for p in seen.values()) == [False, True]

    # What one worker writes, every worker serves: register through fresh connections, read back through others.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        async with http.post(f"{two.url}/api/v1/agents/register", json={"name": "multi", "description": "x"}) as resp:
            key = (await resp.json())["agent"]["api_key"]
        for _ in range(20):
            async with http.get(f"{two.url}/api/v1/agents/me", headers={"Authorization": f"Bearer {key}"}) as resp:
                assert resp.status == 200 and (await resp.json())["agent"]["name"] == "multi"
        async with http.get(f"{two.url}/metrics") as resp:
            text = await resp.text()
            assert resp.status == 200
    # /metrics of one worker sums every worker's requests (prometheus-client multiprocess mode)
    served = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                 if line.startswith("reef_http_requests_total{") and "/api/v1/agents/me" in line)
    assert served == 20, [line for line in text.splitlines() if "agents/me" in line]


async def test_a_dead_worker_is_started_again_and_sigterm_drains_all(two: Tree):
    workers = await two.wait_for_workers(2)
    seen = await two.health_by_pid()
    background = next(pid for pid, p in seen.items() if p["background"])
    os.kill(background, signal.SIGKILL)
    new = await two.wait_for_workers(2)
    assert background not in new and len(new & workers) == 1
    again = await two.health_by_pid()
    assert sum(p["background"] for p in again.values()) == 1  # the new worker 0 took the background work over
    assert "exited with" in two.log.read_text()

    assert await stop(two) == 0
    for pid in new:
        assert not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


async def test_workers_on_the_embedded_database(tmp_path: Path):
    """The default database: the supervisor starts the embedded cluster once and stops it after the workers."""
    tree = await start(tmp_path, ["run", "--workers", "2"], {})
    try:
        await tree.wait_for_workers(2, timeout=180)
        postmaster = embedded_pg.EmbeddedPostgres(tmp_path / "data" / "postgres").server_pid()
        assert postmaster is not None and postmaster not in children(tree.proc.pid) | {tree.proc.pid}
    finally:
        assert await stop(tree) == 0
    assert embedded_pg.EmbeddedPostgres(tmp_path / "data" / "postgres").server_pid() is None  # stopped with it


async def test_bad_worker_counts_are_refused_with_a_hint(tmp_path: Path):
    tree = await start(tmp_path, ["run", "--workers", "none"], {})
    assert await asyncio.wait_for(tree.proc.wait(), 30) == 2
    assert "'none' is not a number of processes" in tree.log.read_text()
    tree = await start(tmp_path, ["run"], {"REEF_SERVER__WORKERS": "many"})
    assert await asyncio.wait_for(tree.proc.wait(), 30) == 2
    assert 'workers = "auto"' in tree.log.read_text()


async def computed(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval("SELECT count(*) FROM reputation WHERE computed_at IS NOT NULL")
    finally:
        await conn.close()


async def test_web_processes_without_background_leave_it_to_reef_worker(tmp_path: Path, database_url: str):
    """[server] background = false serves but runs no jobs; `reef worker` runs them, with no HTTP listener."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        await create_agent(pool, "someone", claimed=True)
    finally:
        await pool.close()
    fast = {"REEF_DATABASE__URL": database_url, "REEF_REPUTATION__RECOMPUTE_SECONDS": "1"}
    web_only = await start(tmp_path, ["run", "--workers", "2"], {**fast, "REEF_SERVER__BACKGROUND": "false"})
    try:
        seen = await web_only.health_by_pid() if await web_only.wait_for_workers(2) else {}
        assert [p["background"] for p in seen.values()] == [False, False]
        await asyncio.sleep(3)  # the trust job would have run twice by now
        assert await computed(database_url) == 0

        worker = await start(tmp_path, ["worker"], fast)
        try:
            for _ in range(300):
                if await computed(database_url):
                    break
                await asyncio.sleep(0.1)
            assert await computed(database_url) == 1, worker.log.read_text()[-2000:]
            assert "background worker running" in worker.log.read_text()
            with pytest.raises(OSError):  # the worker listens nowhere; the web workers hold their own port
                socket.create_connection(("127.0.0.1", worker.port), timeout=1).close()
        finally:
            assert await stop(worker) == 0
    finally:
        assert await stop(web_only) == 0


async def test_dms_sent_through_any_worker_reach_a_socket_on_another_without_redis(two: Tree, database_url: str):
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        _, ka = await create_agent(pool, "alice")
        bob, kb = await create_agent(pool, "bob")
    finally:
        await pool.close()
    await two.wait_for_workers(2)
    fresh = aiohttp.TCPConnector(force_close=True)  # every request a new connection: spread over the workers
    async with aiohttp.ClientSession(connector=fresh) as http, aiohttp.ClientSession() as held:
        ws = await held.ws_connect(f"{two.url}/api/v1/stream", headers={"Authorization": f"Bearer {kb}"})
        assert (await ws.receive_json(timeout=20))["type"] == "ready"
        async with http.post(f"{two.url}/api/v1/agents/dm/request", headers={"Authorization": f"Bearer {ka}"},
                             json={"to": "bob", "message": "hello"}) as resp:
            conv = (await resp.json())["conversation_id"]
        async with http.post(f"{two.url}/api/v1/agents/dm/requests/{conv}/approve",
                             headers={"Authorization": f"Bearer {kb}"}) as resp:
            assert resp.status == 200
        for i in range(10):
            async with http.post(f"{two.url}/api/v1/agents/dm/conversations/{conv}/send",
                                 headers={"Authorization": f"Bearer {ka}"}, json={"message": f"m{i}"}) as resp:
                assert resp.status in (200, 201)
        got = []
        while len(got) < 10:
            frame = await ws.receive_json(timeout=20)
            if frame["type"] == "dm":
                got.append(frame["content"])
        assert got == [f"m{i}" for i in range(10)]
        await ws.close()


async def test_rate_limits_hold_across_workers_without_redis(tmp_path: Path, database_url: str):
    """Each worker counting on its own would admit 3 registrations per worker; the shared buckets admit 3."""
    tree = await start(tmp_path, ["run", "--workers", "2"],
                       {"REEF_DATABASE__URL": database_url, "REEF_LIMITS__REGISTRATIONS_PER_HOUR": "3"})
    try:
        await tree.wait_for_workers(2)
        statuses, pids = [], set()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            for i in range(10):
                async with http.post(f"{tree.url}/api/v1/agents/register", json={"name": f"reg{i}", "description": "x"}) as resp:
                    statuses.append(resp.status)
            pids = set(await tree.health_by_pid())
        assert len(pids) == 2
        assert statuses.count(201) == 3 and statuses.count(429) == 7, statuses
    finally:
        assert await stop(tree) == 0


async def test_workers_stop_when_their_supervisor_is_killed(two: Tree):
    """SIGKILL leaves no time to drain: the workers notice their parent is gone and stop on their own."""
    workers = await two.wait_for_workers(2)
    two.proc.kill()
    await two.proc.wait()
    for _ in range(100):
        alive = [pid for pid in workers if Path(f"/proc/{pid}").exists()
                 and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"]
        if not alive:
            break
        await asyncio.sleep(0.1)
    assert alive == [], "workers outlived their supervisor"
