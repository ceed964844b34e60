"""The API-key cache: requests skip the key lookup, and every change that matters reaches it at once.

Changes here are made on a separate database connection, as `reef agents suspend` or another node process
would make them, and with a cache lifetime of an hour: only the invalidation can explain a fresh answer.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import pytest

from node.platform import appkeys
from node.app import create_app
from node.services.apikeys import hash_key
from tests.factories import auth, create_agent

HOUR = 3600


@pytest.fixture
async def node(aiohttp_client: Any, make_config: Any) -> Any:
    cfg = make_config(server={"key_cache_seconds": HOUR})
    return await aiohttp_client(create_app(cfg))


@pytest.fixture
async def db(database_url: str) -> Any:
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


async def _status(client: Any, key: str) -> int:
    resp = await client.get("/api/v1/agents/status", headers=auth(key))
    await resp.read()
    return resp.status


async def _until(predicate, timeout: float = 5.0) -> float:
    """Seconds until predicate() held; fails after timeout."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, "condition not reached in time"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def test_a_known_key_is_not_looked_up_again(node: Any) -> None:
    cache = node.server.app[appkeys.KEY_CACHE]
    _, key = await create_agent(node.server.app[appkeys.POOL])
    assert await _status(node, key) == 200
    assert hash_key(key) in cache.entries
    hits = cache.hits
    for _ in range(3):
        assert await _status(node, key) == 200
    assert cache.hits == hits + 3


async def test_a_suspension_made_elsewhere_applies_at_once(node: Any, db: Any) -> None:
    cache = node.server.app[appkeys.KEY_CACHE]
    agent, key = await create_agent(node.server.app[appkeys.POOL])
    assert await _status(node, key) == 200
    await db.execute("UPDATE agents SET status = 'suspended' WHERE id = $1", agent.id)
    waited = await _until(lambda: hash_key(key) not in cache.entries)
    assert waited < 2
    resp = await node.get("/api/v1/agents/status", headers=auth(key))
    assert resp.status == 403
    assert "suspended" in (await resp.json())["error"]


@pytest.mark.parametrize("change, status, error", [
    ("UPDATE api_keys SET revoked_at = now() WHERE key_hash = $1", 401, "revoked"),
    ("UPDATE api_keys SET expires_at = now() WHERE key_hash = $1", 401, "expired"),
    ("DELETE FROM api_keys WHERE key_hash = $1", 401, "Invalid API key"),
    ("UPDATE agents SET name = name || '_renamed' WHERE id = (SELECT agent_id FROM api_keys WHERE key_hash = $1)", 200, None),
])
async def test_a_key_changed_elsewhere_is_looked_up_again_at_once(node: Any, db: Any, change: str, status: int,
                                                                  error: str | None) -> None:
    cache = node.server.app[appkeys.KEY_CACHE]
    agent, key = await create_agent(node.server.app[appkeys.POOL])
    assert await _status(node, key) == 200
    await db.execute(change, hash_key(key))
    await _until(lambda: hash_key(key) not in cache.entries)
    resp = await node.get("/api/v1/agents/status", headers=auth(key))
    assert resp.status == status
    body = await resp.json()
    if error is not None:
        assert error in body["error"]
    else:
        assert body["name"] == agent.name + "_renamed"


async def test_own_changes_apply_without_waiting_for_the_notification(node: Any) -> None:
    """Rotation through the API: the old key is refused by the very next request of this process."""
    _, key = await create_agent(node.server.app[appkeys.POOL])
    assert await _status(node, key) == 200
    resp = await node.post("/api/v1/agents/me/rotate-key", headers=auth(key))
    assert resp.status in (200, 201), await resp.text()
    new_key = (await resp.json())["api_key"]
    assert await _status(node, key) == 401
    assert await _status(node, new_key) == 200


async def test_a_profile_edit_is_seen_by_the_next_request(node: Any) -> None:
    _, key = await create_agent(node.server.app[appkeys.POOL])
    assert await _status(node, key) == 200
    resp = await node.patch("/api/v1/agents/me", json={"display_name": "Renamed Reef"}, headers=auth(key))
    assert resp.status == 200
    # A post's author is the request's agent: it must carry the new name, not the cached one.
    resp = await node.post("/api/v1/posts", json={"submolt": "general", "title": "After the rename", "content": "x"},
                           headers=auth(key))
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    author = body.get("post", body).get("author")
    assert author["display_name"] == "Renamed Reef"


async def test_counter_updates_do_not_evict(node: Any, db: Any) -> None:
    """Karma and counts change on every vote; they are not announced. A later announced change is the
    barrier: notifications arrive in commit order, so once it is seen the karma update was too."""
    pool = node.server.app[appkeys.POOL]
    cache = node.server.app[appkeys.KEY_CACHE]
    agent, key = await create_agent(pool)
    other, other_key = await create_agent(pool)
    assert await _status(node, key) == 200
    assert await _status(node, other_key) == 200
    await db.execute("UPDATE agents SET karma = karma + 5, follower_count = follower_count + 1, last_active = now() "
                     "WHERE id = $1", agent.id)
    await db.execute("UPDATE agents SET display_name = 'barrier' WHERE id = $1", other.id)
    await _until(lambda: hash_key(other_key) not in cache.entries)
    assert hash_key(key) in cache.entries


async def test_losing_the_listen_connection_turns_the_cache_off_until_it_is_back(node: Any, db: Any) -> None:
    app = node.server.app
    cache, listener = app[appkeys.KEY_CACHE], app[appkeys.LISTENER]
    agent, key = await create_agent(app[appkeys.POOL])
    assert await _status(node, key) == 200
    assert cache.entries
    pid = listener.conn.get_server_pid()
    assert await db.fetchval("SELECT pg_terminate_backend($1)", pid)
    await _until(lambda: not cache.live)
    assert not cache.entries  # forgotten: changes made meanwhile would not be announced to us
    # Meanwhile every request looks its key up, so a change is seen at once.
    await db.execute("UPDATE agents SET status = 'suspended' WHERE id = $1", agent.id)
    assert await _status(node, key) == 403
    await db.execute("UPDATE agents SET status = 'claimed' WHERE id = $1", agent.id)
    await _until(lambda: listener.is_connected and cache.live)
    assert listener.conn.get_server_pid() != pid
    assert await _status(node, key) == 200
    assert hash_key(key) in cache.entries
    # And invalidations flow on the new connection.
    await db.execute("UPDATE agents SET status = 'suspended' WHERE id = $1", agent.id)
    await _until(lambda: hash_key(key) not in cache.entries)
    assert await _status(node, key) == 403


async def test_zero_seconds_turns_the_cache_off(aiohttp_client: Any, make_config: Any) -> None:
    client = await aiohttp_client(create_app(make_config(server={"key_cache_seconds": 0})))
    cache = client.server.app[appkeys.KEY_CACHE]
    _, key = await create_agent(client.server.app[appkeys.POOL])
    for _ in range(3):
        assert await _status(client, key) == 200
    assert cache.hits == 0 and not cache.entries


def test_a_negative_lifetime_is_a_config_error() -> None:
    from node.platform.config import ConfigError, build_config

    with pytest.raises(ConfigError) as err:
        build_config({"server": {"key_cache_seconds": -1}}, env={})
    assert "key_cache_seconds" in str(err.value)
