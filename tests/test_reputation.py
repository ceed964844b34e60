"""Reputation: attestations (rules, idempotent repeat, withdrawal, same owner, daily limit), the trust job
(sybil resistance, same-owner collapse, split trust), the reputation and leaderboard endpoints."""
from __future__ import annotations

from typing import Any

from node.platform.appkeys import CONFIG, POOL
from node.services.trust import recompute_trust
from node.stores import agents as agents_store
from tests.factories import auth, create_agent


async def call(client, method: str, url: str, status: int = 200, **kw: Any) -> dict[str, Any]:
    resp = await client.request(method, url, **kw)
    body = await resp.json()
    assert resp.status == status, body
    return body


async def attest(client, key: str, name: str, statement: str = "Solid work", topic: str | None = None, status: int = 200):
    body: dict[str, Any] = {"statement": statement}
    if topic is not None:
        body["topic"] = topic
    return await call(client, "POST", f"/api/v1/agents/{name}/attest", status, json=body, headers=auth(key))


async def give_owner(pool, *agents) -> None:
    """One human owner (a claim) for all of the agents."""
    async with pool.acquire() as conn:
        owner = await agents_store.insert_owner(conn, display_name="h", x_handle=None, email=None, proof_url=None)
        for agent in agents:
            await agents_store.mark_claimed(conn, agent.id, None, owner.id)


async def trust_of(client, name: str) -> float:
    return (await call(client, "GET", f"/api/v1/agents/{name}/reputation"))["reputation"]["trust"]


async def recompute(client) -> dict[str, float]:
    stats = await recompute_trust(client.server.app[POOL], client.server.app[CONFIG].reputation)
    assert stats is not None
    return stats


async def test_attest_is_idempotent_editable_and_withdrawable(client):
    pool = client.server.app[POOL]
    _, key = await create_agent(pool, "giver")
    await create_agent(pool, "Taker")

    body = await attest(client, key, "taker", "Fixed my parser", topic="Python")
    assert body["action"] == "attested" and body["attestation"]["topic"] == "python"
    assert (await attest(client, key, "TAKER", "Fixed my parser", topic="python"))["action"] == "unchanged"
    assert (await attest(client, key, "taker", "Fixed my parser, twice", topic="python"))["action"] == "updated"
    assert (await attest(client, key, "taker", "Kind and careful"))["action"] == "attested"  # general topic
    assert await pool.fetchval("SELECT count(*) FROM attestations") == 2
    assert await pool.fetchval("SELECT count(*) FROM attestation_log") == 2  # the edit did not count

    listed = await call(client, "GET", "/api/v1/agents/taker/attestations")
    assert {(a["topic"], a["statement"]) for a in listed["attestations"]} == {
        ("python", "Fixed my parser, twice"), (None, "Kind and careful")}
    assert listed["attestations"][0]["attester"]["name"] == "giver"
    rep = (await call(client, "GET", "/api/v1/agents/taker/reputation"))["reputation"]
    assert rep["value_attestations"] == 2 and rep["collaboration_credits"] == 0

    body = await call(client, "DELETE", "/api/v1/agents/taker/attest?topic=python", headers=auth(key))
    assert body["action"] == "withdrawn"
    assert (await call(client, "DELETE", "/api/v1/agents/taker/attest?topic=python", headers=auth(key)))["action"] == "not_attested"
    assert (await call(client, "GET", "/api/v1/agents/taker/reputation"))["reputation"]["value_attestations"] == 1
    assert [a["topic"] for a in (await call(client, "GET", "/api/v1/agents/taker/attestations"))["attestations"]] == [None]


async def test_bad_attestations_are_refused_and_change_nothing(client):
    pool = client.server.app[POOL]
    me, key = await create_agent(pool, "me")
    await create_agent(pool, "other")
    cases = [
        ("/api/v1/agents/nobody/attest", {"statement": "x"}, 404),
        ("/api/v1/agents/me/attest", {"statement": "x"}, 400),
        ("/api/v1/agents/other/attest", {}, 400),
        ("/api/v1/agents/other/attest", {"statement": "   "}, 400),
        ("/api/v1/agents/other/attest", {"statement": 5}, 422),
        ("/api/v1/agents/other/attest", {"statement": "x" * 501}, 422),
        ("/api/v1/agents/other/attest", {"statement": "x", "topic": "t" * 51}, 422),
        ("/api/v1/agents/other/attest", {"statement": "x", "topic": "<script>"}, 422),
    ]
    for url, body, status in cases:
        answer = await call(client, "POST", url, status, json=body, headers=auth(key))
        assert answer["success"] is False and answer["hint"], (url, body)
    assert (await call(client, "POST", "/api/v1/agents/other/attest", 401, json={"statement": "x"}))["hint"]
    assert (await call(client, "POST", "/api/v1/agents/other/attest", 400, data="{", headers={
        **auth(key), "Content-Type": "application/json"}))["hint"]
    assert (await call(client, "DELETE", "/api/v1/agents/nobody/attest", 404, headers=auth(key)))["hint"]
    assert (await call(client, "GET", "/api/v1/agents/nobody/attestations", 404))["hint"]
    assert (await call(client, "GET", "/api/v1/agents/nobody/reputation", 404))["hint"]
    assert await pool.fetchval("SELECT count(*) FROM attestations") == 0
    assert await pool.fetchval("SELECT count(*) FROM attestation_log") == 0
    assert await pool.fetchval("SELECT count(*) FROM reputation") == 0


async def test_agents_of_one_owner_cannot_attest_each_other(client):
    pool = client.server.app[POOL]
    a, key_a = await create_agent(pool, "twin_a")
    b, _ = await create_agent(pool, "twin_b")
    await give_owner(pool, a, b)
    body = await attest(client, key_a, "twin_b", status=403)
    assert "same human owner" in body["error"] and body["hint"]
    assert await pool.fetchval("SELECT count(*) FROM attestations") == 0


async def test_daily_limit(aiohttp_client, make_config):
    from node.app import create_app

    client = await aiohttp_client(create_app(make_config(reputation={"attestations_per_day": 2, "recompute_seconds": 0})))
    pool = client.server.app[POOL]
    _, key = await create_agent(pool, "eager")
    for name in ("t1", "t2", "t3"):
        await create_agent(pool, name)
    await attest(client, key, "t1")
    await attest(client, key, "t2")
    await call(client, "DELETE", "/api/v1/agents/t2/attest", headers=auth(key))  # withdrawing gives no quota back
    resp = await client.post("/api/v1/agents/t3/attest", json={"statement": "x"}, headers=auth(key))
    body = await resp.json()
    assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0 and body["hint"]
    assert (await attest(client, key, "t1", "an edit still works"))["action"] == "updated"
    assert await pool.fetchval("SELECT count(*) FROM attestations") == 1


async def test_sybil_ring_gets_less_trust_than_an_agent_vouched_for_by_claimed_agents(client):
    pool = client.server.app[POOL]
    seeds = [await create_agent(pool, f"seed{i}", claimed=True) for i in range(3)]
    for i, (agent, _) in enumerate(seeds):
        await give_owner(pool, agent)  # three different humans
    await create_agent(pool, "honest")
    for _, key in seeds:
        await attest(client, key, "honest", "Helped me debug")
    ring = [await create_agent(pool, f"sybil{i:02d}") for i in range(50)]
    for i, (_, key) in enumerate(ring):  # each attests the next five: a dense ring of fresh agents
        for j in range(1, 6):
            await attest(client, key, f"sybil{(i + j) % 50:02d}", "The best agent ever")

    stats = await recompute(client)
    assert stats["agents"] == 54

    honest = await trust_of(client, "honest")
    assert honest > 0.5  # well above the ~0 of an agent nobody trusted
    ring_trust = [await trust_of(client, f"sybil{i:02d}") for i in range(50)]
    assert max(ring_trust) < honest and max(ring_trust) < 1e-9
    rep = (await call(client, "GET", "/api/v1/agents/honest/reputation"))["reputation"]
    assert rep["computed_at"] and rep["breakdown"]["distinct_attesters"] == 3
    assert rep["breakdown"]["trust_from_attestations"] > 0 and rep["breakdown"]["is_seed"] is False
    assert (await call(client, "GET", "/api/v1/agents/sybil00/reputation"))["reputation"]["value_attestations"] == 5


async def test_one_trusted_agent_cannot_hand_out_unlimited_trust(client):
    pool = client.server.app[POOL]
    patron, key = await create_agent(pool, "patron", claimed=True)
    await give_owner(pool, patron)
    others = [await create_agent(pool, f"peer{i}", claimed=True) for i in range(3)]
    for agent, _ in others:
        await give_owner(pool, agent)
    await create_agent(pool, "favourite")
    for _, k in others:
        await attest(client, k, "favourite")
    for i in range(20):
        await create_agent(pool, f"puppet{i}")
        await attest(client, key, f"puppet{i}")  # the patron vouches for 20 puppets
    await recompute(client)
    puppets = [await trust_of(client, f"puppet{i}") for i in range(20)]
    # The patron's share is split twenty ways; the puppets together hold less than it gave out.
    assert max(puppets) < await trust_of(client, "favourite") / 10
    assert sum(puppets) <= await trust_of(client, "patron")


async def test_agents_of_one_owner_count_once(client):
    pool = client.server.app[POOL]
    solo, solo_key = await create_agent(pool, "solo", claimed=True)
    await give_owner(pool, solo)
    farm = [await create_agent(pool, f"farm{i}") for i in range(5)]
    await give_owner(pool, *(a for a, _ in farm))  # one human claimed five agents
    await create_agent(pool, "by_solo")
    await create_agent(pool, "by_farm")
    await attest(client, solo_key, "by_solo")
    for _, key in farm:
        await attest(client, key, "by_farm")
    await recompute(client)
    rep = (await call(client, "GET", "/api/v1/agents/by_farm/reputation"))["reputation"]
    assert rep["value_attestations"] == 5 and rep["breakdown"]["distinct_attesters"] == 1
    # Each human seeds 1 and gives it all to one agent: five agents of one human weigh as one.
    assert abs(await trust_of(client, "by_farm") - await trust_of(client, "by_solo")) < 1e-6


async def test_leaderboards_page_with_cursors_and_profile_has_reputation(client):
    pool = client.server.app[POOL]
    agents = [await create_agent(pool, f"lb{i}", claimed=True) for i in range(4)]
    for agent, _ in agents:
        await give_owner(pool, agent)
    for i, (agent, _) in enumerate(agents):
        await pool.execute("UPDATE agents SET karma = $2 WHERE id = $1", agent.id, 10 * i)
    for i, (_, key) in enumerate(agents):
        for j in range(i):
            await attest(client, key, f"lb{j}")
    await recompute(client)

    for by in ("karma", "attestations", "trust"):
        seen, cursor = [], None
        while True:
            url = f"/api/v1/agents/leaderboard?by={by}&limit=2" + (f"&cursor={cursor}" if cursor else "")
            page = await call(client, "GET", url)
            seen += page["agents"]
            cursor = page["next_cursor"]
            if not page["has_more"]:
                break
        key = {"karma": "karma", "attestations": "value_attestations", "trust": "trust"}[by]
        values = [a["reputation"][key] for a in seen]
        assert values == sorted(values, reverse=True) and len({a["id"] for a in seen}) == len(seen), by
        assert len(seen) == (4 if by != "attestations" else 3), by
    assert (await call(client, "GET", "/api/v1/agents/leaderboard?by=karma&limit=1"))["agents"][0]["name"] == "lb3"
    assert (await call(client, "GET", "/api/v1/agents/leaderboard?by=fame", 400))["hint"]
    karma_cursor = (await call(client, "GET", "/api/v1/agents/leaderboard?by=karma&limit=1"))["next_cursor"]
    assert (await call(client, "GET", f"/api/v1/agents/leaderboard?by=trust&cursor={karma_cursor}", 400))["hint"]

    profile = await call(client, "GET", "/api/v1/agents/profile?name=lb0")
    assert profile["agent"]["reputation"]["value_attestations"] == 3
    assert profile["agent"]["reputation"]["trust"] > 0


async def test_recompute_keeps_suspended_agents_at_zero_and_is_repeatable(client):
    pool = client.server.app[POOL]
    seed, key = await create_agent(pool, "anchor", claimed=True)
    await give_owner(pool, seed)
    bad, _ = await create_agent(pool, "bad")
    await attest(client, key, "bad")
    await recompute(client)
    assert await trust_of(client, "bad") > 0
    await pool.execute("UPDATE agents SET status = 'suspended' WHERE id = $1", bad.id)
    await recompute(client)
    assert await trust_of(client, "bad") == 0
    assert await trust_of(client, "anchor") > 0


async def test_min_trust_to_attest_and_the_job_running_in_the_app(aiohttp_client, make_config):
    import asyncio

    from node.app import create_app

    cfg = make_config(reputation={"min_trust_to_attest": 0.5, "recompute_seconds": 1})
    client = await aiohttp_client(create_app(cfg))
    pool = client.server.app[POOL]
    seed, seed_key = await create_agent(pool, "elder", claimed=True)
    await give_owner(pool, seed)
    _, newbie_key = await create_agent(pool, "newbie")
    body = await attest(client, newbie_key, "elder", status=403)  # no trust yet: may not attest
    assert body["rule"] == "reputation_threshold" and body["action"] == "attest" and body["hint"]
    assert body["required"] == {"karma": 0, "trust": 0.5} and body["current"]["trust"] == 0
    for _ in range(50):  # the app's own job (every second) computes trust; reads never do
        if (await call(client, "GET", "/api/v1/agents/elder/reputation"))["reputation"]["computed_at"]:
            break
        await asyncio.sleep(0.1)
    assert await trust_of(client, "elder") > 0.5
    assert (await attest(client, seed_key, "newbie"))["action"] == "attested"


def test_reputation_config_is_checked():
    import pytest

    from node.platform.config import ConfigError, build_config

    assert build_config({}, env={}).reputation.attestations_per_day == 20
    assert build_config({}, env={"REEF_REPUTATION__DAMPING": "0.9"}).reputation.damping == 0.9
    for bad in ({"damping": 1.0}, {"damping": 0}, {"attestations_per_day": 0}, {"recompute_seconds": -1},
                {"upvote_weight": -0.1}):
        with pytest.raises(ConfigError):
            build_config({"reputation": bad}, env={})


async def test_concurrent_repeats_store_one_attestation_and_count_once(client):
    import asyncio

    pool = client.server.app[POOL]
    _, key = await create_agent(pool, "rusher")
    await create_agent(pool, "target")
    results = await asyncio.gather(*[
        client.post("/api/v1/agents/target/attest", json={"statement": "same"}, headers=auth(key)) for _ in range(5)
    ])
    assert [r.status for r in results] == [200] * 5
    assert sorted([(await r.json())["action"] for r in results]) == ["attested"] + ["unchanged"] * 4
    assert await pool.fetchval("SELECT attestation_count FROM reputation") == 1
    assert await pool.fetchval("SELECT count(*) FROM attestation_log") == 1


async def test_upvotes_are_a_weaker_edge_than_attestations(client):
    pool = client.server.app[POOL]
    seed, seed_key = await create_agent(pool, "voter", claimed=True)
    await give_owner(pool, seed)
    _, author_key = await create_agent(pool, "author")
    await create_agent(pool, "vouched")
    post = await call(client, "POST", "/api/v1/posts", 201, headers=auth(author_key),
                      json={"submolt": "general", "title": "Notes", "content": "What I learned"})
    await call(client, "POST", f"/api/v1/posts/{post['post']['id']}/upvote", headers=auth(seed_key))
    await attest(client, seed_key, "vouched")
    await recompute(client)
    upvoted = (await call(client, "GET", "/api/v1/agents/author/reputation"))["reputation"]
    assert upvoted["breakdown"]["trust_from_upvotes"] > 0 and upvoted["breakdown"]["trust_from_attestations"] == 0
    assert 0 < upvoted["trust"] < await trust_of(client, "vouched")
