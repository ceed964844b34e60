"""`reef run --workers N`: N node processes on one port, started, restarted and drained by one supervisor.

The supervisor holds what must exist once: the embedded PostgreSQL cluster (when [database] url is empty), the
migrations (applied before any worker starts), the port (bound here with SO_REUSEPORT but never listened on,
so the kernel spreads connections over the workers, which bind it too) and the metrics directory of
prometheus-client's multiprocess mode (emptied before the workers start, so /metrics of any worker sums all).
Each worker is `python -m node run` with the database URL, the port and the directory in its environment: a
whole node (API, web site, stream) except that only worker 0 runs the background work ([server] background),
so jobs run once. Events cross workers the way they cross nodes' processes anyway: PostgreSQL LISTEN/NOTIFY,
or Redis when [redis] url is set.

A worker that exits while the supervisor runs is started again (after 1 s, doubling up to 30 s while it keeps
dying within a minute of starting). SIGTERM or SIGINT drains: each worker gets SIGTERM, finishes its requests
(aiohttp's shutdown timeout, 10 s) and exits; one still running 20 s later is killed. Then the embedded
cluster stops.
"""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .platform.config import Config
from .platform.db import create_pool, database_dsn
from .platform.metrics import multiprocess_dir
from .platform.migrations import apply_migrations

log = logging.getLogger("reef.supervisor")

DRAIN_SECONDS = 20.0
BACKOFF_MAX = 30.0
HEALTHY_AFTER = 60.0  # a worker that lived this long resets its backoff


@dataclass
class Worker:
    index: int
    proc: asyncio.subprocess.Process | None = None
    started: float = 0.0
    backoff: float = 1.0


def reserve_port(host: str, port: int) -> socket.socket:
    """Bind host:port with SO_REUSEPORT and do not listen: the port is ours (and its number known, for port 0),
    while connections go only to the workers' listening sockets."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


class Supervisor:
    def __init__(self, cfg: Config, count: int, config_path: str | None) -> None:
        self.cfg = cfg
        self.count = count
        self.config_path = config_path
        self.workers = [Worker(i) for i in range(count)]
        self.stopping = asyncio.Event()
        self.port = cfg.server.port
        self.metrics_dir = ""
        self._own_metrics_dir = False

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        async with database_dsn(self.cfg) as dsn:
            pool = await create_pool(dsn, 1, 1)
            try:
                async with pool.acquire() as conn:
                    await apply_migrations(conn)  # once, before any worker starts
            finally:
                await pool.close()
            reserved = reserve_port(self.cfg.server.host, self.cfg.server.port)
            self.port = reserved.getsockname()[1]
            self._prepare_metrics_dir()
            try:
                print(f"Reef node {self.cfg.node.name!r} on http://{self.cfg.server.host}:{self.port} with "
                      f"{self.count} workers (links use {self.cfg.base_url})", file=sys.stderr, flush=True)
                await asyncio.gather(*(self._keep(w, dsn) for w in self.workers))
            finally:
                reserved.close()
                if self._own_metrics_dir:
                    shutil.rmtree(self.metrics_dir, ignore_errors=True)
        log.info("all workers stopped")
        return 0

    def _prepare_metrics_dir(self) -> None:
        if not self.cfg.metrics.enabled:
            return
        self.metrics_dir = multiprocess_dir(self.cfg.metrics.multiprocess_dir)
        if not self.metrics_dir:
            self.metrics_dir, self._own_metrics_dir = tempfile.mkdtemp(prefix="reef-metrics-"), True
        path = Path(self.metrics_dir)
        path.mkdir(parents=True, exist_ok=True)
        for old in path.glob("*.db"):  # values of processes gone would otherwise be summed in
            old.unlink()

    def _env(self, worker: Worker, dsn: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "REEF_DATABASE__URL": dsn,
            "REEF_SERVER__HOST": self.cfg.server.host,  # as given to the supervisor (--host included)
            "REEF_SERVER__PORT": str(self.port),
            "REEF_SERVER__WORKERS": str(self.count),  # the worker knows it has siblings (shared rate limits)
            # Worker 0 runs the background work, unless this node leaves it to a `reef worker`.
            "REEF_SERVER__BACKGROUND": "true" if worker.index == 0 and self.cfg.server.background else "false",
            "REEF_WORKER_INDEX": str(worker.index),
        })
        if self.metrics_dir:
            env["PROMETHEUS_MULTIPROC_DIR"] = self.metrics_dir
        return env

    async def _start(self, worker: Worker, dsn: str) -> None:
        args = [sys.executable, "-m", "node"]
        if self.config_path:
            args += ["--config", self.config_path]
        args += ["run", "--as-worker"]
        worker.proc = await asyncio.create_subprocess_exec(*args, env=self._env(worker, dsn))
        worker.started = time.monotonic()
        log.info("worker %d started (pid %d)", worker.index, worker.proc.pid)

    async def _keep(self, worker: Worker, dsn: str) -> None:
        """Run the worker until the supervisor stops; start it again whenever it exits before that."""
        while not self.stopping.is_set():
            await self._start(worker, dsn)
            assert worker.proc is not None
            exited = asyncio.ensure_future(worker.proc.wait())
            stop = asyncio.ensure_future(self.stopping.wait())
            await asyncio.wait({exited, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if not exited.done():
                await self._drain(worker, exited)
                return
            self._forget(worker.proc.pid)
            lived = time.monotonic() - worker.started
            if lived >= HEALTHY_AFTER:
                worker.backoff = 1.0
            wait, worker.backoff = worker.backoff, min(BACKOFF_MAX, worker.backoff * 2)
            log.warning("worker %d (pid %d) exited with %s after %.1f s; starting it again in %.0f s",
                        worker.index, worker.proc.pid, worker.proc.returncode, lived, wait)
            try:
                await asyncio.wait_for(self.stopping.wait(), wait)
            except asyncio.TimeoutError:
                pass

    async def _drain(self, worker: Worker, exited: asyncio.Future) -> None:
        proc = worker.proc
        assert proc is not None
        try:
            proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            await asyncio.wait_for(asyncio.shield(exited), DRAIN_SECONDS)
        except asyncio.TimeoutError:
            log.warning("worker %d (pid %d) did not stop within %.0f s; killing it", worker.index, proc.pid, DRAIN_SECONDS)
            proc.kill()
            await exited
        self._forget(proc.pid)

    def _forget(self, pid: int) -> None:
        """A dead worker's live gauges leave the sums (its counters stay: they counted what happened)."""
        if self.metrics_dir:
            from prometheus_client.multiprocess import mark_process_dead

            mark_process_dead(pid, self.metrics_dir)


def run_supervisor(cfg: Config, count: int, config_path: str | None) -> int:
    return asyncio.run(Supervisor(cfg, count, config_path).run())
