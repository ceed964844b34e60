"""Follows: idempotent follow/unfollow with exact counters, errors, follower lists with cursors, and
routes that leave /agents/me and friends alone."""
from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import make_mocked_request

from node.api import follows as follows_api
from node.platform.appkeys import POOL
from tests.factories import auth, create_agent


async def counts(pool, name: str) -> tuple[int, int]:
    row = await pool.fetchrow("SELECT follower_count, following_count FROM agents WHERE name = $1", name)
    return row["follower_count"], row["following_count"]


async def call(client, method: str, url: str, status: int = 200, **kw: Any) -> dict[str, Any]:
    resp = await client.request(method, url, **kw)
    body = await resp.json()
    assert resp.status == status, body
    return body


async def test_follow_and_unfollow_are_idempotent_and_keep_counts_exact(client):
    pool = client.server.app[POOL]
    _, key = await create_agent(pool, "fan")
    await create_agent(pool, "Star")
    follow = "/api/v1/agents/star/follow"  # names are case-insensitive

    body = await call(client, "POST", follow, headers=auth(key))
    assert body["action"] == "followed" and body["is_following"] is True
    assert body["agent"]["name"] == "Star" and body["agent"]["follower_count"] == 1
    assert await counts(pool, "Star") == (1, 0) and await counts(pool, "fan") == (0, 1)

    assert (await call(client, "POST", follow, headers=auth(key)))["action"] == "already_following"
    assert await counts(pool, "Star") == (1, 0) and await counts(pool, "fan") == (0, 1)
    assert await pool.fetchval("SELECT count(*) FROM follows") == 1

    body = await call(client, "DELETE", follow, headers=auth(key))
    assert body["action"] == "unfollowed" and body["is_following"] is False
    assert (await call(client, "DELETE", follow, headers=auth(key)))["action"] == "not_following"
    assert await counts(pool, "Star") == (0, 0) and await counts(pool, "fan") == (0, 0)
    assert await pool.fetchval("SELECT count(*) FROM follows") == 0


async def test_follow_errors(client):
    pool = client.server.app[POOL]
    _, key = await create_agent(pool, "loner")
    assert "yourself" in (await call(client, "POST", "/api/v1/agents/LONER/follow", 400, headers=auth(key)))["error"]
    assert (await call(client, "DELETE", "/api/v1/agents/loner/follow", 400, headers=auth(key)))["hint"]
    assert (await call(client, "POST", "/api/v1/agents/nobody_here/follow", 404, headers=auth(key)))["hint"]
    assert (await call(client, "DELETE", "/api/v1/agents/nobody_here/follow", 404, headers=auth(key)))["hint"]
    assert (await call(client, "POST", "/api/v1/agents/loner/follow", 401))["success"] is False
    assert (await call(client, "GET", "/api/v1/agents/nobody_here/followers", 404))["success"] is False
    assert await counts(pool, "loner") == (0, 0)


async def test_concurrent_follows_neither_deadlock_nor_double_count(client):
    pool = client.server.app[POOL]
    _, key_a = await create_agent(pool, "alpha")
    _, key_b = await create_agent(pool, "beta")
    # Both directions at once (the lock order matters), and the same follow several times.
    results = await asyncio.gather(
        *[client.post("/api/v1/agents/beta/follow", headers=auth(key_a)) for _ in range(4)],
        *[client.post("/api/v1/agents/alpha/follow", headers=auth(key_b)) for _ in range(4)],
    )
    assert [r.status for r in results] == [200] * 8
    actions = sorted([(await r.json())["action"] for r in results])
    assert actions == ["already_following"] * 6 + ["followed"] * 2
    assert await counts(pool, "alpha") == (1, 1) and await counts(pool, "beta") == (1, 1)


async def test_profile_reports_the_follow(client):
    pool = client.server.app[POOL]
    _, key = await create_agent(pool, "reader")
    await create_agent(pool, "writer")
    await call(client, "POST", "/api/v1/agents/writer/follow", headers=auth(key))
    body = await call(client, "GET", "/api/v1/agents/profile?name=writer", headers=auth(key))
    assert body["is_following"] is True and body["agent"]["follower_count"] == 1


async def test_follower_and_following_lists_page_by_cursor(client):
    pool = client.server.app[POOL]
    await create_agent(pool, "celebrity")
    fans = []
    for i in range(12):
        fan, key = await create_agent(pool, f"fan_{i:02d}")
        await call(client, "POST", "/api/v1/agents/celebrity/follow", headers=auth(key))
        fans.append(fan.name)
    # Follows made in one transaction share created_at: the id breaks the tie.
    _, key = await create_agent(pool, "collector")
    await pool.execute(
        """INSERT INTO follows (follower_id, followee_id, created_at)
           SELECT (SELECT id FROM agents WHERE name = 'collector'), id, '2025-01-01Z' FROM agents
           WHERE name LIKE 'fan\\_%'"""
    )

    async def walk(url: str, limit: int) -> list[str]:
        seen, cursor = [], None
        while True:
            body = await call(client, "GET", f"{url}?limit={limit}" + (f"&cursor={cursor}" if cursor else ""))
            seen += [a["name"] for a in body["agents"]]
            if not body["has_more"]:
                assert body["next_cursor"] is None
                return seen
            assert len(body["agents"]) == limit
            cursor = body["next_cursor"]

    assert await walk("/api/v1/agents/celebrity/followers", 5) == list(reversed(fans))  # newest first
    first = (await call(client, "GET", "/api/v1/agents/celebrity/followers?limit=1"))["agents"][0]
    assert first["name"] == "fan_11" and first["followed_at"] and "email" not in first
    following = await walk("/api/v1/agents/collector/following", 5)
    assert sorted(following) == fans and len(set(following)) == 12
    assert await walk("/api/v1/agents/fan_03/following", 5) == ["celebrity"]
    assert await walk("/api/v1/agents/collector/followers", 5) == []
    assert [a["name"] for a in (await call(client, "GET", "/api/v1/agents/celebrity/followers?offset=10"))["agents"]] \
        == ["fan_01", "fan_00"]
    assert "next_cursor" in (await call(client, "GET", "/api/v1/agents/celebrity/followers?cursor=zzz", 400))["hint"]


async def test_follow_routes_do_not_shadow_the_agents_routes(client):
    app = client.server.app
    mine = {follows_api.follow, follows_api.unfollow, follows_api.followers, follows_api.following}
    for method, path in [
        ("GET", "/api/v1/agents/me"), ("PATCH", "/api/v1/agents/me"), ("GET", "/api/v1/agents/status"),
        ("GET", "/api/v1/agents/profile"), ("POST", "/api/v1/agents/register"), ("POST", "/api/v1/agents/verify"),
        ("POST", "/api/v1/agents/me/setup-owner-email"), ("POST", "/api/v1/agents/me/rotate-key"),
    ]:
        match = await app.router.resolve(make_mocked_request(method, path, app=app))
        assert match.http_exception is None, (method, path)
        assert match.handler not in mine, (method, path)
    for method, path, handler in [
        ("POST", "/api/v1/agents/someone/follow", follows_api.follow),
        ("DELETE", "/api/v1/agents/someone/follow", follows_api.unfollow),
        ("GET", "/api/v1/agents/someone/followers", follows_api.followers),
        ("GET", "/api/v1/agents/someone/following", follows_api.following),
    ]:
        assert (await app.router.resolve(make_mocked_request(method, path, app=app))).handler is handler
    # And over HTTP: /agents/me still answers as the agents module does.
    agent, key = await create_agent(app[POOL], "myself")
    body = await call(client, "GET", "/api/v1/agents/me", headers=auth(key))
    assert body["agent"]["name"] == "myself"
