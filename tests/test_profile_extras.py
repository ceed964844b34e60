"""Issue 17 profile extras: an agent's metadata (PATCH /agents/me) and a submolt's banner and theme colours."""
from __future__ import annotations

import json

import asyncpg

from node.platform.appkeys import POOL
from node.services.profiles import METADATA_MAX_BYTES, METADATA_MAX_DEPTH
from tests.factories import auth, create_agent


def pool_of(client) -> asyncpg.Pool:
    return client.server.app[POOL]


async def assert_error(resp, status, *words):
    assert resp.status == status, await resp.text()
    body = await resp.json()
    assert body["success"] is False and body["error"] and body["hint"], body
    for word in words:
        assert word.lower() in (body["error"] + " " + body["hint"]).lower(), body
    return body


async def stored_metadata(client, agent_id):
    async with pool_of(client).acquire() as conn:
        return await conn.fetchval("SELECT metadata FROM agents WHERE id = $1", agent_id)


# --- agent metadata --------------------------------------------------------------------------------

async def test_metadata_is_stored_and_shown_on_me_and_profile_and_null_clears_it(client):
    agent, key = await create_agent(pool_of(client), "meta_bot")
    other, other_key = await create_agent(pool_of(client), "meta_viewer")
    metadata = {"model": "claude", "tags": ["search", "ocean 🦀"], "links": {"home": "https://example.org"}, "n": 3.5}

    resp = await client.patch("/api/v1/agents/me", headers=auth(key), json={"metadata": metadata})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["agent"]["metadata"] == metadata
    assert await stored_metadata(client, agent.id) == metadata
    me = await (await client.get("/api/v1/agents/me", headers=auth(key))).json()
    assert me["agent"]["metadata"] == metadata
    for headers in ({}, auth(other_key)):  # public: anonymous readers and other agents see it
        profile = await (await client.get("/api/v1/agents/profile?name=META_BOT", headers=headers)).json()
        assert profile["agent"]["metadata"] == metadata
    # Another agent's profile is untouched.
    assert (await (await client.get("/api/v1/agents/profile?name=meta_viewer")).json())["agent"]["metadata"] is None

    # A new object replaces the old one whole (no merge).
    resp = await client.patch("/api/v1/agents/me", headers=auth(key), json={"metadata": {"model": "other"}})
    assert (await resp.json())["agent"]["metadata"] == {"model": "other"}

    resp = await client.patch("/api/v1/agents/me", headers=auth(key), json={"metadata": None})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["agent"]["metadata"] is None
    assert await stored_metadata(client, agent.id) is None
    assert (await (await client.get("/api/v1/agents/profile?name=meta_bot")).json())["agent"]["metadata"] is None


async def test_metadata_and_profile_fields_change_together_and_apart(client):
    agent, key = await create_agent(pool_of(client), "meta_mixed")
    resp = await client.patch("/api/v1/agents/me", headers=auth(key),
                              json={"description": "mixed", "metadata": {"a": 1}, "displayName": "Mixed"})
    got = (await resp.json())["agent"]
    assert (got["description"], got["display_name"], got["metadata"]) == ("mixed", "Mixed", {"a": 1})
    # Profile fields alone leave the metadata as it is, and the other way round.
    got = (await (await client.patch("/api/v1/agents/me", headers=auth(key), json={"description": "d2"})).json())["agent"]
    assert (got["description"], got["metadata"]) == ("d2", {"a": 1})
    got = (await (await client.patch("/api/v1/agents/me", headers=auth(key), json={"metadata": {}})).json())["agent"]
    assert (got["description"], got["display_name"], got["metadata"]) == ("d2", "Mixed", {})


async def test_profile_changes_send_an_update_but_metadata_alone_does_not(client):
    agent, key = await create_agent(pool_of(client), "meta_events")

    async def updates() -> int:
        async with pool_of(client).acquire() as conn:
            return await conn.fetchval(
                "SELECT count(*) FROM outbox_events WHERE kind = 'agent.updated' AND actor_id = $1", agent.id
            )

    await client.patch("/api/v1/agents/me", headers=auth(key), json={"metadata": {"x": 1}})
    assert await updates() == 0
    await client.patch("/api/v1/agents/me", headers=auth(key), json={"description": "new", "metadata": {"x": 2}})
    assert await updates() == 1


def _nested(levels: int) -> dict:
    value: dict = {}
    for _ in range(levels - 1):
        value = {"k": value}
    return value


async def test_bad_metadata_is_a_400_with_a_hint_and_stores_nothing(client):
    agent, key = await create_agent(pool_of(client), "meta_picky")
    await client.patch("/api/v1/agents/me", headers=auth(key), json={"metadata": {"keep": True}})
    big = {"blob": "x" * METADATA_MAX_BYTES}
    cases = [
        ({"metadata": "model=claude"}, "got a string"),
        ({"metadata": ["a", "b"]}, "got an array"),
        ({"metadata": 42}, "got a number"),
        ({"metadata": 4.2}, "got a number"),
        ({"metadata": True}, "got a boolean"),
        ({"metadata": big}, "too large"),
        ({"metadata": {"k": "é" * (METADATA_MAX_BYTES // 2)}}, "too large"),  # bytes, not characters, count
        ({"metadata": _nested(METADATA_MAX_DEPTH + 1)}, "levels deep"),
        ({"metadata": {"a": [[[[["too deep"]]]]]}}, "levels deep"),
        # Valid profile fields beside bad metadata are not stored either.
        ({"description": "must not stay", "metadata": []}, "object"),
    ]
    for body, word in cases:
        await assert_error(await client.patch("/api/v1/agents/me", headers=auth(key), json=body), 400, word)
    # Numbers every JSON reader holds exactly, and finite; PostgreSQL would write 1e163 back as 164 digits.
    for raw in ('{"metadata": {"x": NaN}}', '{"metadata": {"x": Infinity}}', '{"metadata": {"x": 1e999}}',
                '{"metadata": {"x": [1.2e163]}}', '{"metadata": {"x": 52458388119832313856}}',
                '{"metadata": {"x": {"y": -9007199254740992}}}'):
        resp = await client.patch("/api/v1/agents/me", data=raw,
                                  headers={**auth(key), "Content-Type": "application/json"})
        await assert_error(resp, 400, "number", "strings")
    # Tiny numbers are small as sent but written out digit by digit: the stored size is capped too.
    tiny = {f"k{i}": 1e-300 for i in range(40)}
    assert len(json.dumps(tiny)) < METADATA_MAX_BYTES
    await assert_error(await client.patch("/api/v1/agents/me", headers=auth(key),
                                          json={"description": "rolled back", "metadata": tiny}), 400, "as stored")
    # NUL and lone surrogates, in keys or values, are refused before the service (read_json).
    for raw in ('{"metadata": {"x": "a\\u0000b"}}', '{"metadata": {"a\\u0000b": 1}}', '{"metadata": {"x": "\\ud800"}}'):
        resp = await client.patch("/api/v1/agents/me", data=raw,
                                  headers={**auth(key), "Content-Type": "application/json"})
        assert 400 <= resp.status < 500 and (await resp.json())["hint"]
    assert await stored_metadata(client, agent.id) == {"keep": True}
    me = (await (await client.get("/api/v1/agents/me", headers=auth(key))).json())["agent"]
    assert me["description"] == ""


async def test_metadata_at_the_caps_is_accepted(client):
    agent, key = await create_agent(pool_of(client), "meta_edge")
    deep = _nested(METADATA_MAX_DEPTH)
    resp = await client.patch("/api/v1/agents/me", headers=auth(key), json={"metadata": deep})
    assert resp.status == 200, await resp.text()
    filler = METADATA_MAX_BYTES - len(json.dumps({"blob": ""}, separators=(",", ":")))
    exact = {"blob": "x" * filler}
    resp = await client.patch("/api/v1/agents/me", headers=auth(key), json={"metadata": exact})
    assert resp.status == 200, await resp.text()
    assert await stored_metadata(client, agent.id) == exact
    numbers = {"max": 9007199254740991, "min": -9007199254740991, "pi": 3.14159, "tiny": 1e-5, "yes": True}
    resp = await client.patch("/api/v1/agents/me", headers=auth(key), json={"metadata": numbers})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["agent"]["metadata"] == numbers


async def test_patch_me_without_fields_names_metadata_in_its_hint(client):
    _, key = await create_agent(pool_of(client), "meta_empty")
    await assert_error(await client.patch("/api/v1/agents/me", headers=auth(key), json={}), 400, "nothing", "metadata")


async def test_openapi_and_skill_list_metadata(client):
    doc = await (await client.get("/api/v1/openapi.json")).json()
    schema = doc["paths"]["/api/v1/agents/me"]["patch"]["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"]["metadata"]["type"] == ["object", "null"]
    assert {"required": ["metadata"]} in schema["anyOf"]
    skill = await (await client.get("/skill.md")).text()
    entry = skill.split("- `PATCH /agents/me`", 1)[1].split("\n- ", 1)[0]
    assert "`metadata`" in entry and "null clears it" in entry, entry


# --- submolt colours -------------------------------------------------------------------------------

async def stored_colors(client, name):
    async with pool_of(client).acquire() as conn:
        row = await conn.fetchrow("SELECT banner_color, theme_color FROM submolts WHERE name = $1", name)
    return tuple(row) if row else None


async def test_colors_set_on_create_are_stored_and_shown_in_the_submolt_and_lists(client):
    _, key = await create_agent(pool_of(client), "painter")
    resp = await client.post("/api/v1/submolts", headers=auth(key),
                             json={"name": "colourful", "banner_color": " #1A2b3C ", "theme_color": "#f0a"})
    assert resp.status == 201, await resp.text()
    made = (await resp.json())["submolt"]
    assert (made["banner_color"], made["theme_color"]) == ("#1A2b3C", "#f0a")
    assert await stored_colors(client, "colourful") == ("#1A2b3C", "#f0a")

    one = (await (await client.get("/api/v1/submolts/COLOURFUL")).json())["submolt"]
    assert (one["banner_color"], one["theme_color"]) == ("#1A2b3C", "#f0a")
    for sort in ("popular", "new", "alphabetical"):
        listed = (await (await client.get(f"/api/v1/submolts?sort={sort}")).json())["submolts"]
        mine = [s for s in listed if s["name"] == "colourful"]
        assert [(s["banner_color"], s["theme_color"]) for s in mine] == [("#1A2b3C", "#f0a")], sort
    # Submolts in search answers carry them too (the same JSON shape).
    found = await (await client.get("/api/v1/search?q=colourful&type=submolts")).json()
    hits = [r for r in found["results"] if r["type"] == "submolt" and r["name"] == "colourful"]
    assert [(h["banner_color"], h["theme_color"]) for h in hits] == [("#1A2b3C", "#f0a")], found


async def test_colors_default_to_null(client):
    _, key = await create_agent(pool_of(client), "plainer")
    made = (await (await client.post("/api/v1/submolts", headers=auth(key),
                                     json={"name": "plain_sub", "banner_color": "", "theme_color": None})).json())
    assert (made["submolt"]["banner_color"], made["submolt"]["theme_color"]) == (None, None)
    assert await stored_colors(client, "plain_sub") == (None, None)


async def test_settings_set_change_and_clear_colors(client):
    _, key = await create_agent(pool_of(client), "restyler")
    _, other_key = await create_agent(pool_of(client), "bystander")
    await client.post("/api/v1/submolts", headers=auth(key), json={"name": "restyle", "theme_color": "#000"})

    resp = await client.patch("/api/v1/submolts/restyle/settings", headers=auth(key), json={"banner_color": "#ABCDEF"})
    assert resp.status == 200, await resp.text()
    sub = (await resp.json())["submolt"]
    assert (sub["banner_color"], sub["theme_color"]) == ("#ABCDEF", "#000")  # the other colour is left alone
    resp = await client.patch("/api/v1/submolts/restyle/settings", headers=auth(key),
                              json={"theme_color": "#123456", "description": "d"})
    assert (await resp.json())["submolt"]["theme_color"] == "#123456"
    assert await stored_colors(client, "restyle") == ("#ABCDEF", "#123456")

    # Not a moderator: 403, nothing changes.
    resp = await client.patch("/api/v1/submolts/restyle/settings", headers=auth(other_key), json={"theme_color": "#fff"})
    await assert_error(resp, 403, "moderators")
    for clear in (None, ""):
        resp = await client.patch("/api/v1/submolts/restyle/settings", headers=auth(key),
                                  json={"banner_color": clear, "theme_color": clear})
        assert resp.status == 200, await resp.text()
        assert await stored_colors(client, "restyle") == (None, None)


async def test_bad_colors_are_a_400_with_a_hint_and_store_nothing(client):
    _, key = await create_agent(pool_of(client), "badpainter")
    await client.post("/api/v1/submolts", headers=auth(key), json={"name": "keepcolor", "banner_color": "#111"})
    bad = ["red", "#12", "#1234", "#12345", "#1234567", "123456", "#ggg", "# fff", "#fff;", "rgb(1,2,3)",
           "#ff4500\n#fff", "＃fff", "#ｆｆｆ"]
    for value in bad:
        for key_name in ("banner_color", "theme_color"):
            resp = await client.post("/api/v1/submolts", headers=auth(key), json={"name": "never_made", key_name: value})
            await assert_error(resp, 400, "hex colour", "#ff4500")
            resp = await client.patch("/api/v1/submolts/keepcolor/settings", headers=auth(key),
                                      json={key_name: value, "description": "must not stay"})
            await assert_error(resp, 400, "hex colour")
    for value in (123, ["#fff"], {"hex": "#fff"}, True):
        resp = await client.patch("/api/v1/submolts/keepcolor/settings", headers=auth(key), json={"theme_color": value})
        await assert_error(resp, 422, "string")
    assert await stored_colors(client, "never_made") is None
    assert await stored_colors(client, "keepcolor") == ("#111", None)
    sub = (await (await client.get("/api/v1/submolts/keepcolor")).json())["submolt"]
    assert sub["description"] == ""


async def test_openapi_documents_the_colors(client):
    doc = await (await client.get("/api/v1/openapi.json")).json()
    for path, method in (("/api/v1/submolts", "post"), ("/api/v1/submolts/{name}/settings", "patch")):
        props = doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]["properties"]
        for key in ("banner_color", "theme_color"):
            assert "#" in props[key]["pattern"] and props[key]["type"] == ["string", "null"], (path, key)
