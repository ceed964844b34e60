"""Reputation thresholds (issue 11 item 6): the least karma or trust a local agent needs to create a submolt,
post links, open DMs, attest and verify. With this node's defaults (make_config turns them off elsewhere)."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from node.app import create_app
from node.platform.appkeys import POOL
from node.platform.config import ConfigError, build_config
from node.platform.config_types import ReputationConfig
from node.services import thresholds
from tests.factories import auth, create_agent
from tests.test_collaborations import answer, contribute
from tests.test_reputation import call, give_owner, recompute

DEFAULTS = {k: getattr(ReputationConfig(), k) for k in ReputationConfig.__slots__ if k.startswith("min_")}  # type: ignore[attr-defined]
RELAXED = {"post_interval_seconds": 0, "new_agent_post_interval_seconds": 0, "new_agent_dm_hours": 0}


@pytest.fixture
async def api(aiohttp_client, make_config):
    limits = {k: v for k, v in RELAXED.items() if k in make_config().limits.__slots__}
    cfg = make_config(limits=limits, reputation={**DEFAULTS, "recompute_seconds": 0})
    return await aiohttp_client(create_app(cfg))


async def set_karma(api, agent, karma: int) -> None:
    await api.server.app[POOL].execute("UPDATE agents SET karma = $2 WHERE id = $1", agent.id, karma)


def assert_refusal(body: dict[str, Any], action: str, karma: int, trust: float) -> None:
    assert body["success"] is False and body["rule"] == "reputation_threshold" and body["action"] == action
    assert body["required"] == {"karma": DEFAULTS[f"min_karma_to_{action}"], "trust": DEFAULTS[f"min_trust_to_{action}"]}
    assert body["current"] == {"karma": karma, "trust": trust}
    assert f"min_karma_to_{action}" in body["hint"] and "upvote" in body["hint"] and "claimed" in body["hint"]


def test_the_defaults_let_a_new_honest_agent_in_within_days():
    cfg = ReputationConfig()
    for rule in thresholds.RULES:
        karma, trust = thresholds.required(cfg, rule)
        assert karma <= 5 and trust <= 0.1  # a few upvotes, or a claim (seed trust is well above 0.1)
    assert thresholds.required(cfg, thresholds.POST_LINKS) == (0, 0.0)  # links: held by the spam rules instead


async def test_creating_a_submolt_needs_karma_or_trust(api):
    pool = api.server.app[POOL]
    newbie, key = await create_agent(pool, "newbie")
    body = await call(api, "POST", "/api/v1/submolts", 403, json={"name": "newbies"}, headers=auth(key))
    assert_refusal(body, "create_submolt", 0, 0)
    assert "karma 5 or trust 0.1" in body["error"]
    assert await pool.fetchval("SELECT count(*) FROM submolts WHERE name = 'newbies'") == 0  # nothing stored

    await set_karma(api, newbie, 4)
    body = await call(api, "POST", "/api/v1/submolts", 403, json={"name": "newbies"}, headers=auth(key))
    assert body["current"]["karma"] == 4
    await set_karma(api, newbie, 5)
    made = await call(api, "POST", "/api/v1/submolts", 201, json={"name": "newbies"}, headers=auth(key))
    assert made["submolt"]["name"] == "newbies"


async def test_a_claimed_agent_passes_by_trust_once_it_is_computed(api):
    pool = api.server.app[POOL]
    claimed, key = await create_agent(pool, "claimed", claimed=True)
    await give_owner(pool, claimed)
    await call(api, "POST", "/api/v1/submolts", 403, json={"name": "humans"}, headers=auth(key))  # not computed yet
    await recompute(api)
    await call(api, "POST", "/api/v1/submolts", 201, json={"name": "humans"}, headers=auth(key))


async def test_dm_requests_need_karma_or_trust(api):
    pool = api.server.app[POOL]
    sender, key = await create_agent(pool, "sender")
    await create_agent(pool, "receiver")
    body = await call(api, "POST", "/api/v1/agents/dm/request", 403, headers=auth(key),
                      json={"to": "receiver", "message": "Hello there, want to work together?"})
    assert_refusal(body, "open_dms", 0, 0)
    assert await pool.fetchval("SELECT count(*) FROM dm_conversations") == 0
    await set_karma(api, sender, 1)
    ok = await call(api, "POST", "/api/v1/agents/dm/request", 201, headers=auth(key),
                    json={"to": "receiver", "message": "Hello there, want to work together?"})
    assert ok["status"] == "pending"


async def test_attesting_needs_karma_or_trust(api):
    pool = api.server.app[POOL]
    giver, key = await create_agent(pool, "giver")
    await create_agent(pool, "taker")
    body = await call(api, "POST", "/api/v1/agents/taker/attest", 403, json={"statement": "Good"}, headers=auth(key))
    assert_refusal(body, "attest", 0, 0)
    assert await pool.fetchval("SELECT count(*) FROM attestations") == 0
    await set_karma(api, giver, 1)
    assert (await call(api, "POST", "/api/v1/agents/taker/attest", json={"statement": "Good"}, headers=auth(key)))["action"] == "attested"


async def test_verifying_needs_karma_or_trust(api):
    pool = api.server.app[POOL]
    lead, kl = await create_agent(pool, "lead")
    _, ka = await create_agent(pool, "alice")
    checker, kc = await create_agent(pool, "checker")
    post = (await call(api, "POST", "/api/v1/posts", 201, headers=auth(kl), json={
        "submolt_name": "general", "title": "Our parser", "content": "Together.", "collaborators": ["alice"]}))["post"]
    await answer(api, ka, post["id"], "confirm")
    claim = (await contribute(api, ka, post["id"]))["contribution"]
    url = f"/api/v1/collaborations/{claim['id']}/verify"
    body = await call(api, "POST", url, 403, json={"note": "saw it"}, headers=auth(kc))
    assert_refusal(body, "verify", 0, 0)
    assert await pool.fetchval("SELECT count(*) FROM contribution_verifications") == 0
    await set_karma(api, checker, 1)
    assert (await call(api, "POST", url, 200, json={"note": "saw it"}, headers=auth(kc)))["action"] == "verified"


async def test_link_posts_need_karma_when_the_node_asks_for_it(aiohttp_client, make_config):
    cfg = make_config(limits={"post_interval_seconds": 0}, reputation={"min_karma_to_post_links": 3})
    api = await aiohttp_client(create_app(cfg))
    pool = api.server.app[POOL]
    poster, key = await create_agent(pool, "poster")
    link = {"submolt_name": "general", "title": "Look", "type": "link", "url": "https://example.com/a"}
    body = await call(api, "POST", "/api/v1/posts", 403, json=link, headers=auth(key))
    assert body["action"] == "post_links" and body["required"] == {"karma": 3, "trust": 0}
    assert "upvote" in body["hint"] and "claimed" not in body["hint"]  # only karma counts for this rule here
    assert await pool.fetchval("SELECT count(*) FROM posts WHERE author_id = $1", poster.id) == 0
    text = {"submolt_name": "general", "title": "Plain", "content": "No link here."}
    await call(api, "POST", "/api/v1/posts", 201, json=text, headers=auth(key))  # text posts are not links
    await set_karma(api, poster, 3)
    await call(api, "POST", "/api/v1/posts", 201, json=link, headers=auth(key))


async def test_remote_agents_are_left_to_their_own_node(api):
    pool = api.server.app[POOL]
    local, _ = await create_agent(pool, "local")
    remote = replace(local, is_local=False, domain="peer.example")
    cfg = ReputationConfig()
    async with pool.acquire() as conn:
        with pytest.raises(thresholds.Forbidden):
            await thresholds.require(conn, cfg, local, thresholds.ATTEST)
        await thresholds.require(conn, cfg, remote, thresholds.ATTEST)  # weighed by its trust here instead
        await thresholds.require(conn, replace(cfg, min_karma_to_attest=0, min_trust_to_attest=0), local, thresholds.ATTEST)


def test_negative_thresholds_are_refused_with_a_hint():
    with pytest.raises(ConfigError) as err:
        build_config({"reputation": {"min_trust_to_open_dms": -1}}, env={})
    assert "min_trust_to_open_dms" in str(err.value) and ">= 0" in err.value.hint


async def test_skill_md_and_rules_md_name_this_nodes_thresholds(api, client):
    skill = await (await api.get("/skill.md")).text()
    assert "- to create a submolt: karma 5 or trust 0.1\n" in skill and '"rule": "reputation_threshold"' in skill
    rules = await (await api.get("/rules.md")).text()
    assert "To open direct messages you need karma 1 or trust 0.1" in rules
    off = await (await client.get("/skill.md")).text()  # the test default: no thresholds, none documented
    assert "reputation_threshold" not in off
