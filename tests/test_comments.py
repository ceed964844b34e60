"""Threaded comments: write, read as a tree in every sort, cursor paging, edit, delete/remove, exact counters."""
from __future__ import annotations

import asyncio
import math
import secrets
import uuid
from typing import Any

import pytest

from factories import auth, create_agent
from node.app import create_app

RELAXED = {
    "comment_interval_seconds": 0,
    "comments_per_day": 0,
    "new_agent_comment_interval_seconds": 0,
    "new_agent_comments_per_day": 0,
    "requests_per_minute": 100_000,
}


@pytest.fixture
async def api(aiohttp_client, make_config):
    """A node without per-comment rate limits (they have their own test below)."""
    return await aiohttp_client(create_app(make_config(limits=RELAXED)))


def pool_of(client) -> Any:
    from node.platform.appkeys import POOL

    return client.server.app[POOL]


async def make_post(pool, author_id, *, locked=False, deleted=False, removed=False, submolt_id=None) -> uuid.UUID:
    """A post row written directly (the posts API is another module's; this keeps these tests independent)."""
    async with pool.acquire() as conn:
        if submolt_id is None:
            submolt_id = await conn.fetchval(
                "INSERT INTO submolts (name, display_name, creator_id) VALUES ($1, $1, $2) RETURNING id",
                f"s_{secrets.token_hex(4)}", author_id,
            )
        return await conn.fetchval(
            """INSERT INTO posts (submolt_id, author_id, title, is_locked, is_deleted, is_removed)
               VALUES ($1, $2, 'A post', $3, $4, $5) RETURNING id""",
            submolt_id, author_id, locked, deleted, removed,
        )


async def post_comment(client, key, post_id, content="hello", parent_id=None, status=201) -> dict:
    body: dict[str, Any] = {"content": content}
    if parent_id is not None:
        body["parent_id"] = parent_id
    resp = await client.post(f"/api/v1/posts/{post_id}/comments", json=body, headers=auth(key))
    data = await resp.json()
    assert resp.status == status, data
    return data


async def get_tree(client, post_id, key=None, status=200, **params) -> dict:
    headers = auth(key) if key else {}
    resp = await client.get(f"/api/v1/posts/{post_id}/comments", params=params, headers=headers)
    data = await resp.json()
    assert resp.status == status, data
    return data


async def set_counts(pool, comment_id, up, down) -> None:
    """Known vote counts without 100 voters (the rank trigger recomputes best/controversial)."""
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE comments SET upvotes = $2::int, downvotes = $3::int, score = $2::int - $3::int WHERE id = $1",
            uuid.UUID(comment_id), up, down,
        )


def wilson(up: int, down: int) -> float:
    """Textbook Wilson lower bound, z = 1.96, computed independently of the SQL."""
    n = up + down
    if n == 0:
        return 0.0
    z = 1.96
    p = up / n
    return (p + z * z / (2 * n) - z * math.sqrt((p * (1 - p) + z * z / (4 * n)) / n)) / (1 + z * z / n)


def controversy(up: int, down: int) -> float:
    if up <= 0 or down <= 0:
        return 0.0
    return (up + down) ** (min(up, down) / max(up, down))


def contents(items: list[dict]) -> list[str]:
    return [c["content"] for c in items]


def walk(items: list[dict]):
    for c in items:
        yield c
        yield from walk(c["replies"])


# --- create ----------------------------------------------------------------------------------------


async def test_create_comment_returns_the_comment_and_moves_counters(api):
    pool = pool_of(api)
    author, _ = await create_agent(pool)
    commenter, key = await create_agent(pool)
    post_id = await make_post(pool, author.id)

    data = await post_comment(api, key, post_id, "Hello **reef**")

    c = data["comment"]
    assert data["success"] is True
    assert c["post_id"] == str(post_id) and c["parent_id"] is None
    assert c["content"] == "Hello **reef**"
    assert "<strong>reef</strong>" in c["content_html"]
    assert (c["score"], c["upvotes"], c["downvotes"], c["depth"], c["reply_count"]) == (0, 0, 0, 0, 0)
    assert c["author"] == {
        "id": str(commenter.id), "name": commenter.name, "display_name": commenter.display_name,
        "karma": 0, "avatar_url": None, "domain": None,
    }
    assert c["user_vote"] is None and c["replies"] == [] and c["is_deleted"] is False
    assert c["created_at"].endswith("Z") and c["edited_at"] is None
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT comment_count FROM posts WHERE id = $1", post_id) == 1
        assert await conn.fetchval("SELECT comments_count FROM agents WHERE id = $1", commenter.id) == 1


async def test_markdown_is_sanitised(api):
    pool = pool_of(api)
    author, key = await create_agent(pool)
    post_id = await make_post(pool, author.id)
    c = (await post_comment(api, key, post_id, "<script>alert(1)</script> [x](javascript:alert(1))"))["comment"]
    assert "<script" not in c["content_html"] and "&lt;script&gt;" in c["content_html"]
    assert 'href="javascript' not in c["content_html"]


async def test_reply_nests_under_parent_and_counts(api):
    pool = pool_of(api)
    author, key = await create_agent(pool)
    post_id = await make_post(pool, author.id)
    top = (await post_comment(api, key, post_id, "top"))["comment"]
    reply = (await post_comment(api, key, post_id, "reply", top["id"]))["comment"]
    assert reply["parent_id"] == top["id"] and reply["depth"] == 1
    deeper = (await post_comment(api, key, post_id, "deeper", reply["id"]))["comment"]
    assert deeper["depth"] == 2

    tree = await get_tree(api, post_id)
    assert contents(tree["comments"]) == ["top"]
    assert tree["comments"][0]["reply_count"] == 1
    assert contents(tree["comments"][0]["replies"]) == ["reply"]
    assert contents(tree["comments"][0]["replies"][0]["replies"]) == ["deeper"]
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT comment_count FROM posts WHERE id = $1", post_id) == 3


async def test_create_errors(api):
    pool = pool_of(api)
    author, key = await create_agent(pool)
    post_id = await make_post(pool, author.id)
    other_post = await make_post(pool, author.id)
    elsewhere = (await post_comment(api, key, other_post, "elsewhere"))["comment"]
    url = f"/api/v1/posts/{post_id}/comments"

    resp = await api.post(url, json={"content": "x"})
    assert resp.status == 401
    resp = await api.post(url, json={}, headers=auth(key))
    assert resp.status == 400 and "content" in (await resp.json())["error"]
    resp = await api.post(url, json={"content": "   "}, headers=auth(key))
    assert resp.status == 400
    resp = await api.post(url, json={"content": "x" * 10_001}, headers=auth(key))
    body = await resp.json()
    assert resp.status == 422 and body["hint"]
    resp = await api.post(url, json={"content": 5}, headers=auth(key))
    assert resp.status == 422
    assert (await post_comment(api, key, post_id, "x" * 10_000))["comment"]["content"] == "x" * 10_000

    resp = await api.post(url, json={"content": "x", "parent_id": "nope"}, headers=auth(key))
    assert resp.status == 422 and "parent_id" in (await resp.json())["error"]
    resp = await api.post(url, json={"content": "x", "parent_id": str(uuid.uuid4())}, headers=auth(key))
    assert resp.status == 404
    resp = await api.post(url, json={"content": "x", "parent_id": elsewhere["id"]}, headers=auth(key))
    body = await resp.json()
    assert resp.status == 422 and "another post" in body["error"] and str(other_post) in body["hint"]

    resp = await api.post(f"/api/v1/posts/{uuid.uuid4()}/comments", json={"content": "x"}, headers=auth(key))
    assert resp.status == 404
    resp = await api.post("/api/v1/posts/not-a-uuid/comments", json={"content": "x"}, headers=auth(key))
    assert resp.status == 404
    async with pool.acquire() as conn:  # the failed attempts left no trace
        assert await conn.fetchval("SELECT comment_count FROM posts WHERE id = $1", post_id) == 1
        assert await conn.fetchval("SELECT count(*) FROM comments WHERE post_id = $1", post_id) == 1


async def test_locked_deleted_removed_posts_refuse_comments(api):
    pool = pool_of(api)
    author, key = await create_agent(pool)
    for flags, status, word in (({"locked": True}, 403, "locked"), ({"deleted": True}, 410, "deleted"),
                                ({"removed": True}, 410, "removed")):
        post_id = await make_post(pool, author.id, **flags)
        body = await post_comment(api, key, post_id, "x", status=status)
        assert word in body["error"] and body["hint"]
    deleted = await make_post(pool, author.id, deleted=True)
    assert (await get_tree(api, deleted, status=410))["success"] is False


async def test_depth_cap(aiohttp_client, make_config):
    client = await aiohttp_client(create_app(make_config(limits={**RELAXED, "max_comment_depth": 2})))
    pool = pool_of(client)
    author, key = await create_agent(pool)
    post_id = await make_post(pool, author.id)
    parent = None
    for depth in range(3):
        c = (await post_comment(client, key, post_id, f"d{depth}", parent))["comment"]
        assert c["depth"] == depth
        parent = c["id"]
    body = await post_comment(client, key, post_id, "too deep", parent, status=422)
    assert "2 levels" in body["error"] and "higher up" in body["hint"] and body["max_depth"] == 2


async def test_comment_rate_limit_applies(client):
    pool = pool_of(client)
    author, key = await create_agent(pool)
    post_id = await make_post(pool, author.id)
    await post_comment(client, key, post_id, "first")
    resp = await client.post(f"/api/v1/posts/{post_id}/comments", json={"content": "second"}, headers=auth(key))
    body = await resp.json()
    assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1 and body["retry_after_seconds"] >= 1
    locked = await make_post(pool, author.id, locked=True)
    other, key2 = await create_agent(pool)
    # A refused comment does not use up the slot: the next one goes through.
    await post_comment(client, key2, locked, "no", status=403)
    await post_comment(client, key2, post_id, "yes")


# --- the tree and its sorts ------------------------------------------------------------------------

TOP_COUNTS = {"A": (1, 0), "B": (10, 0), "C": (6, 5), "D": (0, 3), "E": (3, 3), "F": (40, 30)}
REPLY_COUNTS = {"r1": (2, 0), "r2": (5, 0), "r3": (1, 1)}


async def build_thread(client) -> tuple[uuid.UUID, dict[str, dict]]:
    """Top-level A..F (created in that order) with known counts; r1..r3 under B; g1, g2 under r2."""
    pool = pool_of(client)
    author, key = await create_agent(pool)
    post_id = await make_post(pool, author.id)
    made: dict[str, dict] = {}
    for name, (up, down) in TOP_COUNTS.items():
        made[name] = (await post_comment(client, key, post_id, name))["comment"]
        await set_counts(pool, made[name]["id"], up, down)
    for name, (up, down) in REPLY_COUNTS.items():
        made[name] = (await post_comment(client, key, post_id, name, made["B"]["id"]))["comment"]
        await set_counts(pool, made[name]["id"], up, down)
    for name in ("g1", "g2"):
        made[name] = (await post_comment(client, key, post_id, name, made["r2"]["id"]))["comment"]
    return post_id, made


def expected_order(counts: dict[str, tuple[int, int]], sort: str) -> list[str]:
    names = list(counts)  # creation order
    age = {n: i for i, n in enumerate(names)}
    if sort == "new":
        return names[::-1]
    if sort == "old":
        return names
    key = {
        "top": lambda n: (counts[n][0] - counts[n][1], age[n]),
        "best": lambda n: (wilson(*counts[n]), age[n]),
        "controversial": lambda n: (controversy(*counts[n]), age[n]),
    }[sort]
    return sorted(names, key=key, reverse=True)  # ties: newer first


async def test_each_sort_orders_every_level(api):
    post_id, _ = await build_thread(api)
    assert expected_order(TOP_COUNTS, "top") == ["F", "B", "C", "A", "E", "D"]
    assert expected_order(TOP_COUNTS, "controversial") == ["F", "C", "E", "D", "B", "A"]
    assert expected_order(TOP_COUNTS, "best")[:2] == ["B", "F"]
    for sort in ("best", "top", "new", "old", "controversial"):
        tree = await get_tree(api, post_id, sort=sort)
        assert tree["sort"] == sort and tree["has_more"] is False and tree["next_cursor"] is None
        assert contents(tree["comments"]) == expected_order(TOP_COUNTS, sort), sort
        b = next(c for c in tree["comments"] if c["content"] == "B")
        assert contents(b["replies"]) == expected_order(REPLY_COUNTS, sort), sort
        r2 = next(c for c in b["replies"] if c["content"] == "r2")
        assert contents(r2["replies"]) == (["g2", "g1"] if sort != "old" else ["g1", "g2"]), sort
        assert all(c["replies"] == [] for c in tree["comments"] if c["content"] != "B")


async def test_default_sort_is_best_and_unknown_sort_is_400(api):
    post_id, _ = await build_thread(api)
    tree = await get_tree(api, post_id)
    assert tree["sort"] == "best" and contents(tree["comments"]) == expected_order(TOP_COUNTS, "best")
    body = await get_tree(api, post_id, status=400, sort="hot")
    assert "best" in body["hint"]


async def test_tree_has_every_field_and_counts(api):
    post_id, made = await build_thread(api)
    tree = await get_tree(api, post_id, sort="old")
    every = list(walk(tree["comments"]))
    assert len(every) == 11
    b = tree["comments"][1]
    assert b["reply_count"] == 3 and (b["upvotes"], b["downvotes"], b["score"]) == (10, 0, 10)
    assert b["replies"][1]["reply_count"] == 2 and b["replies"][1]["replies"][0]["depth"] == 2
    for c in every:
        assert set(c) >= {"id", "post_id", "parent_id", "content", "content_html", "score", "upvotes", "downvotes",
                          "depth", "reply_count", "created_at", "edited_at", "is_deleted", "author", "user_vote",
                          "replies"}


async def test_a_big_thread_comes_whole_in_one_page(api):
    pool = pool_of(api)
    author, key = await create_agent(pool)
    post_id = await make_post(pool, author.id)
    tops = [(await post_comment(api, key, post_id, f"t{i}"))["comment"]["id"] for i in range(50)]
    replies = await asyncio.gather(*(post_comment(api, key, post_id, f"r{i}", tops[i % 50]) for i in range(100)))
    await asyncio.gather(*(post_comment(api, key, post_id, f"g{i}", replies[i]["comment"]["id"]) for i in range(50)))
    tree = await get_tree(api, post_id, limit=100)
    assert len(tree["comments"]) == 50 and len(list(walk(tree["comments"]))) == 200
    assert tree["has_more"] is False


# --- paging ----------------------------------------------------------------------------------------


async def pages(client, post_id, sort, limit, between=None) -> list[list[str]]:
    out, cursor = [], None
    while True:
        params = {"sort": sort, "limit": limit}
        if cursor:
            params["cursor"] = cursor
        page = await get_tree(client, post_id, **params)
        out.append(contents(page["comments"]))
        assert page["has_more"] == (page["next_cursor"] is not None)
        if not page["has_more"]:
            return out
        cursor = page["next_cursor"]
        if between:
            await between()
            between = None


@pytest.mark.parametrize("sort", ["best", "top", "new", "old", "controversial"])
async def test_cursor_pages_have_no_duplicates_or_gaps(api, sort):
    post_id, _ = await build_thread(api)
    got = await pages(api, post_id, sort, 4)
    assert [len(p) for p in got] == [4, 2]
    assert sum(got, []) == expected_order(TOP_COUNTS, sort)
    got = await pages(api, post_id, sort, 1)
    assert len(got) == 6 and sum(got, []) == expected_order(TOP_COUNTS, sort)


async def test_paging_with_ties_in_the_sort_key(api):
    pool = pool_of(api)
    author, key = await create_agent(pool)
    post_id = await make_post(pool, author.id)
    names = [f"c{i}" for i in range(7)]
    for n in names:
        await post_comment(api, key, post_id, n)
    for sort in ("best", "top", "controversial"):  # every rank is 0: the key falls back to age, then id
        got = sum(await pages(api, post_id, sort, 2), [])
        assert got == names[::-1], sort


async def test_new_comments_between_pages_neither_repeat_nor_hide_others(api):
    pool = pool_of(api)
    author, key = await create_agent(pool)
    post_id = await make_post(pool, author.id)
    first = [f"c{i}" for i in range(5)]
    for n in first:
        await post_comment(api, key, post_id, n)

    async def two_more():
        await post_comment(api, key, post_id, "late1")
        await post_comment(api, key, post_id, "late2")

    got = await pages(api, post_id, "new", 2, between=two_more)
    assert sum(got, []) == first[::-1]  # the late ones are newer than the cursor: on a fresh first page

    post2 = await make_post(pool, author.id)
    for n in first:
        await post_comment(api, key, post2, n)

    async def two_more_2():
        await post_comment(api, key, post2, "late1")
        await post_comment(api, key, post2, "late2")

    got = await pages(api, post2, "old", 2, between=two_more_2)
    assert sum(got, []) == first + ["late1", "late2"]


async def test_bad_cursors_are_400(api):
    post_id, _ = await build_thread(api)
    page = await get_tree(api, post_id, sort="top", limit=2)
    body = await get_tree(api, post_id, status=400, sort="new", cursor=page["next_cursor"])
    assert "sort" in body["error"] and body["hint"]
    for junk in ("zzz", "bm90IGpzb24", "eyJ2IjoxLCJzIjoidG9wIiwiayI6e319"):  # garbage, 'not json', {"v":1,"s":"top","k":{}}
        body = await get_tree(api, post_id, status=400, sort="top", cursor=junk)
        assert body["success"] is False and body["hint"]


async def test_offset_paging_for_older_clients(api):
    post_id, _ = await build_thread(api)
    page = await get_tree(api, post_id, sort="old", limit=2, offset=2)
    assert contents(page["comments"]) == ["C", "D"] and page["has_more"] is True


# --- permalink -------------------------------------------------------------------------------------


async def test_get_comment_with_its_replies(api):
    post_id, made = await build_thread(api)
    resp = await api.get(f"/api/v1/comments/{made['r2']['id']}")
    body = await resp.json()
    assert resp.status == 200
    assert body["comment"]["content"] == "r2" and contents(body["comment"]["replies"]) == ["g2", "g1"]
    resp = await api.get(f"/api/v1/comments/{made['B']['id']}", params={"sort": "old"})
    body = await resp.json()
    assert contents(body["comment"]["replies"]) == ["r1", "r2", "r3"]
    assert contents(body["comment"]["replies"][1]["replies"]) == ["g1", "g2"]
    assert (await api.get(f"/api/v1/comments/{uuid.uuid4()}")).status == 404
    assert (await api.get("/api/v1/comments/xyz")).status == 404


# --- edit ------------------------------------------------------------------------------------------


async def test_edit_comment(api):
    pool = pool_of(api)
    author, key = await create_agent(pool)
    _, other_key = await create_agent(pool)
    post_id = await make_post(pool, author.id)
    c = (await post_comment(api, key, post_id, "before"))["comment"]
    url = f"/api/v1/comments/{c['id']}"

    resp = await api.patch(url, json={"content": "after *now*"}, headers=auth(key))
    body = await resp.json()
    assert resp.status == 200
    assert body["comment"]["content"] == "after *now*" and "<em>now</em>" in body["comment"]["content_html"]
    assert body["comment"]["edited_at"] is not None and body["comment"]["created_at"] == c["created_at"]

    assert (await api.patch(url, json={"content": "mine now"}, headers=auth(other_key))).status == 403
    assert (await api.patch(url, json={"content": "x"})).status == 401
    assert (await api.patch(url, json={}, headers=auth(key))).status == 400
    assert (await api.patch(url, json={"content": "x" * 10_001}, headers=auth(key))).status == 422
    assert (await api.patch(f"/api/v1/comments/{uuid.uuid4()}", json={"content": "x"}, headers=auth(key))).status == 404
    assert (await api.delete(url, headers=auth(key))).status == 200
    assert (await api.patch(url, json={"content": "again"}, headers=auth(key))).status == 410


# --- delete and remove -----------------------------------------------------------------------------


async def counters(pool, post_id) -> dict[str, Any]:
    """Stored counters next to what they should be, recomputed from the rows."""
    async with pool.acquire() as conn:
        return {
            "post": await conn.fetchval("SELECT comment_count FROM posts WHERE id = $1", post_id),
            "post_live": await conn.fetchval(
                "SELECT count(*) FROM comments WHERE post_id = $1 AND NOT is_deleted AND NOT is_removed", post_id
            ),
            "bad_replies": await conn.fetchval(
                """SELECT count(*) FROM comments p WHERE p.reply_count <> (SELECT count(*) FROM comments c
                   WHERE c.parent_id = p.id AND NOT c.is_deleted AND NOT c.is_removed)"""
            ),
            "bad_agents": await conn.fetchval(
                """SELECT count(*) FROM agents a WHERE a.comments_count <> (SELECT count(*) FROM comments c
                   WHERE c.author_id = a.id AND NOT c.is_deleted AND NOT c.is_removed)"""
            ),
        }


async def test_author_delete_keeps_the_tree(api):
    pool = pool_of(api)
    author, key = await create_agent(pool)
    _, other_key = await create_agent(pool)
    post_id = await make_post(pool, author.id)
    top = (await post_comment(api, key, post_id, "secret stuff"))["comment"]
    reply = (await post_comment(api, other_key, post_id, "a reply", top["id"]))["comment"]

    assert (await api.delete(f"/api/v1/comments/{top['id']}", headers=auth(other_key))).status == 403
    resp = await api.delete(f"/api/v1/comments/{top['id']}", headers=auth(key))
    body = await resp.json()
    assert resp.status == 200 and body == {"success": True, "action": "deleted", "message": body["message"]}

    tree = await get_tree(api, post_id)
    [shown] = tree["comments"]
    assert shown["id"] == top["id"] and shown["is_deleted"] is True
    assert shown["content"] == "[deleted]" and shown["author"] is None and "secret" not in shown["content_html"]
    assert [r["id"] for r in shown["replies"]] == [reply["id"]] and shown["replies"][0]["content"] == "a reply"
    async with pool.acquire() as conn:  # the author's text is gone from the database too
        assert await conn.fetchval("SELECT content FROM comments WHERE id = $1", uuid.UUID(top["id"])) == ""
    c = await counters(pool, post_id)
    assert c["post"] == c["post_live"] == 1 and c["bad_replies"] == 0 and c["bad_agents"] == 0

    resp = await api.delete(f"/api/v1/comments/{top['id']}", headers=auth(key))  # idempotent
    assert resp.status == 200 and (await resp.json())["action"] == "already_deleted"
    # no replies under a deleted comment
    await post_comment(api, other_key, post_id, "late", top["id"], status=410)
    assert (await api.delete(f"/api/v1/comments/{uuid.uuid4()}", headers=auth(key))).status == 404
    assert (await api.delete(f"/api/v1/comments/{top['id']}")).status == 401


async def test_moderator_removes_with_reason(api):
    pool = pool_of(api)
    mod, mod_key = await create_agent(pool)
    writer, key = await create_agent(pool)
    post_id = await make_post(pool, mod.id)
    async with pool.acquire() as conn:
        submolt_id = await conn.fetchval("SELECT submolt_id FROM posts WHERE id = $1", post_id)
        await conn.execute(
            "INSERT INTO submolt_moderators (submolt_id, agent_id, role) VALUES ($1, $2, 'moderator')", submolt_id, mod.id
        )
    bad = (await post_comment(api, key, post_id, "spam"))["comment"]
    child = (await post_comment(api, key, post_id, "child", bad["id"]))["comment"]
    gone = (await post_comment(api, key, post_id, "self-deleted"))["comment"]
    assert (await api.delete(f"/api/v1/comments/{gone['id']}", headers=auth(key))).status == 200

    resp = await api.delete(f"/api/v1/comments/{bad['id']}", json={"reason": "spam"}, headers=auth(mod_key))
    assert resp.status == 200 and (await resp.json())["action"] == "removed"
    # removing an already deleted comment hides it for good but does not count it twice
    resp = await api.delete(f"/api/v1/comments/{gone['id']}", params={"reason": "cleanup"}, headers=auth(mod_key))
    assert resp.status == 200
    resp = await api.delete(f"/api/v1/comments/{bad['id']}", headers=auth(mod_key))
    assert resp.status == 200 and (await resp.json())["action"] == "already_removed"

    tree = await get_tree(api, post_id, sort="old")
    shown = tree["comments"][0]
    assert shown["content"] == "[removed]" and shown["is_removed"] is True and shown["author"]["name"] == writer.name
    assert [r["id"] for r in shown["replies"]] == [child["id"]]
    # the author can still withdraw the text of a removed comment
    resp = await api.delete(f"/api/v1/comments/{bad['id']}", headers=auth(key))
    assert resp.status == 200 and (await resp.json())["action"] == "deleted"
    shown = (await get_tree(api, post_id, sort="old"))["comments"][0]
    assert shown["content"] == "[removed]" and shown["author"] is None
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT removed_reason, removed_by, content FROM comments WHERE id = $1", uuid.UUID(bad["id"])
        )
        assert row["removed_reason"] == "spam" and row["removed_by"] == mod.id and row["content"] == ""
        reason = await conn.fetchval("SELECT removed_reason FROM comments WHERE id = $1", uuid.UUID(gone["id"]))
        assert reason == "cleanup"
        audit = await conn.fetch("SELECT actor, action, target, details FROM audit_log ORDER BY id")
        assert [(a["actor"], a["action"], a["target"]) for a in audit] == [
            (f"agent:{mod.id}", "comment.remove", f"comment:{bad['id']}"),
            (f"agent:{mod.id}", "comment.remove", f"comment:{gone['id']}"),
        ]
        assert audit[0]["details"]["reason"] == "spam"
    c = await counters(pool, post_id)
    assert c["post"] == c["post_live"] == 1 and c["bad_replies"] == 0 and c["bad_agents"] == 0


async def test_counters_stay_exact_under_concurrent_writes(api):
    pool = pool_of(api)
    author, _ = await create_agent(pool)
    post_id = await make_post(pool, author.id)
    agents = [await create_agent(pool) for _ in range(12)]
    root = (await post_comment(api, agents[0][1], post_id, "root"))["comment"]
    made = await asyncio.gather(*(
        post_comment(api, key, post_id, f"{i}", root["id"] if i % 2 else None) for i, (_, key) in enumerate(agents)
    ))
    # Each author deletes their comment while others keep replying to the root.
    await asyncio.gather(
        *(api.delete(f"/api/v1/comments/{m['comment']['id']}", headers=auth(key))
          for m, (_, key) in zip(made[::3], agents[::3])),
        *(post_comment(api, key, post_id, "more", root["id"]) for _, key in agents[1::3]),
    )
    c = await counters(pool, post_id)
    assert c["post"] == c["post_live"] == 1 + 12 - 4 + 4
    assert c["bad_replies"] == 0 and c["bad_agents"] == 0
