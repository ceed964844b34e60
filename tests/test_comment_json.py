"""The comment tree's lean read path: the answer built from PostgreSQL's JSON text is node_to_json's."""
from __future__ import annotations

import datetime as dt
import uuid

import asyncpg
import orjson

from node.edge.http import dumps_bytes
from node.platform.appkeys import POOL
from node.services import comments as service
from tests.factories import auth, create_agent

T0 = dt.datetime(2026, 3, 1, 12, 30, 5, tzinfo=dt.timezone.utc)


async def _comment(pool: asyncpg.Pool, post: uuid.UUID, author: uuid.UUID, parent: uuid.UUID | None, n: int, **cols) -> uuid.UUID:
    depth = 0 if parent is None else 1 + await pool.fetchval("SELECT depth FROM comments WHERE id = $1", parent)
    fields = {"post_id": post, "parent_id": parent, "author_id": author, "content": f"comment {n} \"quoted\"\n",
              "content_html": f"<p>comment {n}</p>", "depth": depth, "score": (n * 7) % 5 - 2,
              "upvotes": n % 3, "created_at": T0 + dt.timedelta(seconds=n, microseconds=(n * 1000) % 7000), **cols}
    names = ", ".join(fields)
    marks = ", ".join(f"${i}" for i in range(1, len(fields) + 1))
    return await pool.fetchval(f"INSERT INTO comments ({names}) VALUES ({marks}) RETURNING id", *fields.values())


async def _world(pool: asyncpg.Pool) -> tuple[uuid.UUID, object, str]:
    local = await pool.fetchval(
        "INSERT INTO agents (name, display_name, karma, avatar_url) VALUES ('local', 'Local', 4, 'https://a/x.png') RETURNING id"
    )
    remote = await pool.fetchval(
        """INSERT INTO agents (name, display_name, is_local, domain, actor_url)
           VALUES ('Far', 'Far away', false, 'peer.example', 'https://peer.example/u/far') RETURNING id"""
    )
    post = await pool.fetchval(
        "INSERT INTO posts (submolt_id, author_id, title) SELECT id, $1, 't' FROM submolts WHERE name = 'general' RETURNING id",
        local,
    )
    voter, key = await create_agent(pool, "voter")
    n = 0
    for i in range(4):  # four threads, each with replies two levels deep; some deleted, removed or edited
        n += 1
        top = await _comment(pool, post, local if i % 2 else remote, None, n, edited_at=T0 if i == 1 else None)
        for j in range(3):
            n += 1
            reply = await _comment(pool, post, remote if j % 2 else local, top, n, is_deleted=j == 1)
            n += 1
            await _comment(pool, post, local, reply, n, is_removed=i == 2, removed_reason="spam" if i == 2 else None)
    await pool.execute(
        """INSERT INTO comment_votes (comment_id, agent_id, value)
           SELECT id, $1, CASE WHEN score > 0 THEN 1 ELSE -1 END FROM comments WHERE score <> 0""",
        voter.id,
    )
    return post, voter, key


async def _old_answer(pool, post, viewer, **kw) -> dict:
    page = await service.list_post_comments(pool, post, viewer, **kw)
    return {"post_id": page.post_id, "sort": page.sort, "comments": [service.node_to_json(c) for c in page.comments],
            "count": len(page.comments), "next_cursor": page.next_cursor, "has_more": page.has_more}


async def test_the_lean_tree_is_node_to_jsons_for_every_sort_viewer_and_page(client) -> None:
    pool = client.server.app[POOL]
    post, voter, _ = await _world(pool)
    for sort in service.SORTS:
        for viewer in (None, voter):
            cursor, pages = None, 0
            while True:
                lean = orjson.loads(dumps_bytes(await service.list_post_comments_json(pool, post, viewer, sort=sort, limit=3, cursor=cursor)))
                old = orjson.loads(dumps_bytes(await _old_answer(pool, post, viewer, sort=sort, limit=3, cursor=cursor)))
                assert lean == old, (sort, viewer, pages)
                pages += 1
                cursor = lean["next_cursor"]
                if cursor is None:
                    break
            assert pages == 2  # four threads, three a page
    everything = orjson.loads(dumps_bytes(await _old_answer(pool, post, voter, limit=10)))["comments"]
    replies = [r for t in everything for r in t["replies"]]
    assert any(r["author"] is None and r["content"] == "[deleted]" for r in replies)
    assert any(rr["content"] == "[removed]" and rr["author"] for r in replies for rr in r["replies"])
    assert {t["user_vote"] for t in everything} == {1, -1, None}


async def test_the_api_answers_the_lean_tree(client) -> None:
    pool = client.server.app[POOL]
    post, voter, key = await _world(pool)
    resp = await client.get(f"/api/v1/posts/{post}/comments?sort=new&limit=2", headers=auth(key))
    body = await resp.json()
    assert resp.status == 200, body
    old = orjson.loads(dumps_bytes(await _old_answer(pool, post, voter, sort="new", limit=2)))
    assert body == {"success": True, **old}
    assert len(body["comments"]) == 2 and all(len(t["replies"]) == 3 for t in body["comments"])
