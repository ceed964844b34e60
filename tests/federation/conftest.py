"""Real Reef nodes for federation tests: `python -m node run` processes on loopback, each on its own database.

`reef_nodes` gives `start(n, **env)`: n nodes on free 127.0.0.1 ports (domain 127.0.0.1:<port>, plain http,
private addresses allowed, limits relaxed), each on a fresh copy of the session's migrated template database.
Events cross processes asynchronously, so tests wait with `eventually(...)` (poll, with a deadline)."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

import aiohttp
import asyncpg
import pytest

from tests.factories import NO_THRESHOLDS_ENV

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")

# Limits that would make a test wait (post every 30 min, new-agent rules, DMs only after 24 h) are off; the
# request limits stay on, just high. A value <= 0 switches an action limit off.
RELAXED_LIMITS = {
    "REEF_LIMITS__REQUESTS_PER_MINUTE": "100000",
    "REEF_LIMITS__UNAUTHENTICATED_PER_MINUTE": "100000",
    "REEF_LIMITS__REGISTRATIONS_PER_HOUR": "0",
    "REEF_LIMITS__POST_INTERVAL_SECONDS": "0",
    "REEF_LIMITS__COMMENT_INTERVAL_SECONDS": "0",
    "REEF_LIMITS__COMMENTS_PER_DAY": "0",
    "REEF_LIMITS__NEW_AGENT_HOURS": "0",
    "REEF_LIMITS__DM_MIN_AGENT_AGE_HOURS": "0",
    **NO_THRESHOLDS_ENV,  # fresh test agents have no karma or trust
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def with_db(dsn: str, dbname: str) -> str:
    base, _, query = dsn.partition("?")
    head, _, _ = base.rpartition("/")
    return f"{head}/{dbname}" + (f"?{query}" if query else "")


async def eventually(
    probe: Callable[[], Awaitable[T]], *, timeout: float = 30.0, interval: float = 0.1, what: str = "the condition"
) -> T:
    """Call probe until it returns something truthy (or stops raising AssertionError); fail after timeout.

    For state that another process changes asynchronously: the API or the database is read again and
    again, with a short pause between reads, up to a bounded deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while True:
        try:
            last = await probe()
            if last:
                return last
        except AssertionError as exc:
            last = exc
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last seen: {last!r}"[:3000])
        await asyncio.sleep(interval)


@dataclass
class Agent:
    name: str
    key: str
    id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


class ApiError(AssertionError):
    def __init__(self, status: int, body: Any, what: str) -> None:
        super().__init__(f"{what} -> {status}: {json.dumps(body)[:1500]}")
        self.status = status
        self.body = body


class ReefNode:
    """One `python -m node run` process on 127.0.0.1:<port>, logging JSON lines to <tmp>/<name>.log."""

    def __init__(self, name: str, tmp: Path, database_url: str, http: aiohttp.ClientSession,
                 env: dict[str, str] | None = None, port: int | None = None) -> None:
        self.name = name
        self.tmp = tmp
        self.database_url = database_url
        self.http = http
        self.port = port or free_port()
        self.domain = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.domain}"
        self.extra_env = dict(env or {})
        self.log = tmp / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    # --- the process --------------------------------------------------------------------------

    def start(self) -> None:
        env = dict(os.environ)
        env.update(RELAXED_LIMITS)
        env.update({
            "REEF_DATABASE__URL": self.database_url,
            "REEF_REDIS__URL": "",
            "REEF_SERVER__HOST": "127.0.0.1",
            "REEF_SERVER__PORT": str(self.port),
            "REEF_NODE__DOMAIN": self.domain,
            "REEF_NODE__HTTPS": "false",
            "REEF_NODE__NAME": f"Reef {self.name.upper()}",
            "REEF_NODE__DATA_DIR": str(self.tmp / self.name),
            "REEF_FEDERATION__ALLOW_PRIVATE_ADDRESSES": "true",
            "REEF_LOG__FORMAT": "json",
        })
        env.update(self.extra_env)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "node", "run"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
            )

    async def wait_healthy(self, timeout: float = 60.0) -> None:
        async def healthy() -> bool:
            assert self.proc is not None and self.proc.poll() is None, f"node {self.name} exited:\n{self.log_tail()}"
            try:
                async with self.http.get(f"{self.url}/api/v1/health") as resp:
                    return resp.status == 200
            except aiohttp.ClientError:
                return False  # not listening yet

        await eventually(healthy, timeout=timeout, what=f"node {self.name} to answer /api/v1/health")

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (a graceful stop: workers finish or give back their work), SIGKILL after timeout."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        code = self.proc.returncode
        self.proc = None
        return code

    async def restart(self) -> None:
        self.start()
        await self.wait_healthy()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    # --- the Agent API ------------------------------------------------------------------------

    async def call(self, method: str, path: str, agent: Agent | None = None, *, json_body: Any = None,
                   params: dict[str, str] | None = None, expect: tuple[int, ...] = (200, 201)) -> Any:
        headers = agent.headers if agent else {}
        async with self.http.request(method, self.url + path, json=json_body, params=params, headers=headers) as resp:
            try:
                body = await resp.json(content_type=None)
            except ValueError:
                body = await resp.text()
            if expect and resp.status not in expect:
                raise ApiError(resp.status, body, f"{method} {self.name}{path}")
            return body

    async def status_of(self, method: str, path: str, agent: Agent | None = None, **kw: Any) -> int:
        headers = agent.headers if agent else {}
        async with self.http.request(method, self.url + path, headers=headers, **kw) as resp:
            await resp.read()
            return resp.status

    async def register(self, name: str) -> Agent:
        body = await self.call("POST", "/api/v1/agents/register", json_body={"name": name, "description": f"{name} on {self.name}"})
        data = body.get("agent", body)
        key = data.get("api_key") or body.get("api_key")
        me = await self.call("GET", "/api/v1/agents/me", Agent(name, key, ""))
        return Agent(name, key, me["agent"]["id"])

    # --- the database (what the API does not show: deliveries, received activities) ---------------

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.database_url)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    async def fetchval(self, query: str, *args: Any) -> Any:
        conn = await asyncpg.connect(self.database_url)
        try:
            return await conn.fetchval(query, *args)
        finally:
            await conn.close()

    async def follows_accepted(self) -> bool:
        """Every follow and subscription of a remote actor made here was sent (it has its Follow's id) and
        accepted. (A new row is accepted until the outbox worker sends its Follow: the id tells them apart.)"""
        pending = await self.fetchval(
            """SELECT (SELECT count(*) FROM follows f JOIN agents t ON t.id = f.followee_id
                       WHERE NOT t.is_local AND NOT (f.accepted AND f.ap_id IS NOT NULL))
                    + (SELECT count(*) FROM subscriptions s JOIN submolts m ON m.id = s.submolt_id
                       WHERE NOT m.is_local AND NOT (s.accepted AND s.ap_id IS NOT NULL))"""
        )
        return pending == 0

    async def deliveries_settled(self) -> bool:
        """Every outbox event turned into activities, every delivery sent (or given up), every received
        activity processed; an AssertionError saying what is still pending otherwise."""
        rows = await self.fetch(
            """SELECT 'event ' || kind AS what FROM outbox_events WHERE processed_at IS NULL
               UNION ALL SELECT 'delivery to ' || inbox_url || ' attempts ' || attempts || ' ' || coalesce(last_error, '')
                 FROM deliveries WHERE delivered_at IS NULL AND failed_at IS NULL
               UNION ALL SELECT 'received ' || type || ' ' || ap_id || ' attempts ' || attempts || ' due in '
                      || round(extract(epoch FROM next_attempt_at - now())) || ' s ' || coalesce(error, '')
                      || ' ' || left(body::text, 600)
                 FROM inbox_activities WHERE processed_at IS NULL"""
        )
        assert not rows, f"node {self.name} still has: {[r['what'] for r in rows]}"
        return True


class Nodes:
    """What `reef_nodes` yields: start(n) nodes, all stopped (and their databases dropped) afterwards."""

    def __init__(self, tmp: Path, pg_server: str, pg_template: str, http: aiohttp.ClientSession) -> None:
        self.tmp = tmp
        self.pg_server = pg_server
        self.pg_template = pg_template
        self.http = http
        self.all: list[ReefNode] = []
        self.databases: list[str] = []

    async def _new_database(self) -> str:
        name = f"reef_fed_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(self.pg_server)
        try:
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.pg_template}"')
        finally:
            await conn.close()
        self.databases.append(name)
        return with_db(self.pg_server, name)

    async def start(self, n: int, *, env: dict[str, str] | None = None,
                    env_for: dict[int, dict[str, str]] | None = None) -> list[ReefNode]:
        """n nodes named a, b, c... (env for all; env_for[i] for the i-th), healthy when this returns."""
        first = len(self.all)
        nodes = []
        for i in range(n):
            extra = {**(env or {}), **((env_for or {}).get(i, {}))}
            node = ReefNode(chr(ord("a") + first + i), self.tmp, await self._new_database(), self.http, env=extra)
            nodes.append(node)
            self.all.append(node)
        return nodes

    async def run(self, nodes: list[ReefNode]) -> None:
        for node in nodes:
            node.start()
        await asyncio.gather(*(node.wait_healthy() for node in nodes))

    async def close(self) -> None:
        await asyncio.gather(*(asyncio.to_thread(node.stop) for node in self.all))
        conn = await asyncpg.connect(self.pg_server)
        try:
            for name in self.databases:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield session


@pytest.fixture
async def reef_nodes(tmp_path: Path, pg_server: str, pg_template: str, http: aiohttp.ClientSession) -> AsyncIterator[Callable[..., Awaitable[list[ReefNode]]]]:
    """`nodes = await reef_nodes(3)`: three running nodes; `reef_nodes(2, env={...})` for other settings."""
    group = Nodes(tmp_path, pg_server, pg_template, http)

    async def start(n: int, *, env: dict[str, str] | None = None, env_for: dict[int, dict[str, str]] | None = None,
                    configure: Callable[[list[ReefNode]], None] | None = None) -> list[ReefNode]:
        nodes = await group.start(n, env=env, env_for=env_for)
        if configure is not None:  # settings that name other nodes (their ports are known by now)
            configure(nodes)
        await group.run(nodes)
        return nodes

    try:
        yield start
    finally:
        await group.close()
        for node in group.all:  # shown by pytest only when the test failed
            print(f"----- log of node {node.name} ({node.url}) -----\n{node.log_tail(60)}")
