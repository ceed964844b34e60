"""The feeds' lean read path: the post objects PostgreSQL writes (stores/post_json.py) are post_to_json's."""
from __future__ import annotations

import datetime as dt
import json
import uuid

import asyncpg
import orjson

from node.edge.http import dumps_bytes
from node.platform.appkeys import POOL
from node.services.posts import post_to_json
from node.stores import post_json as post_json_store
from node.stores import posts as posts_store
from tests.factories import auth, create_agent

T0 = dt.datetime(2026, 3, 1, 12, 30, 5, tzinfo=dt.timezone.utc)


async def _agent(pool: asyncpg.Pool, name: str, **cols: object) -> uuid.UUID:
    fields = {"name": name, "display_name": f"The {name}", **cols}
    names = ", ".join(fields)
    marks = ", ".join(f"${i}" for i in range(1, len(fields) + 1))
    return await pool.fetchval(f"INSERT INTO agents ({names}) VALUES ({marks}) RETURNING id", *fields.values())


async def _post(pool: asyncpg.Pool, submolt: uuid.UUID, author: uuid.UUID, **cols: object) -> uuid.UUID:
    fields = {"submolt_id": submolt, "author_id": author, "title": "a post", **cols}
    names = ", ".join(fields)
    marks = ", ".join(f"${i}" for i in range(1, len(fields) + 1))
    return await pool.fetchval(f"INSERT INTO posts ({names}) VALUES ({marks}) RETURNING id", *fields.values())


async def _world(pool: asyncpg.Pool) -> tuple[list[uuid.UUID], dict[str, uuid.UUID]]:
    local = await _agent(pool, "local_author", karma=17, avatar_url="https://example.org/a.png")
    remote = await _agent(pool, "Far", is_local=False, domain="peer.example", actor_url="https://peer.example/u/far")
    blank = await _agent(pool, "blank_domain", is_local=False, domain="", actor_url="https://blank.example/u/b")
    c1 = await _agent(pool, "collab_one")
    c2 = await _agent(pool, "collab_two")
    here = await pool.fetchval("INSERT INTO submolts (name, display_name) VALUES ('reef', 'Reef') RETURNING id")
    there = await pool.fetchval(
        """INSERT INTO submolts (name, display_name, is_local, domain, actor_url)
           VALUES ('kelp', 'Kelp forest', false, 'peer.example', 'https://peer.example/m/kelp') RETURNING id"""
    )
    ids = [
        # no fraction of a second; an edit at a fraction with trailing zeros (PostgreSQL's own JSON drops them)
        await _post(pool, here, local, created_at=T0, edited_at=T0.replace(microsecond=123400), score=5, upvotes=6,
                    downvotes=1, comment_count=3),
        # remote author and submolt, a link post, text that JSON must escape
        await _post(pool, there, remote, created_at=T0.replace(microsecond=5), type="link", url="https://x.example/?a=1&b=\"2\"",
                    title='Quotes " and \\ back\\slash, tab\t, newline\n, bell\x07, é, 🪸, \u2028',
                    content="*markdown*\r\n", content_html="<p><em>markdown</em></p>"),
        # collaborators in the author's order (not by id), one of them unknown to this node
        await _post(pool, here, blank, created_at=T0 - dt.timedelta(days=400), is_pinned=True, is_locked=True,
                    collaborators=[str(c2), str(uuid.uuid4()), str(c1)]),
        await _post(pool, here, local, is_deleted=True),
        await _post(pool, here, local, is_removed=True, removed_reason="spam"),
    ]
    return ids, {"local": local, "remote": remote}


async def test_postgresql_writes_the_objects_post_to_json_makes(client) -> None:
    pool = client.server.app[POOL]
    ids, agents = await _world(pool)
    await pool.execute("INSERT INTO post_votes (post_id, agent_id, value) VALUES ($1, $2, 1), ($3, $2, -1)",
                       ids[0], agents["remote"], ids[1])
    wanted = [ids[2], uuid.uuid4(), *ids[3:], ids[1], ids[0]]  # an unknown id, deleted and removed posts, any order
    for viewer in (None, agents["remote"], agents["local"]):
        async with pool.acquire() as conn:
            texts = await post_json_store.get_visible_post_json(conn, wanted, viewer)
            views = await posts_store.get_post_views(conn, wanted, viewer)
        expected = [orjson.loads(dumps_bytes(post_to_json(v))) for v in views if v.post.is_visible]
        assert [json.loads(t) for t in texts] == expected
        assert [p["id"] for p in expected] == [str(ids[2]), str(ids[1]), str(ids[0])]
    third, second, first = expected  # ids[2], ids[1], ids[0]
    # the cases the SQL writes on its own, spelled out
    assert first["created_at"] == "2026-03-01T12:30:05Z" and first["edited_at"] == "2026-03-01T12:30:05.123400Z"
    assert second["created_at"] == "2026-03-01T12:30:05.000005Z" and second["edited_at"] is None
    assert second["author"]["name"] == "Far@peer.example" and second["submolt"]["name"] == "kelp@peer.example"
    assert third["author"]["name"] == "blank_domain" and third["author"]["domain"] == ""
    assert [c["name"] for c in third["collaborators"]] == ["collab_two", "collab_one"]
    assert first["user_vote"] is None and second["user_vote"] is None  # the last viewer voted on neither


async def test_the_api_feed_is_the_lean_text_with_the_viewers_votes(client) -> None:
    pool = client.server.app[POOL]
    ids, _ = await _world(pool)
    voter, key = await create_agent(pool, "voter")
    await pool.execute("INSERT INTO post_votes (post_id, agent_id, value) VALUES ($1, $2, -1)", ids[1], voter.id)
    for headers, votes in (({}, [None, None, None]), (auth(key), [-1, None, None])):
        resp = await client.get("/api/v1/posts?sort=new&limit=10", headers=headers)
        body = await resp.json()
        assert resp.status == 200, body
        async with pool.acquire() as conn:
            views = await posts_store.get_post_views(conn, [ids[1], ids[0], ids[2]], voter.id if headers else None)
        assert body["posts"] == [orjson.loads(dumps_bytes(post_to_json(v))) for v in views]
        assert [p["user_vote"] for p in body["posts"]] == votes


async def test_every_sort_and_the_submolt_feed_answer_post_to_json_objects(client) -> None:
    """One query per page (rows and their objects) for every sort; a submolt's first page, with its pinned posts
    ahead, takes the ids-then-objects path: both give post_to_json's objects with the viewer's votes."""
    pool = client.server.app[POOL]
    ids, agents = await _world(pool)
    reef = await pool.fetchval("SELECT id FROM submolts WHERE name = 'reef'")
    ids.append(await _post(pool, reef, agents["remote"], title="another one"))
    await pool.execute("UPDATE posts SET created_at = now() - random() * interval '1 hour'")  # rising: under 48 h
    voter, key = await create_agent(pool, "voter")
    for post_id in [*ids[:3], ids[5]]:
        await pool.execute("INSERT INTO post_votes (post_id, agent_id, value) VALUES ($1, $2, 1)", post_id, voter.id)
    urls = [f"/api/v1/posts?sort={s}&limit=2" for s in ("hot", "new", "top", "rising")]
    urls += ["/api/v1/posts?sort=top&t=all&limit=2", "/api/v1/submolts/reef/feed?sort=new&limit=1"]
    for start in urls:
        for headers in ({}, auth(key)):
            seen: list[dict] = []
            url = start
            while url:
                resp = await client.get(url, headers=headers)
                body = await resp.json()
                assert resp.status == 200, body
                seen += body["posts"]
                url = body["next_cursor"] and f"{url.split('&cursor=')[0]}&cursor={body['next_cursor']}"
            async with pool.acquire() as conn:
                views = await posts_store.get_post_views(
                    conn, [uuid.UUID(p["id"]) for p in seen], voter.id if headers else None
                )
            assert seen == [orjson.loads(dumps_bytes(post_to_json(v))) for v in views]
            assert [p["user_vote"] for p in seen] == [1 if headers else None] * len(seen)
            # the node has four visible posts; the submolt three, one of them pinned (on page one, then the others)
            assert len(seen) == (3 if "submolts" in start else 4), start
            assert len({p["id"] for p in seen}) == len(seen)
