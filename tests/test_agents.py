"""/api/v1/agents: registration, status, me, profile, claiming, owner email, key rotation and revocation."""
from __future__ import annotations

import asyncio
import hashlib
import json
import re

import asyncpg
import pytest

from node.app import create_app
from node.platform.appkeys import POOL
from node.services.agents import agent_to_json
from tests.factories import auth, create_agent

KEY_RE = re.compile(r"reef_sk_[A-Za-z0-9_-]{43}")
CODE_RE = re.compile(r"reef-[ABCDEFGHJKMNPQRSTUVWXYZ23456789]{4}")


async def register(client, name="test_agent", **fields):
    return await client.post("/api/v1/agents/register", json={"name": name, "description": "tests", **fields})


async def registered(client, name="test_agent", **fields):
    resp = await register(client, name, **fields)
    assert resp.status == 201, await resp.text()
    return await resp.json()


@pytest.fixture
async def unchecked(aiohttp_client, make_config):
    """A node that stores proof URLs unchecked ([claims] verify_proof = false): for the tests of claiming that are
    not about proofs (those are in test_claim_proof.py), so that no test fetches x.com or example.org."""
    return await aiohttp_client(create_app(make_config(claims={"verify_proof": False})))


async def assert_error(resp, status, *words):
    assert resp.status == status, await resp.text()
    body = await resp.json()
    assert body["success"] is False
    assert body["error"] and body["hint"], body
    for word in words:
        assert word.lower() in (body["error"] + " " + body["hint"]).lower(), body
    return body


def pool_of(client) -> asyncpg.Pool:
    return client.server.app[POOL]


# --- registration --------------------------------------------------------------------------------

async def test_register_returns_both_contracts(client):
    resp = await register(client, "Nemo_1", email="human@example.org")
    assert resp.status == 201
    body = await resp.json()
    agent = body["agent"]
    assert body["success"] is True
    assert set(agent) >= {"id", "name", "api_key", "claim_url", "verification_code", "profile_url", "created_at"}
    assert agent["name"] == "Nemo_1"
    assert KEY_RE.fullmatch(agent["api_key"])
    assert CODE_RE.fullmatch(agent["verification_code"])
    assert re.fullmatch(r"http://127\.0\.0\.1:8080/claim/[A-Za-z0-9_-]{20,}", agent["claim_url"])
    assert agent["profile_url"] == "http://127.0.0.1:8080/u/Nemo_1"
    assert "SAVE YOUR API KEY" in body["important"]
    # the seed's fields, at the top level
    assert body["agent_id"] == agent["id"]
    assert body["api_key"] == agent["api_key"]
    assert body["verification_url"] == agent["claim_url"]
    # Moltbook's onboarding fields (moltbook-sdk reads them): the welcome, the post to make, the steps.
    assert "Nemo_1" in body["message"]
    assert agent["verification_code"] in body["tweet_template"] and '"Nemo_1"' in body["tweet_template"]
    steps = body["setup"]
    assert list(steps) == ["step_1", "step_2", "step_3"] and steps["step_1"]["critical"] is True
    assert agent["claim_url"] in steps["step_2"]["details"] and "/agents/status" in steps["step_3"]["details"]
    me = await client.get("/api/v1/agents/me", headers=auth(agent["api_key"]))
    assert me.status == 200
    me_body = await me.json()
    assert me_body["agent"]["name"] == "Nemo_1"
    assert me_body["agent"]["email"] == "human@example.org"
    assert me_body["agent"]["status"] == "pending_claim"


async def test_database_holds_only_the_hash_of_the_key(client):
    body = await registered(client, "hashed")
    key = body["api_key"]
    async with pool_of(client).acquire() as conn:
        row = await conn.fetchrow("SELECT key_hash, prefix FROM api_keys")
        assert bytes(row["key_hash"]) == hashlib.sha256(key.encode()).digest()
        assert key.startswith(row["prefix"]) and len(row["prefix"]) < len(key) - 30
        # the key appears nowhere in the database: not in any table's text
        for table in ("agents", "api_keys", "audit_log"):
            dump = await conn.fetchval(f"SELECT coalesce(string_agg(t::text, ' '), '') FROM {table} t")
            assert key not in dump and key[8:] not in dump, table
        actions = [r["action"] for r in await conn.fetch("SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["agent.register", "key.create"]


async def test_register_bad_json_is_400(client):
    resp = await client.post("/api/v1/agents/register", data=b"{name: nope", headers={"Content-Type": "application/json"})
    await assert_error(resp, 400, "json")


async def test_register_body_not_an_object_is_400(client):
    resp = await client.post("/api/v1/agents/register", json=["name"])
    await assert_error(resp, 400, "object")


async def test_register_missing_name_is_400(client):
    resp = await client.post("/api/v1/agents/register", json={"description": "no name"})
    await assert_error(resp, 400, "name")


@pytest.mark.parametrize(
    "fields, word",
    [
        ({"name": 123}, "string"),
        ({"name": ["x"]}, "string"),
        ({"name": "okname", "description": 5}, "description"),
        ({"name": "okname", "description": "x" * 501}, "too long"),
        ({"name": "okname", "email": "not-an-email"}, "email"),
        ({"name": "okname", "email": True}, "string"),
    ],
)
async def test_register_wrong_types_are_422(client, fields, word):
    resp = await client.post("/api/v1/agents/register", json=fields)
    await assert_error(resp, 422, word)


@pytest.mark.parametrize(
    "name, word",
    [
        ("a", "2-32"),
        ("x" * 33, "2-32"),
        ("has space", "not allowed"),
        ("dots.are.bad", "not allowed"),
        ("émile", "not allowed"),
        ("Admin", "reserved"),
        ("me", "reserved"),
        ("REEF", "reserved"),
        ("settings", "reserved"),
        ("profile", "reserved"),
    ],
)
async def test_register_invalid_names_are_422(client, name, word):
    resp = await register(client, name)
    await assert_error(resp, 422, word)
    async with pool_of(client).acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM agents") == 0


async def test_register_taken_name_in_other_case_is_409(client):
    await registered(client, "CoralBot")
    resp = await register(client, "coralbot")
    body = await assert_error(resp, 409, "taken")
    assert "case" in body["hint"]


async def test_register_oversized_body_is_413(aiohttp_client, make_config):
    client = await aiohttp_client(create_app(make_config(limits={"max_body_bytes": 1000})))
    resp = await register(client, "big", description="x" * 2000)
    await assert_error(resp, 413, "1000")


async def test_register_wrong_content_type_is_415(client):
    resp = await client.post("/api/v1/agents/register", data="name=x", headers={"Content-Type": "application/x-www-form-urlencoded"})
    await assert_error(resp, 415, "application/json")


async def test_registrations_closed_is_403(aiohttp_client, make_config):
    client = await aiohttp_client(create_app(make_config(node={"registrations_open": False})))
    resp = await register(client, "late")
    await assert_error(resp, 403, "closed")


async def test_registrations_per_hour_limit_is_429(aiohttp_client, make_config):
    client = await aiohttp_client(create_app(make_config(limits={"registrations_per_hour": 2})))
    await registered(client, "first")
    assert (await register(client, "FIRST")).status == 409  # refunded: a taken name costs nothing
    await registered(client, "second")
    resp = await register(client, "third")
    body = await assert_error(resp, 429, "registrations")
    assert int(resp.headers["Retry-After"]) >= 1
    assert body["retry_after_seconds"] >= 1 and body["retryAfter"] == body["retry_after_seconds"]
    # invalid bodies do not spend the budget of the address
    assert (await register(client, "x")).status == 422


async def test_simultaneous_registrations_of_one_name(client):
    statuses = sorted(r.status for r in await asyncio.gather(register(client, "Twin"), register(client, "twin")))
    assert statuses == [201, 409]


async def test_unique_violation_at_insert_is_409_not_500(client, database_url):
    """The name is free when checked but taken at insert (another transaction): 409."""
    other = await asyncpg.connect(database_url)
    # A connection outside any transaction: pg_stat_activity is a per-transaction snapshot.
    watcher = await asyncpg.connect(database_url)
    try:
        tx = other.transaction()
        await tx.start()
        await other.execute("INSERT INTO agents (name, display_name) VALUES ('Racer', 'Racer')")
        task = asyncio.ensure_future(register(client, "racer"))
        # wait until the registration's INSERT is blocked on our uncommitted row
        while not await watcher.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ):
            assert not task.done(), await task.result().text()
            await asyncio.sleep(0.01)
        await tx.commit()
        await assert_error(await task, 409, "taken")
    finally:
        await watcher.close()
        await other.close()


# --- authentication ------------------------------------------------------------------------------

async def test_unauthenticated_me_is_401(client):
    await assert_error(await client.get("/api/v1/agents/me"), 401, "api key")


async def test_bad_key_is_401(client):
    resp = await client.get("/api/v1/agents/me", headers=auth("reef_sk_" + "x" * 43))
    await assert_error(resp, 401, "invalid")


async def test_malformed_authorization_is_401(client):
    resp = await client.get("/api/v1/agents/me", headers={"Authorization": "Basic abc"})
    await assert_error(resp, 401, "bearer")


async def test_x_api_key_header_works(client):
    _, key = await create_agent(pool_of(client), "headerbot")
    resp = await client.get("/api/v1/agents/me", headers={"X-API-Key": key})
    assert resp.status == 200
    assert (await resp.json())["agent"]["name"] == "headerbot"


async def test_expired_key_is_401(client):
    agent, key = await create_agent(pool_of(client), "expiring")
    async with pool_of(client).acquire() as conn:
        await conn.execute("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE agent_id = $1", agent.id)
    await assert_error(await client.get("/api/v1/agents/me", headers=auth(key)), 401, "expired")


async def test_suspended_agent_is_403(client):
    agent, key = await create_agent(pool_of(client), "naughty")
    async with pool_of(client).acquire() as conn:
        await conn.execute("UPDATE agents SET status = 'suspended' WHERE id = $1", agent.id)
    await assert_error(await client.get("/api/v1/agents/me", headers=auth(key)), 403, "suspended")


# --- status, me, profile -------------------------------------------------------------------------

async def test_status_pending_then_claimed(unchecked):
    client = unchecked
    body = await registered(client, "claimable")
    key, code = body["api_key"], body["agent"]["verification_code"]
    resp = await client.get("/api/v1/agents/status", headers=auth(key))
    assert resp.status == 200
    status = await resp.json()
    assert status["status"] == "pending_claim" and status["claimed_at"] is None
    assert status["agent"]["name"] == "claimable"
    assert status["claim_url"] == body["agent"]["claim_url"]
    resp = await client.post(
        "/api/v1/agents/verify", headers=auth(key),
        json={"claim_code": code.lower(), "proof_url": "https://x.com/coral_human/status/123"},
    )
    assert resp.status == 200, await resp.text()
    claimed = await resp.json()
    assert claimed["agent"]["is_claimed"] is True
    assert claimed["agent"]["owner"]["x_handle"] == "coral_human"
    status = await (await client.get("/api/v1/agents/status", headers=auth(key))).json()
    assert status["status"] == "claimed" and status["claimed_at"]
    assert "claim_url" not in status


async def test_unauthenticated_status_is_401(client):
    await assert_error(await client.get("/api/v1/agents/status"), 401)


async def test_patch_me_updates_profile(client):
    _, key = await create_agent(pool_of(client), "patchy")
    resp = await client.patch(
        "/api/v1/agents/me", headers=auth(key),
        json={"description": "  I patch things ", "display_name": "Patchy McPatch", "avatar_url": "https://img.example/p.png"},
    )
    assert resp.status == 200, await resp.text()
    agent = (await resp.json())["agent"]
    assert (agent["description"], agent["display_name"], agent["avatar_url"]) == (
        "I patch things", "Patchy McPatch", "https://img.example/p.png"
    )
    resp = await client.patch("/api/v1/agents/me", headers=auth(key), json={"avatar_url": None, "display_name": ""})
    agent = (await resp.json())["agent"]
    assert agent["avatar_url"] is None and agent["display_name"] == "patchy"
    assert agent["description"] == "I patch things"


@pytest.mark.parametrize(
    "fields, status, word",
    [
        ({"avatar_url": "ftp://example.org/a.png"}, 422, "http"),
        ({"avatar_url": "javascript:alert(1)"}, 422, "http"),
        ({"avatar_url": 7}, 422, "string"),
        ({"display_name": "d" * 65}, 422, "too long"),
        ({"description": "d" * 501}, 422, "too long"),
        ({"description": {"x": 1}}, 422, "string"),
        ({}, 400, "nothing"),
        ({"karma": 1000}, 400, "nothing"),
    ],
)
async def test_patch_me_rejects_bad_fields(client, fields, status, word):
    _, key = await create_agent(pool_of(client), "picky")
    await assert_error(await client.patch("/api/v1/agents/me", headers=auth(key), json=fields), status, word)


async def test_patch_me_unauthenticated_is_401(client):
    await assert_error(await client.patch("/api/v1/agents/me", json={"description": "x"}), 401)


async def _seed_activity(pool, author_id):
    async with pool.acquire() as conn:
        sub = await conn.fetchval(
            "INSERT INTO submolts (name, display_name) VALUES ('profile_sub', 'Profile Sub') RETURNING id"
        )
        posts = []
        for i in range(7):
            posts.append(await conn.fetchval(
                """INSERT INTO posts (submolt_id, author_id, title, content, created_at, is_deleted)
                   VALUES ($1, $2, $3, 'body', now() - make_interval(mins => $4), $5) RETURNING id""",
                sub, author_id, f"post {i}", 60 - i, i == 6,
            ))
        for i in range(6):
            await conn.execute(
                """INSERT INTO comments (post_id, author_id, content, created_at, is_removed)
                   VALUES ($1, $2, $3, now() - make_interval(mins => $4), $5)""",
                posts[0], author_id, f"comment {i}", 30 - i, i == 5,
            )


async def test_profile_with_activity_and_owner(unchecked):
    client = unchecked
    pool = pool_of(client)
    body = await registered(client, "Famous")
    viewer, viewer_key = await create_agent(pool, "fan")
    async with pool.acquire() as conn:
        author = await conn.fetchval("SELECT id FROM agents WHERE name = 'Famous'")
        await conn.execute("INSERT INTO follows (follower_id, followee_id) VALUES ($1, $2)", viewer.id, author)
    await _seed_activity(pool, author)
    resp = await client.get("/api/v1/agents/profile", params={"name": "famous"}, headers=auth(viewer_key))
    assert resp.status == 200
    data = await resp.json()
    agent = data["agent"]
    assert agent["name"] == "Famous"
    for key in ("karma", "follower_count", "following_count", "posts_count", "comments_count", "is_claimed"):
        assert key in agent
    assert agent["owner"] is None and agent["is_claimed"] is False
    assert "email" not in agent and "api_key" not in agent
    assert data["is_following"] is True
    assert [p["title"] for p in data["recentPosts"]] == ["post 5", "post 4", "post 3", "post 2", "post 1"]
    assert data["recentPosts"][0]["submolt"]["name"] == "profile_sub"
    assert [c["content"] for c in data["recentComments"]] == [f"comment {i}" for i in (4, 3, 2, 1, 0)]
    assert data["recentComments"][0]["post_title"] == "post 0"

    await client.post(
        "/api/v1/agents/verify", headers=auth(body["api_key"]),
        json={"claim_code": body["agent"]["verification_code"], "proof_url": "https://blog.example.org/my-agent"},
    )
    data = await (await client.get("/api/v1/agents/profile?name=Famous")).json()
    assert data["agent"]["is_claimed"] is True
    assert data["agent"]["owner"]["display_name"] == "blog.example.org"
    assert data["is_following"] is False  # anonymous viewer


async def test_profile_unknown_is_404_and_missing_name_400(client):
    await assert_error(await client.get("/api/v1/agents/profile?name=nobody"), 404, "nobody")
    await assert_error(await client.get("/api/v1/agents/profile"), 400, "name")


async def test_agent_to_json_public_and_private(client):
    agent, _ = await create_agent(pool_of(client), "shape")
    public = agent_to_json(agent)
    assert set(public) == {
        "id", "name", "display_name", "description", "avatar_url", "karma", "follower_count",
        "following_count", "is_claimed", "created_at", "last_active", "is_local", "domain",
    }
    private = agent_to_json(agent, private=True)
    assert set(private) - set(public) == {"status", "email", "claimed_at", "posts_count", "comments_count", "updated_at"}


# --- claiming ------------------------------------------------------------------------------------

async def test_verify_errors(unchecked):
    client = unchecked
    body = await registered(client, "verifyme")
    key, code = body["api_key"], body["agent"]["verification_code"]
    proof = "https://example.org/proof"
    url = "/api/v1/agents/verify"
    await assert_error(await client.post(url, headers=auth(key), json={"claim_code": "reef-ZZZZ" if code != "reef-ZZZZ" else "reef-YYYY", "proof_url": proof}), 400, "wrong")
    await assert_error(await client.post(url, headers=auth(key), json={"proof_url": proof}), 400, "claim_code")
    await assert_error(await client.post(url, headers=auth(key), json={"claim_code": code, "proof_url": "file:///etc/passwd"}), 422, "http")
    await assert_error(await client.post(url, headers=auth(key), json={"claim_code": code}), 400, "proof_url")
    await assert_error(await client.post(url, json={"claim_code": code, "proof_url": proof}), 401, "claim_token")
    await assert_error(await client.post(url, json={"claim_code": code, "proof_url": proof, "claim_token": "nope"}), 404, "claim")
    assert (await client.post(url, headers=auth(key), json={"claim_code": code, "proof_url": proof})).status == 200
    await assert_error(await client.post(url, headers=auth(key), json={"claim_code": code, "proof_url": proof}), 409, "already")


async def test_verify_with_claim_token_needs_no_key(unchecked):
    client = unchecked
    body = await registered(client, "webclaim", email="owner@example.org")
    token = body["agent"]["claim_url"].rsplit("/", 1)[1]
    resp = await client.post(
        "/api/v1/agents/verify",
        json={"claim_token": token, "verification_code": body["agent"]["verification_code"], "proof_url": "https://twitter.com/hooman/status/1"},
    )
    assert resp.status == 200, await resp.text()
    async with pool_of(client).acquire() as conn:
        row = await conn.fetchrow(
            """SELECT a.status, a.proof_url, o.x_handle, o.email FROM agents a JOIN owners o ON o.id = a.owner_id
               WHERE a.name = 'webclaim'"""
        )
        audit = await conn.fetchrow("SELECT actor, action FROM audit_log WHERE action = 'agent.claim'")
    assert dict(row) == {"status": "claimed", "proof_url": "https://twitter.com/hooman/status/1", "x_handle": "hooman", "email": "owner@example.org"}
    assert dict(audit) == {"actor": "claim_token", "action": "agent.claim"}


# --- owner email ---------------------------------------------------------------------------------

async def test_setup_owner_email(client):
    agent, key = await create_agent(pool_of(client), "mailer")
    url = "/api/v1/agents/me/setup-owner-email"
    resp = await client.post(url, headers=auth(key), json={"email": "boss@example.org"})
    assert resp.status == 200
    assert (await resp.json())["email"] == "boss@example.org"
    async with pool_of(client).acquire() as conn:
        assert await conn.fetchval("SELECT email FROM agents WHERE id = $1", agent.id) == "boss@example.org"
    await assert_error(await client.post(url, headers=auth(key), json={"email": "boss at example"}), 422, "email")
    await assert_error(await client.post(url, headers=auth(key), json={"email": 5}), 422, "string")
    await assert_error(await client.post(url, headers=auth(key), json={}), 400, "email")
    await assert_error(await client.post(url, json={"email": "boss@example.org"}), 401)


# --- keys ----------------------------------------------------------------------------------------

async def test_rotate_key_revokes_old_keys(client):
    pool = pool_of(client)
    agent, old = await create_agent(pool, "rotator")
    async with pool.acquire() as conn:  # a second, older key that must also die
        from node.services.apikeys import hash_key
        await conn.execute("INSERT INTO api_keys (agent_id, key_hash, prefix) VALUES ($1, $2, 'reef_sk_other')",
                           agent.id, hash_key("reef_sk_other_key"))
    resp = await client.post("/api/v1/agents/me/rotate-key", headers=auth(old))
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    new = body["api_key"]
    assert KEY_RE.fullmatch(new) and new != old
    assert body["revoked_keys"] == 2 and body["expires_at"] is None
    await assert_error(await client.get("/api/v1/agents/me", headers=auth(old)), 401, "revoked")
    assert (await client.get("/api/v1/agents/me", headers=auth(new))).status == 200
    async with pool.acquire() as conn:
        live = await conn.fetchval("SELECT count(*) FROM api_keys WHERE agent_id = $1 AND revoked_at IS NULL", agent.id)
        audit = await conn.fetchrow("SELECT actor, action, details FROM audit_log WHERE action = 'key.rotate'")
    assert live == 1
    assert audit["actor"] == f"agent:{agent.id}" and audit["details"]["revoked"] == 2


async def test_rotate_key_with_expiry(client):
    _, key = await create_agent(pool_of(client), "expirer")
    resp = await client.post("/api/v1/agents/me/rotate-key", headers=auth(key), json={"expires_in_days": 7})
    assert resp.status == 200
    assert (await resp.json())["expires_at"]


@pytest.mark.parametrize("days, status", [(0, 422), (5000, 422), ("7", 422), (1.5, 422)])
async def test_rotate_key_bad_expiry(client, days, status):
    _, key = await create_agent(pool_of(client), "badexpiry")
    resp = await client.post("/api/v1/agents/me/rotate-key", headers=auth(key), json={"expires_in_days": days})
    await assert_error(resp, status, "expires_in_days")
    assert (await client.get("/api/v1/agents/me", headers=auth(key))).status == 200  # nothing was rotated


async def test_rotate_key_unauthenticated_is_401(client):
    await assert_error(await client.post("/api/v1/agents/me/rotate-key"), 401)


async def test_revoke_key(client):
    pool = pool_of(client)
    agent, key = await create_agent(pool, "revoker")
    resp = await client.post("/api/v1/agents/me/revoke-key", headers={"X-API-Key": key})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["revoked"]["prefix"] == key[:14]
    await assert_error(await client.get("/api/v1/agents/me", headers=auth(key)), 401, "revoked")
    await assert_error(await client.post("/api/v1/agents/me/revoke-key", headers=auth(key)), 401, "revoked")
    async with pool.acquire() as conn:
        audit = await conn.fetchrow("SELECT actor, action, target FROM audit_log WHERE action = 'key.revoke'")
    assert dict(audit) == {"actor": f"agent:{agent.id}", "action": "key.revoke", "target": "revoker"}


async def test_registered_responses_are_json_serialisable(client):
    body = await registered(client, "serial")
    assert json.loads(json.dumps(body)) == body
