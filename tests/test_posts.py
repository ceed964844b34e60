"""Posts: create (seed and Moltbook shapes), read, edit, delete/remove, pin, lock, counters, rate limit."""
from __future__ import annotations

import asyncio
import uuid

import pytest

from node.platform.appkeys import POOL
from tests.factories import auth, create_agent

POST_KEYS = {
    "id", "title", "content", "content_html", "url", "type", "score", "upvotes", "downvotes", "comment_count",
    "created_at", "edited_at", "is_pinned", "is_locked", "is_deleted", "is_removed", "author", "submolt",
    "user_vote", "collaborators",
}


@pytest.fixture
async def client(aiohttp_client, make_config):
    """A node without the one-post-per-30-minutes limit, so a test can post several times."""
    from node.app import create_app

    cfg = make_config(limits={"post_interval_seconds": 0, "new_agent_post_interval_seconds": 0})
    return await aiohttp_client(create_app(cfg))


def pool_of(client):
    return client.server.app[POOL]


async def error_of(resp, status: int) -> dict:
    assert resp.status == status, await resp.text()
    body = await resp.json()
    assert body["success"] is False
    assert body["error"] and body["hint"]
    return body


async def new_post(client, key: str, **fields) -> dict:
    body = {"submolt_name": "general", "title": "Hello", "content": "Body"} | fields
    resp = await client.post("/api/v1/posts", headers=auth(key), json=body)
    assert resp.status == 201, await resp.text()
    data = await resp.json()
    assert data["success"] is True
    return data["post"]


async def counts(pool, agent_id, submolt="general") -> tuple[int, int]:
    async with pool.acquire() as conn:
        return await conn.fetchrow(
            """SELECT (SELECT posts_count FROM agents WHERE id = $1),
                      (SELECT post_count FROM submolts WHERE name = $2)""",
            agent_id, submolt,
        )


async def submolt_with_mod(client, owner_key: str, name: str, mod_name: str | None = None) -> None:
    resp = await client.post("/api/v1/submolts", headers=auth(owner_key), json={"name": name})
    assert resp.status == 201
    if mod_name:
        resp = await client.post(f"/api/v1/submolts/{name}/moderators", headers=auth(owner_key), json={"agent_name": mod_name})
        assert resp.status == 200


# --- create --------------------------------------------------------------------------------------

async def test_create_text_post_seed_shape(client):
    pool = pool_of(client)
    author, key = await create_agent(pool, "Writer")
    post = await new_post(client, key, title="First!", content="Some **bold** <script>x</script>")
    assert set(post) == POST_KEYS
    assert post["title"] == "First!" and post["type"] == "text" and post["url"] is None
    assert post["content"] == "Some **bold** <script>x</script>"
    assert post["content_html"] == "<p>Some <strong>bold</strong> &lt;script&gt;x&lt;/script&gt;</p>"
    assert post["author"] == {"id": str(author.id), "name": "Writer", "display_name": "Writer", "karma": 0, "avatar_url": None, "domain": None}
    assert post["submolt"]["name"] == "general" and post["submolt"]["display_name"] == "General"
    assert post["score"] == 0 and post["comment_count"] == 0 and post["user_vote"] is None
    assert post["is_pinned"] is False and post["is_locked"] is False and post["edited_at"] is None
    assert post["collaborators"] == []
    assert tuple(await counts(pool, author.id)) == (1, 1)


async def test_create_link_post_moltbook_shape(client):
    _, key = await create_agent(pool_of(client))
    resp = await client.post(
        "/api/v1/posts", headers=auth(key),
        json={"submolt": "GENERAL", "title": "A link", "url": "https://example.org/article"},
    )
    assert resp.status == 201
    post = (await resp.json())["post"]
    assert post["type"] == "link" and post["url"] == "https://example.org/article"
    assert post["submolt"]["name"] == "general" and post["content"] == ""


async def test_create_image_post(client):
    _, key = await create_agent(pool_of(client))
    post = await new_post(client, key, type="image", url="https://img.example/cat.png", content="")
    assert post["type"] == "image" and post["url"] == "https://img.example/cat.png"


async def test_text_post_without_title_takes_its_first_line(client):
    _, key = await create_agent(pool_of(client))
    resp = await client.post(
        "/api/v1/posts", headers=auth(key), json={"submolt_name": "general", "content": "\n# Big news\n\nmore"}
    )
    assert resp.status == 201
    assert (await resp.json())["post"]["title"] == "Big news"


@pytest.mark.parametrize(
    "fields,status,word",
    [
        ({"submolt_name": None}, 400, "submolt"),
        ({"submolt_name": "nowhere"}, 404, "submolt"),
        ({"submolt_name": 7}, 422, "submolt"),
        ({"title": None, "content": None}, 400, "title"),
        ({"title": "x" * 301}, 422, "title"),
        ({"content": "x" * 40_001}, 422, "content"),
        ({"title": 5}, 422, "title"),
        ({"type": "video"}, 422, "type"),
        ({"type": "link"}, 400, "url"),
        ({"type": "image"}, 400, "url"),
        ({"type": "link", "url": "javascript:alert(1)"}, 422, "url"),
        ({"type": "image", "url": "data:image/png;base64,AAAA"}, 422, "url"),
        ({"url": "ftp://files.example/x"}, 422, "url"),
        ({"type": "text", "url": "https://example.org"}, 422, "url"),
        ({"type": "link", "url": "https://example.org", "title": None}, 400, "title"),
        ({"collaborators": "friend"}, 422, "collaborators"),
        ({"collaborators": ["ghost"]}, 422, "ghost"),
        ({"collaborators": ["poster"]}, 422, "yourself"),
        ({"collaborators": [f"c{i}" for i in range(11)]}, 422, "collaborators"),
    ],
)
async def test_create_rejects_bad_bodies(client, fields, status, word):
    pool = pool_of(client)
    poster, key = await create_agent(pool, "poster")
    body = {"submolt_name": "general", "title": "T", "content": "C"} | fields
    body = {k: v for k, v in body.items() if v is not None}
    err = await error_of(await client.post("/api/v1/posts", headers=auth(key), json=body), status)
    assert word.lower() in (err["error"] + err["hint"]).lower()
    assert tuple(await counts(pool, poster.id)) == (0, 0)


async def test_create_needs_auth(client):
    await error_of(await client.post("/api/v1/posts", json={"submolt_name": "general", "title": "x"}), 401)


async def test_collaborators_are_resolved_and_shown_once_they_confirm(client):
    pool = pool_of(client)
    _, key = await create_agent(pool, "lead")
    a, ka = await create_agent(pool, "Alice")
    b, kb = await create_agent(pool, "bob")
    post = await new_post(client, key, collaborators=["bob", "@alice", "BOB"])
    assert post["collaborators"] == []  # named, not yet confirmed
    for k in (ka, kb):
        resp = await client.post(f"/api/v1/posts/{post['id']}/collaboration/confirm", headers=auth(k))
        assert resp.status == 200, await resp.text()
    shown = (await (await client.get(f"/api/v1/posts/{post['id']}")).json())["post"]["collaborators"]
    assert shown == [  # in the order the author named them, whoever confirmed first
        {"id": str(b.id), "name": "bob", "display_name": "bob"},
        {"id": str(a.id), "name": "Alice", "display_name": "Alice"},
    ]
    async with pool.acquire() as conn:
        stored = await conn.fetchval("SELECT collaborators FROM posts WHERE id = $1", uuid.UUID(post["id"]))
    assert stored == [str(b.id), str(a.id)]


async def test_posting_restricted_to_mods(client):
    pool = pool_of(client)
    _, owner_key = await create_agent(pool, "owner")
    _, mod_key = await create_agent(pool, "mod")
    _, other_key = await create_agent(pool, "other")
    await submolt_with_mod(client, owner_key, "announce", "mod")
    resp = await client.patch(
        "/api/v1/submolts/announce/settings", headers=auth(owner_key), json={"posting_restricted_to_mods": True}
    )
    assert resp.status == 200
    await error_of(await client.post("/api/v1/posts", headers=auth(other_key), json={"submolt": "announce", "title": "hi"}), 403)
    await new_post(client, owner_key, submolt_name="announce")
    await new_post(client, mod_key, submolt_name="announce")
    assert (await counts(pool, None, "announce"))[1] == 2


async def test_post_rate_limit_with_default_config(aiohttp_client, make_config):
    from node.app import create_app

    client = await aiohttp_client(create_app(make_config()))
    pool = pool_of(client)
    agent, key = await create_agent(pool)
    # A refused post does not use up the slot.
    await error_of(await client.post("/api/v1/posts", headers=auth(key), json={"submolt_name": "nowhere", "title": "x"}), 404)
    await new_post(client, key)
    err = await error_of(await client.post("/api/v1/posts", headers=auth(key), json={"submolt_name": "general", "title": "again"}), 429)
    assert err["retry_after_seconds"] > 0
    assert tuple(await counts(pool, agent.id)) == (1, 1)


# --- read ----------------------------------------------------------------------------------------

async def test_get_post_with_the_callers_vote(client):
    pool = pool_of(client)
    _, key = await create_agent(pool, "author")
    voter, voter_key = await create_agent(pool, "voter")
    post = await new_post(client, key)
    async with pool.acquire() as conn:
        await conn.execute("INSERT INTO post_votes (post_id, agent_id, value) VALUES ($1, $2, -1)", uuid.UUID(post["id"]), voter.id)

    got = (await (await client.get(f"/api/v1/posts/{post['id']}", headers=auth(voter_key))).json())["post"]
    assert got["user_vote"] == -1 and got["title"] == "Hello"
    got = (await (await client.get(f"/api/v1/posts/{post['id']}", headers=auth(key))).json())["post"]
    assert got["user_vote"] is None
    got = (await (await client.get(f"/api/v1/posts/{post['id']}")).json())["post"]
    assert got["user_vote"] is None


async def test_get_unknown_or_malformed_is_404(client):
    await error_of(await client.get(f"/api/v1/posts/{uuid.uuid4()}"), 404)
    await error_of(await client.get("/api/v1/posts/not-a-uuid"), 404)


async def test_get_post_views_keeps_order_and_skips_missing(client):
    from node.services.posts import post_to_json
    from node.stores.posts import get_post_views

    pool = pool_of(client)
    _, key = await create_agent(pool)
    ids = [uuid.UUID((await new_post(client, key, title=f"p{i}"))["id"]) for i in range(3)]
    async with pool.acquire() as conn:
        views = await get_post_views(conn, [ids[2], uuid.uuid4(), ids[0], ids[1]], None)
    assert [post_to_json(v)["title"] for v in views] == ["p2", "p0", "p1"]


# --- edit ----------------------------------------------------------------------------------------

async def test_author_edits_post(client):
    _, key = await create_agent(pool_of(client))
    post = await new_post(client, key)
    resp = await client.patch(f"/api/v1/posts/{post['id']}", headers=auth(key), json={"title": "Better", "content": "*new*"})
    assert resp.status == 200
    edited = (await resp.json())["post"]
    assert edited["title"] == "Better" and edited["content"] == "*new*"
    assert edited["content_html"] == "<p><em>new</em></p>"
    assert edited["edited_at"] is not None
    got = (await (await client.get(f"/api/v1/posts/{post['id']}")).json())["post"]
    assert got["content_html"] == "<p><em>new</em></p>"

    link = await new_post(client, key, url="https://a.example/1", content="")
    resp = await client.patch(f"/api/v1/posts/{link['id']}", headers=auth(key), json={"url": "https://b.example/2"})
    assert (await resp.json())["post"]["url"] == "https://b.example/2"


async def test_edit_errors(client):
    pool = pool_of(client)
    _, key = await create_agent(pool, "author")
    _, other_key = await create_agent(pool, "other")
    text = await new_post(client, key)
    link = await new_post(client, key, url="https://a.example/1")
    url = f"/api/v1/posts/{text['id']}"
    await error_of(await client.patch(url, json={"title": "x"}), 401)
    await error_of(await client.patch(url, headers=auth(other_key), json={"title": "x"}), 403)
    await error_of(await client.patch(url, headers=auth(key), json={}), 400)
    await error_of(await client.patch(url, headers=auth(key), json={"title": ""}), 422)
    await error_of(await client.patch(url, headers=auth(key), json={"title": "x" * 301}), 422)
    await error_of(await client.patch(url, headers=auth(key), json={"url": "https://a.example"}), 422)
    await error_of(await client.patch(f"/api/v1/posts/{link['id']}", headers=auth(key), json={"url": None}), 422)
    await error_of(await client.patch(f"/api/v1/posts/{link['id']}", headers=auth(key), json={"url": "javascript:x"}), 422)
    await error_of(await client.patch(f"/api/v1/posts/{uuid.uuid4()}", headers=auth(key), json={"title": "x"}), 404)
    await client.delete(url, headers=auth(key))
    await error_of(await client.patch(url, headers=auth(key), json={"title": "x"}), 410)


# --- delete and remove ---------------------------------------------------------------------------

async def test_author_deletes_softly_and_counters_follow(client):
    pool = pool_of(client)
    author, key = await create_agent(pool)
    post = await new_post(client, key)
    await new_post(client, key, title="second")
    assert tuple(await counts(pool, author.id)) == (2, 2)

    resp = await client.delete(f"/api/v1/posts/{post['id']}", headers=auth(key))
    assert resp.status == 200
    assert (await resp.json())["success"] is True
    assert tuple(await counts(pool, author.id)) == (1, 1)
    # Again: still 200, counters unchanged.
    resp = await client.delete(f"/api/v1/posts/{post['id']}", headers=auth(key))
    assert resp.status == 200 and (await resp.json())["action"] == "already_deleted"
    assert tuple(await counts(pool, author.id)) == (1, 1)

    body = await error_of(await client.get(f"/api/v1/posts/{post['id']}"), 410)
    tomb = body["post"]
    assert tomb["is_deleted"] is True and tomb["title"] == "[deleted]"
    assert tomb["content"] == "" and tomb["content_html"] == "" and tomb["url"] is None
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT is_deleted, deleted_at, title FROM posts WHERE id = $1", uuid.UUID(post["id"]))
    assert row["is_deleted"] and row["deleted_at"] is not None and row["title"] == "Hello"  # soft: the row stays


async def test_moderator_removes_with_reason(client):
    pool = pool_of(client)
    owner, owner_key = await create_agent(pool, "owner")
    mod, mod_key = await create_agent(pool, "mod")
    author, author_key = await create_agent(pool, "author")
    await submolt_with_mod(client, owner_key, "club", "mod")
    p1 = await new_post(client, author_key, submolt_name="club")
    p2 = await new_post(client, author_key, submolt_name="club")
    assert tuple(await counts(pool, author.id, "club")) == (2, 2)

    resp = await client.delete(f"/api/v1/posts/{p1['id']}", headers=auth(mod_key), json={"reason": "off topic"})
    assert resp.status == 200 and (await resp.json())["action"] == "removed"
    resp = await client.delete(f"/api/v1/posts/{p2['id']}", headers=auth(owner_key), params={"reason": "spam"})
    assert resp.status == 200
    assert tuple(await counts(pool, author.id, "club")) == (0, 0)
    # The author deleting a removed post changes no counter.
    resp = await client.delete(f"/api/v1/posts/{p1['id']}", headers=auth(author_key))
    assert resp.status == 200
    assert tuple(await counts(pool, author.id, "club")) == (0, 0)

    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT is_removed, removed_reason, removed_by FROM posts WHERE id = $1", uuid.UUID(p1["id"]))
        audit = await conn.fetch("SELECT actor, action, target, details FROM audit_log WHERE action = 'post.remove' ORDER BY id")
    assert row["is_removed"] and row["removed_reason"] == "off topic" and row["removed_by"] == mod.id
    assert [(a["actor"], a["target"], a["details"]["reason"]) for a in audit] == [
        (f"agent:{mod.id}", f"post:{p1['id']}", "off topic"),
        (f"agent:{owner.id}", f"post:{p2['id']}", "spam"),
    ]
    body = await error_of(await client.get(f"/api/v1/posts/{p2['id']}"), 410)
    assert body["post"]["is_removed"] is True and body["post"]["title"] == "[removed]"


async def test_delete_errors(client):
    pool = pool_of(client)
    _, key = await create_agent(pool, "author")
    _, other_key = await create_agent(pool, "other")
    post = await new_post(client, key)
    url = f"/api/v1/posts/{post['id']}"
    await error_of(await client.delete(url), 401)
    await error_of(await client.delete(url, headers=auth(other_key)), 403)  # not a moderator of general
    await error_of(await client.delete(f"/api/v1/posts/{uuid.uuid4()}", headers=auth(key)), 404)
    await error_of(await client.delete("/api/v1/posts/xyz", headers=auth(key)), 404)
    _, owner_key = await create_agent(pool, "owner")
    await submolt_with_mod(client, owner_key, "club")
    club_post = await new_post(client, key, submolt_name="club")
    await error_of(
        await client.delete(f"/api/v1/posts/{club_post['id']}", headers=auth(owner_key), json={"reason": "x" * 501}), 422
    )


# --- pin and lock --------------------------------------------------------------------------------

async def test_pin_limit_and_unpin(client):
    pool = pool_of(client)
    _, owner_key = await create_agent(pool, "owner")
    _, author_key = await create_agent(pool, "author")
    await submolt_with_mod(client, owner_key, "club")
    posts = [await new_post(client, author_key, submolt_name="club", title=f"p{i}") for i in range(5)]

    for p in posts[:3]:
        resp = await client.post(f"/api/v1/posts/{p['id']}/pin", headers=auth(owner_key))
        assert resp.status == 200
        data = await resp.json()
        assert data["action"] == "pinned" and data["post"]["is_pinned"] is True
    again = await client.post(f"/api/v1/posts/{posts[0]['id']}/pin", headers=auth(owner_key))
    assert (await again.json())["action"] == "unchanged"

    body = await error_of(await client.post(f"/api/v1/posts/{posts[3]['id']}/pin", headers=auth(owner_key)), 409)
    assert "Unpin" in body["hint"]
    assert body["pinned_post_ids"] == [p["id"] for p in posts[:3]]

    resp = await client.delete(f"/api/v1/posts/{posts[0]['id']}/pin", headers=auth(owner_key))
    assert resp.status == 200 and (await resp.json())["post"]["is_pinned"] is False
    assert (await client.post(f"/api/v1/posts/{posts[3]['id']}/pin", headers=auth(owner_key))).status == 200
    # Deleting a pinned post frees its slot.
    await client.delete(f"/api/v1/posts/{posts[1]['id']}", headers=auth(author_key))
    assert (await client.post(f"/api/v1/posts/{posts[4]['id']}/pin", headers=auth(owner_key))).status == 200

    async with pool.acquire() as conn:
        pinned = await conn.fetchval("SELECT count(*) FROM posts WHERE is_pinned")
        actions = [r["action"] for r in await conn.fetch("SELECT action FROM audit_log WHERE action LIKE 'post.%pin'")]
    assert pinned == 3
    assert actions.count("post.pin") == 5 and actions.count("post.unpin") == 1


async def test_concurrent_pins_respect_the_limit(client):
    pool = pool_of(client)
    _, owner_key = await create_agent(pool, "owner")
    await submolt_with_mod(client, owner_key, "club")
    posts = [await new_post(client, owner_key, submolt_name="club", title=f"p{i}") for i in range(6)]
    resps = await asyncio.gather(*(client.post(f"/api/v1/posts/{p['id']}/pin", headers=auth(owner_key)) for p in posts))
    assert sorted(r.status for r in resps) == [200, 200, 200, 409, 409, 409]
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM posts WHERE is_pinned") == 3


async def test_pin_and_lock_are_for_moderators_only(client):
    pool = pool_of(client)
    _, owner_key = await create_agent(pool, "owner")
    _, author_key = await create_agent(pool, "author")
    await submolt_with_mod(client, owner_key, "club")
    post = await new_post(client, author_key, submolt_name="club")
    for action in ("pin", "lock"):
        url = f"/api/v1/posts/{post['id']}/{action}"
        await error_of(await client.post(url), 401)
        await error_of(await client.post(url, headers=auth(author_key)), 403)  # the author is not a moderator
        await error_of(await client.delete(url, headers=auth(author_key)), 403)
        await error_of(await client.post(f"/api/v1/posts/{uuid.uuid4()}/{action}", headers=auth(owner_key)), 404)


async def test_moderator_locks_and_unlocks(client):
    pool = pool_of(client)
    _, owner_key = await create_agent(pool, "owner")
    _, mod_key = await create_agent(pool, "mod")
    _, author_key = await create_agent(pool, "author")
    await submolt_with_mod(client, owner_key, "club", "mod")
    post = await new_post(client, author_key, submolt_name="club")
    url = f"/api/v1/posts/{post['id']}/lock"

    data = await (await client.post(url, headers=auth(mod_key))).json()
    assert data["action"] == "locked" and data["post"]["is_locked"] is True
    got = (await (await client.get(f"/api/v1/posts/{post['id']}")).json())["post"]
    assert got["is_locked"] is True
    data = await (await client.delete(url, headers=auth(mod_key))).json()
    assert data["action"] == "unlocked" and data["post"]["is_locked"] is False
    data = await (await client.delete(url, headers=auth(mod_key))).json()
    assert data["action"] == "unchanged"

    await client.delete(f"/api/v1/posts/{post['id']}", headers=auth(author_key))
    await error_of(await client.post(url, headers=auth(mod_key)), 410)


async def test_nul_characters_are_refused_not_a_500(client):
    pool = pool_of(client)
    _, key = await create_agent(pool, "author")
    await error_of(await client.post("/api/v1/posts", headers=auth(key), json={"submolt_name": "general", "title": "a\u0000b"}), 422)
    # NUL anywhere in a body is refused by read_json, naming the field (a name in a path is a 404 instead)
    await error_of(await client.post("/api/v1/posts", headers=auth(key), json={"submolt_name": "gen\u0000", "title": "ab"}), 422)
    await error_of(
        await client.post("/api/v1/posts", headers=auth(key), json={"submolt_name": "general", "title": "ab", "collaborators": ["x\u0000"]}),
        422,
    )
    post = await new_post(client, key)
    _, owner_key = await create_agent(pool, "owner")
    await error_of(await client.patch(f"/api/v1/posts/{post['id']}", headers=auth(key), json={"content": "\u0000"}), 422)
    await error_of(await client.delete(f"/api/v1/posts/{post['id']}", headers=auth(owner_key), json={"reason": "\u0000"}), 422)
