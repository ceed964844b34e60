"""Collaboration posts (named collaborators confirm or decline; only confirmed ones show) and collaboration
credits (contributions verified by trusted agents of other humans), issue 11 items 1 and 2."""
from __future__ import annotations

import uuid
from typing import Any

import pytest

from node.app import create_app
from node.platform.appkeys import POOL
from tests.factories import auth, create_agent
from tests.test_reputation import call, give_owner, recompute

RELAXED = {"post_interval_seconds": 0, "new_agent_post_interval_seconds": 0}


@pytest.fixture
async def api(aiohttp_client, make_config):
    return await aiohttp_client(create_app(make_config(limits=RELAXED, reputation={"recompute_seconds": 0})))


async def new_post(client, key: str, collaborators: list[str], status: int = 201) -> dict[str, Any]:
    body = {"submolt_name": "general", "title": "Our parser", "content": "We wrote it together.",
            "collaborators": collaborators}
    return await call(client, "POST", "/api/v1/posts", status, json=body, headers=auth(key))


async def shown(client, post_id: str) -> list[str]:
    post = (await call(client, "GET", f"/api/v1/posts/{post_id}"))["post"]
    return [c["name"] for c in post["collaborators"]]


async def answer(client, key: str, post_id: str, verb: str, status: int = 200) -> dict[str, Any]:
    return await call(client, "POST", f"/api/v1/posts/{post_id}/collaboration/{verb}", status, headers=auth(key))


async def test_named_collaborators_are_asked_and_only_confirmed_ones_show(api):
    pool = api.server.app[POOL]
    _, kl = await create_agent(pool, "lead")
    _, ka = await create_agent(pool, "alice")
    _, kb = await create_agent(pool, "bob")
    _, kc = await create_agent(pool, "carol")
    post = (await new_post(api, kl, ["alice", "bob"]))["post"]
    assert post["collaborators"] == []
    for key in (ka, kb):
        notes = (await call(api, "GET", "/api/v1/notifications", headers=auth(key)))["notifications"]
        asked = [n for n in notes if n["kind"] == "collaboration_request"]
        assert len(asked) == 1 and asked[0]["post_id"] == post["id"] and "confirm" in asked[0]["content"]
    listed = await call(api, "GET", f"/api/v1/posts/{post['id']}/collaboration")
    assert [(c["agent"]["name"], c["status"]) for c in listed["collaborators"]] == [("alice", "pending"), ("bob", "pending")]
    assert listed["is_collaboration"] is True

    assert (await answer(api, ka, post["id"], "confirm"))["action"] == "confirmed"
    assert (await answer(api, ka, post["id"], "confirm"))["action"] == "unchanged"
    assert (await answer(api, kb, post["id"], "decline"))["action"] == "declined"
    assert await shown(api, post["id"]) == ["alice"]
    lead_notes = (await call(api, "GET", "/api/v1/notifications", headers=auth(kl)))["notifications"]
    assert [n["kind"] for n in lead_notes].count("collaboration_confirmed") == 1
    await answer(api, kc, post["id"], "confirm", 404)  # not named
    await answer(api, ka, str(uuid.uuid4()), "confirm", 404)
    # Changing one's mind: bob confirms after all, alice withdraws; the order stays the author's.
    await answer(api, kb, post["id"], "confirm")
    assert await shown(api, post["id"]) == ["alice", "bob"]
    await answer(api, ka, post["id"], "decline")
    assert await shown(api, post["id"]) == ["bob"]


async def test_an_agent_who_blocked_the_author_cannot_be_named(api):
    pool = api.server.app[POOL]
    lead, kl = await create_agent(pool, "lead")
    _, kb = await create_agent(pool, "bob")
    conv = await call(api, "POST", "/api/v1/agents/dm/request", 201, json={"to": "bob", "message": "hi"}, headers=auth(kl))
    await call(api, "POST", f"/api/v1/agents/dm/requests/{conv['conversation_id']}/reject", json={"block": True},
               headers=auth(kb))
    before = await pool.fetchval("SELECT count(*) FROM posts")
    body = await new_post(api, kl, ["bob"], 403)
    assert "blocked" in body["error"] and body["hint"]
    body = await new_post(api, kl, ["nobody_here"], 422)
    assert "nobody_here" in body["error"] and "name@host" in body["hint"]
    assert await pool.fetchval("SELECT count(*) FROM posts") == before
    assert await pool.fetchval("SELECT count(*) FROM post_collaborators") == 0


async def _collaboration(api) -> tuple[dict, str, str, str]:
    """A post by lead with alice confirmed: (post, lead's key, alice's key, alice's name)."""
    pool = api.server.app[POOL]
    _, kl = await create_agent(pool, "lead")
    _, ka = await create_agent(pool, "alice")
    post = (await new_post(api, kl, ["alice"]))["post"]
    await answer(api, ka, post["id"], "confirm")
    return post, kl, ka, "alice"


async def contribute(api, key: str, post_id: str, kind: str = "code", status: int = 201, **extra: Any) -> dict:
    body = {"post_id": post_id, "contribution_type": kind, "description": "Wrote the tokenizer", **extra}
    return await call(api, "POST", "/api/v1/collaborations", status, json=body, headers=auth(key))


async def test_contributions_earn_credits_from_trusted_verifiers_of_other_humans(api):
    pool = api.server.app[POOL]
    post, kl, ka, _ = await _collaboration(api)
    alice = await pool.fetchrow("SELECT id FROM agents WHERE name = 'alice'")
    k = (await contribute(api, ka, post["id"]))["contribution"]
    assert (k["contribution_type"], k["credits_earned"], k["verified"]) == ("code", 0, False)
    again = await contribute(api, ka, post["id"], status=200)
    assert again["contribution"]["id"] == k["id"]
    await contribute(api, kl, post["id"], "review")  # the author may too
    v1, k1 = await create_agent(pool, "verifier_one")
    v2, k2 = await create_agent(pool, "verifier_two")
    twin, kt = await create_agent(pool, "alice_twin")
    outsider, ko = await create_agent(pool, "outsider")
    await give_owner(pool, v1)
    await give_owner(pool, v2)
    alice_agent = await pool.fetchrow("SELECT * FROM agents WHERE id = $1", alice["id"])
    assert alice_agent is not None
    from node.stores import agents as agents_store
    async with pool.acquire() as conn:  # alice and her twin share one human
        owner = await agents_store.insert_owner(conn, display_name="h", x_handle=None, email=None, proof_url=None)
        for agent_id in (alice["id"], twin.id):
            await agents_store.mark_claimed(conn, agent_id, None, owner.id)
    await recompute(api)
    url = f"/api/v1/collaborations/{k['id']}/verify"

    # Refusals change nothing.
    await contribute(api, ko, post["id"], status=403)  # not a collaborator
    body = await contribute(api, ka, post["id"], "poetry", status=422)
    assert "code" in body["hint"]
    await call(api, "POST", url, 400, json={}, headers=auth(ka))  # one's own
    body = await call(api, "POST", url, 403, json={}, headers=auth(kt))  # same human
    assert "same human" in body["error"]
    await call(api, "POST", f"/api/v1/collaborations/{uuid.uuid4()}/verify", 404, json={}, headers=auth(k1))

    first = await call(api, "POST", url, json={"note": "ran its tests"}, headers=auth(k1))
    assert first["weight"] > 0 and first["contribution"]["credits_earned"] == 0  # one human is not enough
    await call(api, "POST", url, 409, json={}, headers=auth(k1))
    second = await call(api, "POST", url, json={}, headers=auth(k2))
    done = second["contribution"]
    assert done["verified"] is True and done["verifications"] == 2
    expected = 10.0 * min(1.0, (first["weight"] + second["weight"]) / 2)
    assert done["credits_earned"] == pytest.approx(expected, abs=1e-3) and done["credits_earned"] > 0
    rep = (await call(api, "GET", "/api/v1/agents/alice/reputation"))["reputation"]
    assert rep["collaboration_credits"] == pytest.approx(expected, abs=1e-3)
    board = await call(api, "GET", "/api/v1/agents/leaderboard?by=credits")
    assert board["agents"][0]["name"] == "alice"

    mine = await call(api, "GET", "/api/v1/collaborations?agent=alice")
    assert [c["id"] for c in mine["contributions"]] == [k["id"]]
    on_post = await call(api, "GET", f"/api/v1/collaborations?post_id={post['id']}&limit=1")
    assert len(on_post["contributions"]) == 1 and on_post["has_more"] is True
    rest = await call(api, "GET", f"/api/v1/collaborations?post_id={post['id']}&limit=1&cursor={on_post['next_cursor']}")
    assert len(rest["contributions"]) == 1 and rest["has_more"] is False
    assert {c["id"] for c in on_post["contributions"] + rest["contributions"]} == {
        r["id"] for r in (await call(api, "GET", f"/api/v1/posts/{post['id']}/collaboration"))["contributions"]}
    await call(api, "GET", "/api/v1/collaborations", 400)
    await call(api, "GET", "/api/v1/collaborations?agent=ghost", 404)


async def test_a_ring_of_untrusted_verifiers_earns_nothing(api):
    pool = api.server.app[POOL]
    post, _, ka, _ = await _collaboration(api)
    k = (await contribute(api, ka, post["id"]))["contribution"]
    ring = [await create_agent(pool, f"sock_{i}") for i in range(10)]
    await recompute(api)  # nobody trusted them: trust 0
    for _, key in ring:
        await call(api, "POST", f"/api/v1/collaborations/{k['id']}/verify", json={}, headers=auth(key))
    got = (await call(api, "GET", f"/api/v1/posts/{post['id']}/collaboration"))["contributions"][0]
    assert got["verifications"] == 10 and got["verified"] is True and got["credits_earned"] == 0
    rep = (await call(api, "GET", "/api/v1/agents/alice/reputation"))["reputation"]
    assert rep["collaboration_credits"] == 0
