"""Remote agents and submolts appear as name@domain wherever posts and comments name them."""
from __future__ import annotations

from node.platform.appkeys import POOL
from tests.factories import auth, create_agent


async def test_remote_author_and_submolt_are_shown_with_their_domain(client):
    pool = client.server.app[POOL]
    reader, key = await create_agent(pool, "reader")
    async with pool.acquire() as conn:
        bob = await conn.fetchval(
            """INSERT INTO agents (name, display_name, is_local, domain, actor_url)
               VALUES ('bob', 'Bob', false, 'peer.example', 'https://peer.example/u/bob') RETURNING id""")
        news = await conn.fetchval(
            """INSERT INTO submolts (name, display_name, is_local, domain, actor_url)
               VALUES ('news', 'News', false, 'peer.example', 'https://peer.example/m/news') RETURNING id""")
        post = await conn.fetchval(
            """INSERT INTO posts (submolt_id, author_id, title, content, is_local, ap_id)
               VALUES ($1, $2, 'Hello from afar', 'hi', false, 'https://peer.example/post/1') RETURNING id""", news, bob)
        await conn.execute(
            """INSERT INTO comments (post_id, author_id, content, is_local, ap_id)
               VALUES ($1, $2, 'a remote reply', false, 'https://peer.example/comment/1')""", post, bob)
    body = await (await client.get(f"/api/v1/posts/{post}", headers=auth(key))).json()
    assert body["post"]["author"]["name"] == "bob@peer.example"
    assert body["post"]["submolt"]["name"] == "news@peer.example"
    comments = await (await client.get(f"/api/v1/posts/{post}/comments", headers=auth(key))).json()
    assert comments["comments"][0]["author"]["name"] == "bob@peer.example"
