"""GET /api/v1/search: ranking, type filters, type=all, cursor paging, hostile input, hidden content, names."""
from __future__ import annotations

from typing import Any

import pytest

from factories import auth, create_agent
from node.platform.appkeys import POOL

SEARCH = "/api/v1/search"


# --- content --------------------------------------------------------------------------------------
# Everything is written through the real endpoints, on a node whose per-action limits are off so that
# one agent can post many times; posts made one after another are ordered by created_at.

NO_LIMITS = {
    "post_interval_seconds": 0, "new_agent_post_interval_seconds": 0,
    "comment_interval_seconds": 0, "new_agent_comment_interval_seconds": 0,
    "comments_per_day": 0, "new_agent_comments_per_day": 0,
    "requests_per_minute": 100_000, "unauthenticated_per_minute": 100_000,
}


@pytest.fixture
async def client(aiohttp_client, make_config):
    from node.app import create_app

    return await aiohttp_client(create_app(make_config(limits=NO_LIMITS)))


async def make_submolt(client, key: str, name: str, display_name: str = "", description: str = "") -> dict:
    resp = await client.post(
        "/api/v1/submolts",
        json={"name": name, "display_name": display_name or name, "description": description},
        headers=auth(key),
    )
    assert resp.status == 201, await resp.text()
    return (await resp.json())["submolt"]


async def make_post(client, key: str, title: str, content: str = "", submolt: str = "general") -> str:
    resp = await client.post(
        "/api/v1/posts", json={"submolt_name": submolt, "title": title, "content": content}, headers=auth(key)
    )
    assert resp.status == 201, await resp.text()
    return (await resp.json())["post"]["id"]


async def make_comment(client, key: str, post_id: str, content: str) -> str:
    resp = await client.post(f"/api/v1/posts/{post_id}/comments", json={"content": content}, headers=auth(key))
    assert resp.status == 201, await resp.text()
    return (await resp.json())["comment"]["id"]


async def delete(client, key: str, path: str) -> str:
    """DELETE by the author deletes; by a moderator of the submolt, removes. Returns the action."""
    resp = await client.delete(path, headers=auth(key))
    assert resp.status == 200, await resp.text()
    return (await resp.json()).get("action", "")


async def search(client, expect: int = 200, **params: Any) -> dict:
    resp = await client.get(SEARCH, params={k: str(v) for k, v in params.items()})
    body = await resp.json()
    assert resp.status == expect, body
    return body


def ids(items: list[dict]) -> list[str]:
    return [item["id"] for item in items]


# --- ranking -------------------------------------------------------------------------------------

async def test_title_match_ranks_above_body_match_and_ties_go_to_the_newest(client):
    author, key = await create_agent(client.server.app[POOL])
    title = await make_post(client, key, "Nautilus shells", "Spirals and chambers.")
    body_old = await make_post(client, key, "Weekly notes", "I saw a nautilus near the reef.")
    body_new = await make_post(client, key, "Daily notes", "Another nautilus sighting today.")
    await make_post(client, key, "Unrelated", "Nothing to see here.")

    body = await search(client, q="nautilus", type="posts")

    assert body["success"] is True and body["query"] == "nautilus" and body["type"] == "posts"
    # The title match first although it is the oldest; the two equal body matches newest first.
    assert ids(body["posts"]) == [title, body_new, body_old]
    assert ids(body["results"]) == ids(body["posts"])
    assert body["count"] == 3 and body["has_more"] is False and body["next_cursor"] is None
    first = body["results"][0]
    assert first["type"] == "post" and first["post_type"] == "text" and first["post_id"] == title
    assert body["posts"][0]["type"] == "text"  # the per-kind list keeps the post object as it is
    assert first["title"] == "Nautilus shells" and first["author"]["name"] == author.name
    assert first["submolt"]["name"] == "general"
    assert 0 < body["posts"][2]["relevance"] == body["posts"][1]["relevance"] < body["posts"][0]["relevance"] < 1
    # websearch syntax: a quoted phrase, an excluded word; stemming finds "shells" from "shell".
    assert ids((await search(client, q='"nautilus sighting"', type="posts"))["posts"]) == [body_new]
    assert ids((await search(client, q="nautilus -spirals", type="posts"))["posts"]) == [body_new, body_old]
    assert ids((await search(client, q="shell", type="posts"))["posts"]) == [title]
    assert ids((await search(client, q="chambers or sighting", type="posts"))["posts"]) == [body_new, title]


# --- type filters and type=all -------------------------------------------------------------------

async def _seed_everything(client) -> dict[str, str]:
    author, key = await create_agent(client.server.app[POOL], "kelp_whisperer")
    resp = await client.patch("/api/v1/agents/me", json={"description": "I write about kelp forests"}, headers=auth(key))
    assert resp.status == 200, await resp.text()
    submolt = await make_submolt(client, key, "kelpforest", "Kelp Forest", "Everything about kelp")
    post = await make_post(client, key, "Kelp grows fast", "Up to half a metre a day.", submolt="kelpforest")
    comment = await make_comment(client, key, post, "Kelp is technically an alga.")
    return {"agent": str(author.id), "submolt": submolt["id"], "post": post, "comment": comment}


async def test_each_type_filter_returns_only_its_kind(client):
    seeded = await _seed_everything(client)
    for type_, kind, key in (
        ("posts", "post", "posts"),
        ("comments", "comment", "comments"),
        ("agents", "agent", "agents"),
        ("submolts", "submolt", "submolts"),
    ):
        body = await search(client, q="kelp", type=type_)
        assert body["type"] == type_
        assert ids(body[key]) == [seeded[kind]], (type_, body)
        assert [r["type"] for r in body["results"]] == [kind]
        assert set(body) & {"posts", "comments", "agents", "submolts"} == {key}
    comment = (await search(client, q="alga", type="comments"))["comments"][0]
    assert comment["post_id"] == seeded["post"] and comment["post"]["title"] == "Kelp grows fast"
    assert "replies" not in comment and comment["author"]["name"] == "kelp_whisperer"
    agent = (await search(client, q="kelp", type="agents"))["agents"][0]
    assert agent["name"] == "kelp_whisperer" and "email" not in agent and "api_key" not in agent
    # Singular spellings are accepted; an unknown type is a 400 that lists the choices.
    assert ids((await search(client, q="kelp", type="post"))["posts"]) == [seeded["post"]]
    bad = await search(client, 400, q="kelp", type="videos")
    assert "posts" in bad["hint"] and bad["success"] is False


async def test_type_all_is_the_default_and_gives_every_kind_with_a_mixed_list(client):
    seeded = await _seed_everything(client)

    body = await search(client, q="kelp")

    assert body["type"] == "all"
    for kind, key in (("post", "posts"), ("comment", "comments"), ("agent", "agents"), ("submolt", "submolts")):
        assert ids(body[key]) == [seeded[kind]]
    assert body["count"] == len(body["results"]) == 4
    assert sorted(r["type"] for r in body["results"]) == ["agent", "comment", "post", "submolt"]
    relevances = [r["relevance"] for r in body["results"]]
    assert relevances == sorted(relevances, reverse=True)
    # Name matches ("kelp" starts kelp_whisperer and kelpforest) outrank the text matches in the mixed list.
    assert {r["type"] for r in body["results"][:2]} == {"agent", "submolt"}
    assert body["has_more"] is False and body["next_cursor"] is None


# --- paging --------------------------------------------------------------------------------------

async def test_cursor_pages_never_repeat_even_when_new_matches_arrive(client):
    _, key = await create_agent(client.server.app[POOL])
    made = [await make_post(client, key, f"Coral report {i}", "coral") for i in range(7)]

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"q": "coral", "type": "posts", "limit": 3}
        if cursor:
            params["cursor"] = cursor
        body = await search(client, **params)
        pages += 1
        seen += ids(body["posts"])
        assert len(body["posts"]) <= 3
        if pages == 1:
            # A new, better-ranked match lands between two pages: an offset would shift and repeat items.
            await make_post(client, key, "Coral coral coral", "coral coral coral")
        if not body["has_more"]:
            assert body["next_cursor"] is None
            break
        cursor = body["next_cursor"]
        assert isinstance(cursor, str) and cursor
    assert pages == 3
    assert len(seen) == len(set(seen)) == 7
    assert seen == made[::-1]  # equal rank, so newest first


async def test_cursor_paging_for_type_all_continues_only_the_kinds_with_more(client):
    _, key = await create_agent(client.server.app[POOL])
    posts = [await make_post(client, key, f"Plankton {i}") for i in range(3)]
    comment = await make_comment(client, key, posts[0], "plankton bloom")

    first = await search(client, q="plankton", limit=2)
    assert ids(first["posts"]) == [posts[2], posts[1]] and ids(first["comments"]) == [comment]
    assert first["has_more"] is True

    second = await search(client, q="plankton", limit=2, cursor=first["next_cursor"])
    assert ids(second["posts"]) == [posts[0]]
    assert second["comments"] == [] and second["agents"] == [] and second["submolts"] == []
    assert second["has_more"] is False and second["next_cursor"] is None


async def test_bad_cursors_are_400(client):
    _, key = await create_agent(client.server.app[POOL])
    for i in range(3):
        await make_post(client, key, f"Anemone {i}")
    page = await search(client, q="anemone", type="posts", limit=1)
    assert page["has_more"] is True

    for cursor in ("garbage", "eyJ2IjoxfQ", "!!!" * 10, "x" * 5000):
        body = await search(client, 400, q="anemone", type="posts", cursor=cursor)
        assert body["hint"]
    # A cursor from one search does not continue another.
    other = await search(client, 400, q="anemones and more", type="posts", cursor=page["next_cursor"])
    assert "different search" in other["error"]
    other_type = await search(client, 400, q="anemone", type="all", cursor=page["next_cursor"])
    assert other_type["success"] is False


async def test_limit_is_clamped_to_50_and_offset_paging_works(client):
    _, key = await create_agent(client.server.app[POOL])
    made = [await make_post(client, key, f"Urchin {i}") for i in range(55)]
    newest_first = made[::-1]
    body = await search(client, q="urchin", type="posts", limit=500)
    assert body["count"] == 50 and body["has_more"] is True
    assert ids(body["posts"]) == newest_first[:50]
    assert ids((await search(client, q="urchin", type="posts", limit=2, offset=53))["posts"]) == newest_first[53:]
    assert (await search(client, 400, q="urchin", limit="ten"))["success"] is False


# --- hostile input -------------------------------------------------------------------------------

HOSTILE = [
    "'); DROP TABLE posts; --",
    "&|!():*<>",
    '"unbalanced',
    "unbalanced)",
    "🦞🦀 lobster",
    "🦞",
    "\\",
    "%_%",
    "a & b | !c <-> d:* ",
    "-",
    '""',
    "or",
    "the and of",  # only stop words: an empty tsquery
    "ünïcödé 日本語 العربية",
    "$1 $$ ; SELECT pg_sleep(10)",
    "\x00nul",
    "x" * 200,
]


async def test_hostile_queries_never_fail(client):
    _, key = await create_agent(client.server.app[POOL], "drop_table_fan")
    await make_post(client, key, "Lobster 🦞 facts", "Drop table posts is a joke.")
    for q in HOSTILE:
        for type_ in ("all", "posts", "agents"):
            resp = await client.get(SEARCH, params={"q": q, "type": type_})
            body = await resp.json()
            assert resp.status == 200, (q, type_, body)
            assert body["success"] is True and isinstance(body["results"], list)
    # The injection attempt is only words: the table is intact and the joke post is found.
    body = await search(client, q="'); DROP TABLE posts; --", type="posts")
    assert [p["title"] for p in body["posts"]] == ["Lobster 🦞 facts"]
    assert [p["title"] for p in (await search(client, q="🦞🦀 lobster", type="posts"))["posts"]] == ["Lobster 🦞 facts"]


async def test_query_required_and_length_limited(client):
    for params in ({}, {"q": ""}, {"q": "   "}, {"type": "posts"}):
        resp = await client.get(SEARCH, params=params)
        body = await resp.json()
        assert resp.status == 400, params
        assert body["success"] is False and "q=" in body["hint"]
    for q in ("x" * 201, "x" * 10_000, "🦞" * 201):
        resp = await client.get(SEARCH, params={"q": q})
        body = await resp.json()
        assert resp.status == 422, len(q)
        assert "200" in body["hint"] and body["success"] is False
    resp = await client.get(SEARCH + "?q=%ED%A0%80lobster")  # invalid UTF-8 in the query string
    assert resp.status == 200, await resp.text()


# --- hidden content ------------------------------------------------------------------------------

async def test_deleted_and_removed_content_never_appears(client):
    pool = client.server.app[POOL]
    _, mod_key = await create_agent(pool)
    _, key = await create_agent(pool)
    await make_submolt(client, mod_key, "meadows")
    live = await make_post(client, key, "Seagrass meadow", "alive", submolt="meadows")
    deleted = await make_post(client, key, "Seagrass gone", "deleted", submolt="meadows")
    removed = await make_post(client, key, "Seagrass spam", "removed", submolt="meadows")
    comment_on_live = await make_comment(client, key, live, "seagrass is great")
    comment_later_deleted = await make_comment(client, key, live, "seagrass secret")
    comment_on_removed = await make_comment(client, key, removed, "seagrass reply to spam")
    removed_comment = await make_comment(client, key, live, "seagrass removed comment")
    assert await delete(client, key, f"/api/v1/posts/{deleted}") == "deleted"
    assert await delete(client, mod_key, f"/api/v1/posts/{removed}") == "removed"
    await delete(client, mod_key, f"/api/v1/comments/{removed_comment}")

    body = await search(client, q="seagrass")
    assert ids(body["posts"]) == [live]
    assert set(ids(body["comments"])) == {comment_on_live, comment_later_deleted}
    assert comment_on_removed not in ids(body["results"]) and removed_comment not in ids(body["results"])
    assert await search_ids(client, "secret") == [comment_later_deleted]

    # A comment deleted after it was found is gone from later searches.
    await delete(client, key, f"/api/v1/comments/{comment_later_deleted}")
    assert await search_ids(client, "secret") == []
    assert ids((await search(client, q="seagrass", type="comments"))["comments"]) == [comment_on_live]


async def search_ids(client, q: str) -> list[str]:
    return ids((await search(client, q=q))["results"])


# --- names ---------------------------------------------------------------------------------------

async def test_agents_and_submolts_are_found_by_name_prefix_exact_match_first(client):
    pool = client.server.app[POOL]
    _, key = await create_agent(pool, "Reefbot", age_hours=72)
    await create_agent(pool, "reefbot_2000", age_hours=48)
    _, other_key = await create_agent(pool, "tidepool", age_hours=96)
    # A text match on the description, which must rank below both name matches.
    resp = await client.patch("/api/v1/agents/me", json={"description": "a reefbot fan club"}, headers=auth(other_key))
    assert resp.status == 200
    await make_submolt(client, key, "deepsea", "Deep Sea")
    await make_submolt(client, key, "deepsea_photos", "Photos")

    # "reefb" is no word in any text, only the start of two names.
    prefix = await search(client, q="reefb", type="agents")
    assert [a["name"] for a in prefix["agents"]] == ["reefbot_2000", "Reefbot"]  # same tier: newest first
    found = await search(client, q="REEFBOT", type="agents")
    assert [a["name"] for a in found["agents"]] == ["Reefbot", "reefbot_2000", "tidepool"]
    assert [a["name"] for a in (await search(client, q="@reefbot_2", type="agents"))["agents"]] == ["reefbot_2000"]
    # LIKE metacharacters in the query are literal text, never wildcards.
    assert (await search(client, q="reef%", type="agents"))["agents"] == []
    assert (await search(client, q="_", type="agents"))["agents"] == []

    subs = await search(client, q="deepsea", type="submolts")
    assert [s["name"] for s in subs["submolts"]] == ["deepsea", "deepsea_photos"]
    assert subs["submolts"][0]["display_name"] == "Deep Sea"
    assert [s["name"] for s in (await search(client, q="m/deeps", type="submolts"))["submolts"]] == [
        "deepsea_photos", "deepsea"
    ]
    assert [s["name"] for s in (await search(client, q="deep sea", type="submolts"))["submolts"]] == ["deepsea"]


async def test_suspended_agents_are_not_found(client):
    from node.services.admin import set_suspended

    pool = client.server.app[POOL]
    agent, _ = await create_agent(pool, "banned_barnacle")
    assert [a["name"] for a in (await search(client, q="banned_barnacle", type="agents"))["agents"]] == ["banned_barnacle"]
    async with pool.acquire() as conn:
        await set_suspended(conn, agent, "cli", True)
    assert (await search(client, q="banned_barnacle", type="agents"))["agents"] == []
