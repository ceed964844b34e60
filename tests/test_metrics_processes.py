"""Several worker processes: with one PROMETHEUS_MULTIPROC_DIR, a scrape of any process adds up all of them."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from metrics_support import value

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _start(tmp: Path, database_url: str, multiproc: dict[str, str], name: str) -> tuple[asyncio.subprocess.Process, int]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REEF_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        PYTHONPATH=str(ROOT), **multiproc, REEF_DATABASE__URL=database_url,
        REEF_SERVER__PORT=str(port), REEF_NODE__DATA_DIR=str(tmp / "data"), REEF_LOG__FORMAT="json",
        REEF_NODE__DOMAIN="127.0.0.1:8080",
    )
    log_path = tmp / f"{name}.log"
    with open(log_path, "wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "node", "run", cwd=tmp, env=env, stdout=log_file, stderr=log_file
        )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        while True:
            assert proc.returncode is None, f"{name} exited:\n{log_path.read_text()}"
            assert loop.time() < deadline, f"{name} never became healthy:\n{log_path.read_text()}"
            try:
                async with http.get(f"http://127.0.0.1:{port}/api/v1/health") as resp:
                    if resp.status == 200:
                        return proc, port
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)


async def test_two_processes_counters_add_up_in_one_scrape(tmp_path, database_url):
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    # One process is told by prometheus-client's variable, the other by [metrics] multiprocess_dir.
    (a, port_a), (b, port_b) = await asyncio.gather(
        _start(tmp_path, database_url, {"PROMETHEUS_MULTIPROC_DIR": str(multiproc)}, "a"),
        _start(tmp_path, database_url, {"REEF_METRICS__MULTIPROCESS_DIR": str(multiproc)}, "b"),
    )
    try:
        async with aiohttp.ClientSession() as http:
            for port, n in ((port_a, 3), (port_b, 4)):
                for _ in range(n):
                    async with http.get(f"http://127.0.0.1:{port}/api/v1/agents/me") as resp:
                        assert resp.status == 401
            texts = []
            for port in (port_a, port_b):
                async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                    assert resp.status == 200
                    texts.append(await resp.text())
        for text in texts:  # either process's scrape tells the whole node
            assert value(text, "reef_http_requests_total", route="/api/v1/agents/me", status="401") == 7
            assert value(text, "reef_http_request_duration_seconds_count", route="/api/v1/agents/me") == 7
            assert value(text, "reef_http_errors_total", route="/api/v1/agents/me", status="401") == 7
            # the health checks each start-up waited on, from both processes
            assert value(text, "reef_http_requests_total", route="/api/v1/health") >= 2
            assert value(text, "reef_db_pool_size") >= 2  # livesum: both processes' pools
            assert value(text, "reef_database_up") == 1
            assert value(text, "process_resident_memory_bytes") > 0
        assert len([p for p in multiproc.iterdir() if p.name.startswith("counter_")]) == 2  # a file per process
    finally:
        for proc in (a, b):
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (a, b):
            await asyncio.wait_for(proc.wait(), 30)
