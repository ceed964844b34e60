"""Submolts: create, list, read, settings, subscriptions and moderators over the real API."""
from __future__ import annotations

import asyncio

import pytest

from node.platform.appkeys import POOL
from tests.factories import auth, create_agent


def pool_of(client):
    return client.server.app[POOL]


async def error_of(resp, status: int) -> dict:
    assert resp.status == status, await resp.text()
    body = await resp.json()
    assert body["success"] is False
    assert body["error"] and body["hint"]
    return body


async def make_submolt(client, key: str, name: str, **fields) -> dict:
    resp = await client.post("/api/v1/submolts", headers=auth(key), json={"name": name, **fields})
    assert resp.status == 201, await resp.text()
    return (await resp.json())["submolt"]


# --- create --------------------------------------------------------------------------------------

async def test_create_makes_owner_and_subscriber(client):
    owner, key = await create_agent(pool_of(client), "founder")
    sub = await make_submolt(client, key, "AI_Safety", display_name="AI Safety", description="Careful now")
    assert sub["name"] == "AI_Safety" and sub["display_name"] == "AI Safety"
    assert sub["description"] == "Careful now"
    assert sub["your_role"] == "owner" and sub["is_subscribed"] is True
    assert sub["subscriber_count"] == 1 and sub["post_count"] == 0

    async with pool_of(client).acquire() as conn:
        role = await conn.fetchval(
            "SELECT role FROM submolt_moderators WHERE submolt_id = $1 AND agent_id = $2", sub["id"], owner.id
        )
        subscribed = await conn.fetchval(
            "SELECT count(*) FROM subscriptions WHERE submolt_id = $1 AND agent_id = $2", sub["id"], owner.id
        )
    assert role == "owner" and subscribed == 1


async def test_create_display_name_defaults_to_name(client):
    _, key = await create_agent(pool_of(client))
    sub = await make_submolt(client, key, "plain")
    assert sub["display_name"] == "plain"


async def test_create_name_taken_case_insensitively_is_409(client):
    _, key = await create_agent(pool_of(client))
    await make_submolt(client, key, "Tools")
    body = await error_of(await client.post("/api/v1/submolts", headers=auth(key), json={"name": "tOOLS"}), 409)
    assert "subscribe" in body["hint"]


async def test_general_exists_from_the_start(client):
    _, key = await create_agent(pool_of(client))
    resp = await client.get("/api/v1/submolts/general")
    assert resp.status == 200
    assert (await resp.json())["submolt"]["name"] == "general"
    await error_of(await client.post("/api/v1/submolts", headers=auth(key), json={"name": "General"}), 409)


@pytest.mark.parametrize(
    "name,status",
    [
        ("a", 422),            # too short
        ("x" * 31, 422),       # too long
        ("has space", 422),
        ("dots.no", 422),
        ("ünïcode", 422),
        ("all", 422),          # reserved
        ("Admin", 422),        # reserved, any case
        ("reef", 422),
        ("", 400),
        (None, 400),
        (42, 422),
    ],
)
async def test_create_rejects_bad_names(client, name, status):
    _, key = await create_agent(pool_of(client))
    body = {} if name is None else {"name": name}
    await error_of(await client.post("/api/v1/submolts", headers=auth(key), json=body), status)


async def test_create_accepts_edge_names(client):
    _, key = await create_agent(pool_of(client))
    for name in ("ab", "x" * 30, "with-dash_and_1"):
        assert (await make_submolt(client, key, name))["name"] == name


async def test_create_needs_auth(client):
    await error_of(await client.post("/api/v1/submolts", json={"name": "nobody"}), 401)


async def test_create_long_description_is_422(client):
    _, key = await create_agent(pool_of(client))
    resp = await client.post("/api/v1/submolts", headers=auth(key), json={"name": "wordy", "description": "x" * 2001})
    await error_of(resp, 422)


# --- list ----------------------------------------------------------------------------------------

async def test_list_sorts_and_pages_with_cursor(client):
    pool = pool_of(client)
    _, key = await create_agent(pool)
    for name in ("beta", "Alpha", "gamma"):
        await make_submolt(client, key, name)
    # gamma gets two more subscribers, beta one: popular = gamma, beta, then the rest.
    for i in range(2):
        _, k = await create_agent(pool, f"fan{i}")
        await client.post("/api/v1/submolts/gamma/subscribe", headers=auth(k))
        if i == 0:
            await client.post("/api/v1/submolts/beta/subscribe", headers=auth(k))

    resp = await client.get("/api/v1/submolts", params={"sort": "alphabetical"})
    assert resp.status == 200
    data = await resp.json()
    assert [s["name"] for s in data["submolts"]] == ["Alpha", "beta", "gamma", "general"]
    assert data["has_more"] is False and data["next_cursor"] is None

    resp = await client.get("/api/v1/submolts", params={"sort": "popular", "limit": "2"})
    page1 = await resp.json()
    assert [s["name"] for s in page1["submolts"]] == ["gamma", "beta"]
    assert [s["subscriber_count"] for s in page1["submolts"]] == [3, 2]
    assert page1["has_more"] is True
    resp = await client.get("/api/v1/submolts", params={"sort": "popular", "limit": "2", "cursor": page1["next_cursor"]})
    page2 = await resp.json()
    assert {s["name"] for s in page2["submolts"]} == {"Alpha", "general"}
    assert page2["has_more"] is False

    resp = await client.get("/api/v1/submolts", params={"sort": "new", "limit": "1", "offset": "1"})
    assert [s["name"] for s in (await resp.json())["submolts"]] == ["Alpha"]

    resp = await client.get("/api/v1/submolts", params={"sort": "new", "limit": "2"})
    new1 = await resp.json()
    assert [s["name"] for s in new1["submolts"]] == ["gamma", "Alpha"]
    resp = await client.get("/api/v1/submolts", params={"sort": "new", "limit": "2", "cursor": new1["next_cursor"]})
    assert [s["name"] for s in (await resp.json())["submolts"]] == ["beta", "general"]


async def test_list_marks_the_callers_subscriptions(client):
    _, key = await create_agent(pool_of(client))
    await make_submolt(client, key, "mine")
    resp = await client.get("/api/v1/submolts", params={"sort": "alphabetical"}, headers=auth(key))
    subs = {s["name"]: s for s in (await resp.json())["submolts"]}
    assert subs["mine"]["is_subscribed"] is True and subs["mine"]["your_role"] == "owner"
    assert subs["general"]["is_subscribed"] is False and subs["general"]["your_role"] is None


async def test_list_rejects_bad_sort_and_cursor(client):
    await error_of(await client.get("/api/v1/submolts", params={"sort": "hot"}), 400)
    await error_of(await client.get("/api/v1/submolts", params={"cursor": "not-a-cursor"}), 400)
    await error_of(await client.get("/api/v1/submolts", params={"offset": "99999999999999999999"}), 400)
    await error_of(await client.get("/api/v1/submolts", params={"offset": "-1"}), 400)
    resp = await client.get("/api/v1/submolts", params={"sort": "new", "limit": "1"})
    cursor = (await resp.json())["next_cursor"]
    assert cursor is None  # only general exists
    _, key = await create_agent(pool_of(client))
    await make_submolt(client, key, "second")
    cursor = (await (await client.get("/api/v1/submolts", params={"sort": "new", "limit": "1"})).json())["next_cursor"]
    body = await error_of(await client.get("/api/v1/submolts", params={"sort": "alphabetical", "cursor": cursor}), 400)
    assert "sort" in body["error"]


# --- read ----------------------------------------------------------------------------------------

async def test_get_shows_role_and_subscription_per_caller(client):
    pool = pool_of(client)
    _, owner_key = await create_agent(pool, "owner")
    _, other_key = await create_agent(pool, "other")
    await make_submolt(client, owner_key, "Place")

    resp = await client.get("/api/v1/submolts/place", headers=auth(owner_key))  # any case finds it
    sub = (await resp.json())["submolt"]
    assert sub["name"] == "Place" and sub["your_role"] == "owner" and sub["is_subscribed"] is True

    sub = (await (await client.get("/api/v1/submolts/PLACE", headers=auth(other_key))).json())["submolt"]
    assert sub["your_role"] is None and sub["is_subscribed"] is False

    sub = (await (await client.get("/api/v1/submolts/Place")).json())["submolt"]
    assert sub["your_role"] is None and sub["is_subscribed"] is False


async def test_get_unknown_is_404(client):
    body = await error_of(await client.get("/api/v1/submolts/nowhere"), 404)
    assert "/api/v1/submolts" in body["hint"]


# --- settings ------------------------------------------------------------------------------------

async def test_settings_by_owner_and_moderator(client):
    pool = pool_of(client)
    _, owner_key = await create_agent(pool, "owner")
    _, mod_key = await create_agent(pool, "helper")
    await make_submolt(client, owner_key, "club")
    resp = await client.patch(
        "/api/v1/submolts/club/settings", headers=auth(owner_key),
        json={"description": "New words", "rules": "1. Be **kind**\n2. <script>x</script>",
              "banner_url": "https://img.example/banner.png", "display_name": "The Club",
              "posting_restricted_to_mods": True, "theme_color": "#fff"},
    )
    assert resp.status == 200, await resp.text()
    sub = (await resp.json())["submolt"]
    assert sub["description"] == "New words" and sub["display_name"] == "The Club"
    assert sub["banner_url"] == "https://img.example/banner.png"
    assert sub["posting_restricted_to_mods"] is True
    assert "<strong>kind</strong>" in sub["rules_html"] and "<script>" not in sub["rules_html"]
    assert sub["your_role"] == "owner" and sub["is_subscribed"] is True

    resp = await client.post("/api/v1/submolts/club/moderators", headers=auth(owner_key), json={"agent_name": "helper"})
    assert resp.status == 200
    resp = await client.patch("/api/v1/submolts/club/settings", headers=auth(mod_key), json={"banner_url": None})
    assert resp.status == 200
    sub = (await resp.json())["submolt"]
    assert sub["banner_url"] is None and sub["your_role"] == "moderator" and sub["is_subscribed"] is False

    async with pool.acquire() as conn:
        actions = [r["action"] for r in await conn.fetch("SELECT action FROM audit_log ORDER BY id")]
    assert actions.count("submolt.settings") == 2


async def test_settings_errors(client):
    pool = pool_of(client)
    _, owner_key = await create_agent(pool, "owner")
    _, other_key = await create_agent(pool, "other")
    await make_submolt(client, owner_key, "club")
    url = "/api/v1/submolts/club/settings"
    await error_of(await client.patch(url, json={"description": "x"}), 401)
    await error_of(await client.patch(url, headers=auth(other_key), json={"description": "x"}), 403)
    await error_of(await client.patch("/api/v1/submolts/none/settings", headers=auth(owner_key), json={"description": "x"}), 404)
    await error_of(await client.patch(url, headers=auth(owner_key), json={}), 400)
    await error_of(await client.patch(url, headers=auth(owner_key), json={"avatar_url": "javascript:alert(1)"}), 422)
    await error_of(await client.patch(url, headers=auth(owner_key), json={"banner_url": "ftp://x.example/a"}), 422)
    await error_of(await client.patch(url, headers=auth(owner_key), json={"display_name": ""}), 422)
    await error_of(await client.patch(url, headers=auth(owner_key), json={"posting_restricted_to_mods": "yes"}), 422)
    await error_of(await client.patch(url, headers=auth(owner_key), json={"rules": "x" * 10_001}), 422)


# --- subscriptions -------------------------------------------------------------------------------

async def test_subscribe_and_unsubscribe_are_idempotent_and_exact(client):
    pool = pool_of(client)
    _, key = await create_agent(pool)
    url = "/api/v1/submolts/general/subscribe"

    data = await (await client.post(url, headers=auth(key))).json()
    assert data["action"] == "subscribed" and data["subscriber_count"] == 1 and data["is_subscribed"] is True
    data = await (await client.post(url, headers=auth(key))).json()
    assert data["action"] == "already_subscribed" and data["subscriber_count"] == 1

    data = await (await client.delete(url, headers=auth(key))).json()
    assert data["success"] is True and data["action"] == "unsubscribed" and data["subscriber_count"] == 0
    data = await (await client.delete(url, headers=auth(key))).json()
    assert data["action"] == "not_subscribed" and data["subscriber_count"] == 0


async def test_concurrent_subscribes_count_exactly(client):
    pool = pool_of(client)
    keys = [(await create_agent(pool, f"crowd{i}"))[1] for i in range(8)]
    url = "/api/v1/submolts/general/subscribe"
    # Each agent subscribes twice at once: 8 subscribers, not 16.
    resps = await asyncio.gather(*(client.post(url, headers=auth(k)) for k in keys + keys))
    assert all(r.status == 200 for r in resps)
    async with pool.acquire() as conn:
        count, rows = await conn.fetchrow(
            """SELECT s.subscriber_count, (SELECT count(*) FROM subscriptions WHERE submolt_id = s.id)
               FROM submolts s WHERE name = 'general'"""
        )
    assert count == rows == 8


async def test_subscribe_errors(client):
    _, key = await create_agent(pool_of(client))
    await error_of(await client.post("/api/v1/submolts/general/subscribe"), 401)
    await error_of(await client.post("/api/v1/submolts/nowhere/subscribe", headers=auth(key)), 404)
    await error_of(await client.delete("/api/v1/submolts/nowhere/subscribe", headers=auth(key)), 404)


# --- moderators ----------------------------------------------------------------------------------

async def test_owner_adds_and_removes_moderators(client):
    pool = pool_of(client)
    _, owner_key = await create_agent(pool, "owner")
    await create_agent(pool, "Mod_One")
    await make_submolt(client, owner_key, "club")
    url = "/api/v1/submolts/club/moderators"

    resp = await client.post(url, headers=auth(owner_key), json={"agent_name": "mod_one", "role": "moderator"})
    assert resp.status == 200
    data = await resp.json()
    assert data["action"] == "added" and data["moderator"]["name"] == "Mod_One"
    resp = await client.post(url, headers=auth(owner_key), json={"agent_name": "mod_one"})
    assert (await resp.json())["action"] == "unchanged"

    mods = (await (await client.get(url)).json())["moderators"]
    assert [(m["name"], m["role"]) for m in mods] == [("owner", "owner"), ("Mod_One", "moderator")]

    resp = await client.delete(url, headers=auth(owner_key), json={"agent_name": "Mod_One"})
    assert resp.status == 200
    assert [m["name"] for m in (await resp.json())["moderators"]] == ["owner"]
    async with pool.acquire() as conn:
        actions = [r["action"] for r in await conn.fetch("SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["submolt.moderator.add", "submolt.moderator.remove"]


async def test_remove_by_query_parameter_and_stepping_down(client):
    pool = pool_of(client)
    _, owner_key = await create_agent(pool, "owner")
    _, mod_key = await create_agent(pool, "modder")
    _, other_key = await create_agent(pool, "bystander")
    await make_submolt(client, owner_key, "club")
    url = "/api/v1/submolts/club/moderators"
    await client.post(url, headers=auth(owner_key), json={"agent_name": "modder"})
    await client.post(url, headers=auth(owner_key), json={"agent_name": "bystander"})
    # A moderator cannot remove another moderator, but can step down.
    await error_of(await client.delete(url, headers=auth(mod_key), params={"agent_name": "bystander"}), 403)
    resp = await client.delete(url, headers=auth(mod_key), params={"agent_name": "modder"})
    assert resp.status == 200
    assert [m["name"] for m in (await resp.json())["moderators"]] == ["owner", "bystander"]
    await error_of(await client.delete(url, headers=auth(other_key)), 400)


async def test_owner_cannot_be_removed_and_ownership_transfers(client):
    pool = pool_of(client)
    _, owner_key = await create_agent(pool, "owner")
    _, heir_key = await create_agent(pool, "heir")
    await make_submolt(client, owner_key, "club")
    url = "/api/v1/submolts/club/moderators"

    body = await error_of(await client.delete(url, headers=auth(owner_key), json={"agent_name": "owner"}), 403)
    assert "owner" in body["error"] and "role" in body["hint"]

    resp = await client.post(url, headers=auth(owner_key), json={"agent_name": "heir", "role": "owner"})
    assert (await resp.json())["action"] == "transferred"
    mods = {m["name"]: m["role"] for m in (await (await client.get(url)).json())["moderators"]}
    assert mods == {"heir": "owner", "owner": "moderator"}
    # The old owner lost owner powers; the new one has them.
    await error_of(await client.post(url, headers=auth(owner_key), json={"agent_name": "heir"}), 403)
    await error_of(await client.delete(url, headers=auth(owner_key), json={"agent_name": "heir"}), 403)
    resp = await client.delete(url, headers=auth(heir_key), json={"agent_name": "owner"})
    assert resp.status == 200


async def test_moderator_errors(client):
    pool = pool_of(client)
    _, owner_key = await create_agent(pool, "owner")
    _, other_key = await create_agent(pool, "other")
    await make_submolt(client, owner_key, "club")
    url = "/api/v1/submolts/club/moderators"
    await error_of(await client.post(url, json={"agent_name": "other"}), 401)
    await error_of(await client.post(url, headers=auth(other_key), json={"agent_name": "other"}), 403)
    await error_of(await client.post(url, headers=auth(owner_key), json={}), 400)
    await error_of(await client.post(url, headers=auth(owner_key), json={"agent_name": "ghost"}), 404)
    await error_of(await client.post(url, headers=auth(owner_key), json={"agent_name": "other", "role": "admin"}), 422)
    await error_of(await client.post(url, headers=auth(owner_key), json={"agent_name": "owner"}), 409)
    await error_of(await client.post("/api/v1/submolts/none/moderators", headers=auth(owner_key), json={"agent_name": "other"}), 404)
    await error_of(await client.delete(url, headers=auth(owner_key), json={"agent_name": "other"}), 404)  # not a mod
    await error_of(await client.get("/api/v1/submolts/none/moderators"), 404)


async def test_nul_characters_are_refused_not_a_500(client):
    from node.edge.cursors import encode_cursor

    _, key = await create_agent(pool_of(client), "owner")
    await make_submolt(client, key, "club")
    await error_of(await client.post("/api/v1/submolts", headers=auth(key), json={"name": "abc", "description": "x\u0000"}), 422)
    await error_of(await client.get("/api/v1/submolts/gen%00eral"), 404)
    await error_of(await client.post("/api/v1/submolts/club/moderators", headers=auth(key), json={"agent_name": "x\u0000"}), 422)
    await error_of(await client.delete("/api/v1/submolts/club/moderators", headers=auth(key), params={"agent_name": "x\u0000"}), 404)
    cursor = encode_cursor({"sort": "alphabetical", "k": "a\u0000", "id": "00000000-0000-0000-0000-000000000000"})
    await error_of(await client.get("/api/v1/submolts", params={"sort": "alphabetical", "cursor": cursor}), 400)
    huge = encode_cursor({"sort": "popular", "k": 2**62, "id": "00000000-0000-0000-0000-000000000000"})
    resp = await client.get("/api/v1/submolts", params={"sort": "popular", "cursor": huge})
    assert resp.status == 200 and [s["name"] for s in (await resp.json())["submolts"]] == ["club", "general"]
