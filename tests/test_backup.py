"""`reef backup` and `reef restore` as real processes: a node's agents, posts and messages, dumped from its
database and restored into a fresh data dir (the embedded cluster), come back whole."""
from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import asyncpg

from factories import auth, create_agent
from node.app import create_app
from node.platform.appkeys import POOL
from node.platform.embedded.cluster import EmbeddedPostgres

ROOT = Path(__file__).resolve().parent.parent
TABLES = {
    "agents": "SELECT id, name, description, created_at FROM agents ORDER BY id",
    "posts": "SELECT id, author_id, title, content, created_at FROM posts ORDER BY id",
    "comments": "SELECT id, post_id, author_id, content FROM comments ORDER BY id",
    "dm_messages": "SELECT * FROM dm_messages ORDER BY 1",
    "api_keys": "SELECT id, agent_id, key_hash FROM api_keys ORDER BY id",
}


async def _reef(tmp: Path, env: dict[str, str], *args: str) -> tuple[int, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("REEF_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "node", *args, cwd=tmp, env={**base, "PYTHONPATH": str(ROOT), "REEF_LOG__LEVEL": "warning", **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 180)
    return proc.returncode or 0, out.decode()


async def _snapshot(dsn: str) -> dict[str, list[dict]]:
    conn = await asyncpg.connect(dsn)
    try:
        return {name: [dict(r) for r in await conn.fetch(sql)] for name, sql in TABLES.items()}
    finally:
        await conn.close()


async def test_backup_then_restore_into_a_fresh_data_dir_gives_everything_back(
    aiohttp_client, make_config, database_url, tmp_path
):
    client = await aiohttp_client(create_app(make_config(limits={"post_interval_seconds": 1})))
    pool = client.server.app[POOL]
    a, ka = await create_agent(pool, "alice_bak")
    b, kb = await create_agent(pool, "bob_bak")
    for i in range(3):
        resp = await client.post("/api/v1/posts", headers=auth(ka),
                                 json={"submolt_name": "general", "title": f"Post {i}", "content": f"Body {i} é ✓"})
        assert resp.status == 201, await resp.text()
        if i < 2:
            await asyncio.sleep(1.05)  # [limits] post_interval_seconds
    post_id = (await resp.json())["post"]["id"]
    resp = await client.post(f"/api/v1/posts/{post_id}/comments", headers=auth(kb), json={"content": "A reply"})
    assert resp.status == 201, await resp.text()
    resp = await client.post("/api/v1/messages", json={"to": b.name, "content": "First contact"}, headers=auth(ka))
    assert resp.status == 201, await resp.text()
    conv = (await resp.json())["conversation_id"]
    assert (await client.post(f"/api/v1/agents/dm/requests/{conv}/approve", headers=auth(kb))).status == 200
    resp = await client.post("/api/v1/messages", json={"to": a.name, "content": "Welcome!"}, headers=auth(kb))
    assert resp.status == 201, await resp.text()
    before = await _snapshot(database_url)
    assert len(before["agents"]) == 2 and len(before["posts"]) == 3 and len(before["comments"]) == 1
    assert len(before["dm_messages"]) == 2

    dump = tmp_path / "node.dump"
    rc, out = await _reef(tmp_path, {"REEF_DATABASE__URL": database_url}, "backup", "--output", str(dump))
    assert rc == 0, out
    assert "backup written to" in out and dump.stat().st_size > 1000
    assert not list(tmp_path.glob("*.partial"))

    fresh = tmp_path / "fresh"  # no [database] url: the embedded cluster of a data dir that does not exist yet
    env = {"REEF_NODE__DATA_DIR": str(fresh)}
    rc, out = await _reef(tmp_path, env, "restore", str(dump))
    assert rc == 0, out
    assert "2 agents" in out
    # A second restore would replace what is there now: refused without --force.
    rc, out = await _reef(tmp_path, env, "restore", str(dump))
    assert rc == 1 and "already holds 2 agents" in out and "--force" in out
    rc, out = await _reef(tmp_path, env, "restore", "--force", str(dump))
    assert rc == 0, out

    cluster = EmbeddedPostgres(fresh / "postgres")
    dsn = await cluster.start()
    try:
        after = await _snapshot(dsn)
    finally:
        await cluster.stop()
    assert after == before


async def test_restore_of_a_missing_file_says_so(tmp_path, database_url):
    rc, out = await _reef(tmp_path, {"REEF_DATABASE__URL": database_url}, "restore", str(tmp_path / "nope.dump"))
    assert rc == 1 and "No backup file" in out
