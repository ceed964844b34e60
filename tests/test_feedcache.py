"""[server] feed_cache_seconds: anonymous feed answers kept a while, emptied by this process's writes."""
from __future__ import annotations

import pytest

from node.edge.feedcache import FEED_CACHE, FeedCache
from node.platform.appkeys import POOL
from node.platform.config import ConfigError, build_config
from tests.factories import auth, create_agent

HOUR = 3600.0  # long enough that only an invalidation can make a cached answer change during a test


@pytest.fixture
async def client(aiohttp_client, make_config):
    from node.app import create_app

    cfg = make_config(
        server={"feed_cache_seconds": HOUR},
        limits={"post_interval_seconds": 0, "new_agent_post_interval_seconds": 0},
    )
    return await aiohttp_client(create_app(cfg))


async def titles(client, url: str = "/api/v1/posts?sort=new", **kw) -> list[str]:
    resp = await client.get(url, **kw)
    body = await resp.json()
    assert resp.status == 200, body
    return [p["title"] for p in body["posts"]]


async def post(client, key: str, title: str) -> str:
    resp = await client.post("/api/v1/posts", headers=auth(key), json={"submolt": "general", "title": title})
    assert resp.status == 201, await resp.text()
    return (await resp.json())["post"]["id"]


async def insert_elsewhere(client, author_id, title: str) -> None:
    """A post written by another process (straight into the database): this one is not told."""
    await client.server.app[POOL].execute(
        "INSERT INTO posts (submolt_id, author_id, title) SELECT id, $1, $2 FROM submolts WHERE name = 'general'",
        author_id, title,
    )


async def test_anonymous_answers_are_kept_and_this_processes_writes_show_at_once(client) -> None:
    agent, key = await create_agent(client.server.app[POOL], "writer")
    await post(client, key, "first")
    assert await titles(client) == ["first"]
    await insert_elsewhere(client, agent.id, "from elsewhere")
    assert await titles(client) == ["first"]  # kept: another process's write shows only after the entry expires
    assert await titles(client, headers=auth(key)) == ["from elsewhere", "first"]  # never cached for agents

    second = await post(client, key, "second")  # a new post through this process
    assert await titles(client) == ["second", "from elsewhere", "first"]
    assert await titles(client, "/api/v1/submolts/general/feed?sort=new") == ["second", "from elsewhere", "first"]

    resp = await client.get("/api/v1/posts?sort=new")
    assert [p["score"] for p in (await resp.json())["posts"]] == [0, 0, 0]
    _, voter_key = await create_agent(client.server.app[POOL], "voter")
    resp = await client.post(f"/api/v1/posts/{second}/upvote", headers=auth(voter_key))  # a vote
    assert resp.status == 200, await resp.text()
    resp = await client.get("/api/v1/posts?sort=new")
    assert [p["score"] for p in (await resp.json())["posts"]] == [1, 0, 0]

    resp = await client.delete(f"/api/v1/posts/{second}", headers=auth(key))  # a removal
    assert resp.status == 200, await resp.text()
    assert await titles(client) == ["from elsewhere", "first"]
    assert await titles(client, "/api/v1/submolts/general/feed?sort=new") == ["from elsewhere", "first"]


async def test_anonymous_answers_never_carry_a_viewers_fields(client) -> None:
    pool = client.server.app[POOL]
    _, key = await create_agent(pool, "writer")
    post_id = await post(client, key, "voted on")
    voter, voter_key = await create_agent(pool, "voter")
    await pool.execute("INSERT INTO post_votes (post_id, agent_id, value) VALUES ($1, $2, 1)", post_id, voter.id)
    for _ in range(2):  # the agent's answer first, then the anonymous one, then both again from the cache
        resp = await client.get("/api/v1/posts?sort=new", headers=auth(voter_key))
        assert [p["user_vote"] for p in (await resp.json())["posts"]] == [1]
        resp = await client.get("/api/v1/posts?sort=new")
        assert [p["user_vote"] for p in (await resp.json())["posts"]] == [None]
    assert len(client.server.app[FEED_CACHE]._entries) == 1  # only the anonymous answer


async def test_each_feed_and_page_has_its_own_entry_and_errors_none(client) -> None:
    agent, key = await create_agent(client.server.app[POOL], "writer")
    for title in ("a", "b", "c"):
        await post(client, key, title)
    resp = await client.get("/api/v1/posts?sort=new&limit=2")
    page = await resp.json()
    assert [p["title"] for p in page["posts"]] == ["c", "b"]
    resp = await client.get(f"/api/v1/posts?sort=new&limit=2&cursor={page['next_cursor']}")
    assert [p["title"] for p in (await resp.json())["posts"]] == ["a"]
    assert await titles(client, "/api/v1/posts?sort=new&limit=1") == ["c"]
    assert (await client.get("/api/v1/posts?sort=new&cursor=nonsense")).status == 400
    assert (await client.get("/api/v1/submolts/nowhere/feed")).status == 404
    assert len(client.server.app[FEED_CACHE]._entries) == 3


def test_entries_expire_and_a_read_older_than_a_write_is_not_kept() -> None:
    now = [100.0]
    cache = FeedCache(1.5, max_entries=2, clock=lambda: now[0])
    cache.put("a", b"A", cache.generation)
    assert cache.get("a") == b"A"
    now[0] += 1.5
    assert cache.get("a") is None
    began = cache.generation  # a read starts...
    cache.clear()  # ...a write ends...
    cache.put("b", b"old", began)  # ...and the read's answer, which may predate the write, is not kept
    assert cache.get("b") is None
    for key in ("x", "y", "z"):
        cache.put(key, key.encode(), cache.generation)
    assert (cache.get("x"), cache.get("y"), cache.get("z")) == (None, b"y", b"z")  # the oldest went


def test_feed_cache_seconds_is_checked() -> None:
    assert build_config({}, env={}).server.feed_cache_seconds == 0
    assert build_config({"server": {"feed_cache_seconds": 1.5}}, env={}).server.feed_cache_seconds == 1.5
    with pytest.raises(ConfigError, match="feed_cache_seconds"):
        build_config({"server": {"feed_cache_seconds": -1}}, env={})
