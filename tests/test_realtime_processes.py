"""Two real node processes on one PostgreSQL and one Redis: events cross processes, and a Redis restart loses nothing."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import asyncpg
import pytest
from aiohttp import WSMsgType

from tests.factories import NO_THRESHOLDS_ENV, auth, create_agent

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """`python -m node run` on a free port, logging to a file."""

    def __init__(self, tmp: Path, name: str, database_url: str, redis_url: str, extra_env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / f"{name}.log"
        env = dict(os.environ)
        env.update({
            "REEF_DATABASE__URL": database_url,
            "REEF_REDIS__URL": redis_url,
            "REEF_NODE__DATA_DIR": str(tmp / name),
            "REEF_SERVER__HOST": "127.0.0.1",
            "REEF_SERVER__PORT": str(self.port),
            "REEF_LOG__FORMAT": "json",
            "REEF_LIMITS__REQUESTS_PER_MINUTE": "10000",
            **NO_THRESHOLDS_ENV,
        })
        env.update(extra_env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "node", "run"], cwd=REPO, env=env,
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
        )

    async def wait_healthy(self, http: aiohttp.ClientSession) -> None:
        for _ in range(300):
            assert self.proc.poll() is None, f"node exited: {self.log.read_text()[-3000:]}"
            try:
                async with http.get(f"{self.url}/api/v1/health") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass  # not listening yet
            await asyncio.sleep(0.1)
        raise AssertionError(f"node did not become healthy: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class RedisServer:
    """A private redis-server (the shared one must not be restarted)."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.dir = tmp / "redis"
        self.dir.mkdir(exist_ok=True)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is needed for this test (apt-get install redis-server)"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--save", "", "--appendonly", "no"],
            stdout=(self.dir / "redis.log").open("ab"), stderr=subprocess.STDOUT,
        )

    async def wait_ready(self) -> None:
        import redis.asyncio as aioredis

        client = aioredis.from_url(self.url)
        try:
            for _ in range(100):
                try:
                    if await client.ping():
                        return
                except (OSError, aioredis.ConnectionError):
                    await asyncio.sleep(0.05)
            raise AssertionError("redis-server did not start")
        finally:
            await client.aclose()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    from node.platform.db import create_pool

    p = await create_pool(database_url, 1, 2)
    yield p
    await p.close()


async def start_nodes(tmp: Path, database_url: str, redis_url: str, http: aiohttp.ClientSession) -> list[Node]:
    nodes = [Node(tmp, "a", database_url, redis_url), Node(tmp, "b", database_url, redis_url)]
    try:
        await asyncio.gather(*(n.wait_healthy(http) for n in nodes))
    except BaseException:
        for n in nodes:
            n.stop()
        raise
    return nodes


async def frame(ws: aiohttp.ClientWebSocketResponse, *types: str, timeout: float = 20.0) -> dict[str, Any]:
    while True:
        msg = await ws.receive(timeout=timeout)
        assert msg.type == WSMsgType.TEXT, f"{msg.type} {msg.data!r}"
        data = json.loads(msg.data)
        if not types or data["type"] in types:
            return data


async def post(http: aiohttp.ClientSession, url: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
    async with http.post(url, json=body, headers=auth(key)) as resp:
        data = await resp.json()
        assert resp.status in (200, 201), data
        return data


async def open_conversation(http, node_a: Node, node_b: Node, ka: str, kb: str, b_name: str) -> str:
    conv = await post(http, f"{node_a.url}/api/v1/agents/dm/request", ka, {"to": b_name, "message": "hello from A"})
    conv_id = conv["conversation_id"]
    await post(http, f"{node_b.url}/api/v1/agents/dm/requests/{conv_id}/approve", kb, {})
    return conv_id


async def test_dm_sent_through_one_process_reaches_a_socket_on_the_other(tmp_path, database_url, redis_url, redis_client, pool, http):
    alice, ka = await create_agent(pool)
    bob, kb = await create_agent(pool)
    node_a, node_b = await start_nodes(tmp_path, database_url, redis_url, http)
    try:
        ws_bob = await http.ws_connect(f"{node_b.url}/api/v1/stream", headers=auth(kb))
        await frame(ws_bob, "ready")
        conv_id = await open_conversation(http, node_a, node_b, ka, kb, bob.name)
        note = await frame(ws_bob, "notification")  # the request, made on A
        assert note["kind"] == "dm_request" and note["from"] == alice.name

        # Presence crosses too: alice connects on A, bob (on B) is told.
        ws_alice = await http.ws_connect(f"{node_a.url}/api/v1/stream", headers=auth(ka))
        await frame(ws_alice, "ready")
        online = await frame(ws_bob, "presence")
        assert online["agent"] == alice.name and online["status"] == "online"

        sent = await post(http, f"{node_a.url}/api/v1/agents/dm/conversations/{conv_id}/send", ka, {"message": "across processes"})
        dm = await frame(ws_bob, "dm")
        assert dm["content"] == "across processes" and dm["from"] == alice.name
        assert dm["message_id"] == sent["message"]["id"] and dm["id"] == note["id"] + 1

        # And back over the socket on B, to alice's socket on A; typing crosses as well.
        await ws_bob.send_json({"type": "typing", "conversation_id": conv_id})
        typing = await frame(ws_alice, "typing")
        assert typing["from"] == bob.name
        await ws_bob.send_json({"type": "dm", "conversation_id": conv_id, "content": "got it", "ref": 1})
        assert (await frame(ws_bob, "ack"))["ref"] == 1
        assert (await frame(ws_alice, "dm"))["content"] == "got it"

        # Notifications from other services (here a follow) reach a socket on the other process too.
        async with http.post(f"{node_a.url}/api/v1/agents/{bob.name}/follow", headers=auth(ka)) as resp:
            assert resp.status == 200
        follow = await frame(ws_bob, "notification")
        assert follow["kind"] == "follow" and follow["from"] == alice.name
        await ws_alice.close()
        await ws_bob.close()
    finally:
        node_a.stop()
        node_b.stop()


async def test_a_redis_restart_loses_nothing(tmp_path, database_url, pool, http):
    redis = RedisServer(tmp_path)
    redis.start()
    await redis.wait_ready()
    alice, ka = await create_agent(pool)
    bob, kb = await create_agent(pool)
    node_a, node_b = await start_nodes(tmp_path, database_url, redis.url, http)
    try:
        conv_id = await open_conversation(http, node_a, node_b, ka, kb, bob.name)
        ws_bob = await http.ws_connect(f"{node_b.url}/api/v1/stream", headers=auth(kb))
        ready = await frame(ws_bob, "ready")
        send_url = f"{node_a.url}/api/v1/agents/dm/conversations/{conv_id}/send"
        await post(http, send_url, ka, {"message": "before"})
        first = await frame(ws_bob, "dm")
        assert first["content"] == "before" and first["id"] == ready["last_id"] + 1

        redis.stop()
        # Redis is down: sending still works (PostgreSQL is the source of truth).
        for text in ("during 1", "during 2", "during 3"):
            await post(http, send_url, ka, {"message": text})

        redis.start()
        await redis.wait_ready()
        # B resubscribes, re-reads what it missed from PostgreSQL; then live delivery resumes.
        got = [await frame(ws_bob, "dm") for _ in range(3)]
        assert [f["content"] for f in got] == ["during 1", "during 2", "during 3"]
        # The publisher on A recovers too: this one may need A's client to reconnect first.
        await post(http, send_url, ka, {"message": "after"})
        after = await frame(ws_bob, "dm")
        assert after["content"] == "after"
        ids = [first["id"]] + [f["id"] for f in got] + [after["id"]]
        assert ids == list(range(first["id"], first["id"] + 5))
        # No duplicates behind it.
        await ws_bob.send_json({"type": "ping"})
        assert (await frame(ws_bob))["type"] == "pong"
        await ws_bob.close()
        log = node_b.log.read_text()
        assert "resyncing open streams" in log
    finally:
        node_a.stop()
        node_b.stop()
        redis.stop()
