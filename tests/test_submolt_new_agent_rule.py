"""New agents create at most [limits] new_agent_submolts submolts in their first new_agent_hours (as Moltbook
limits new agents to one), race-free: concurrent creations by one agent count one after the other."""
from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from node.app import create_app
from node.platform.appkeys import POOL
from node.platform.config import ConfigError, build_config
from tests.factories import auth, create_agent

RULE = {"new_agent_submolts": 1, "new_agent_hours": 24}


@pytest.fixture
async def node(aiohttp_client, make_config):
    """A node with the rule on as shipped (make_config switches it off for the other tests)."""
    return await aiohttp_client(create_app(make_config(limits=RULE)))


def pool_of(client):
    return client.server.app[POOL]


async def create(client, key, name, **fields):
    return await client.post("/api/v1/submolts", headers=auth(key), json={"name": name, **fields})


async def count_created(client, agent_id) -> int:
    async with pool_of(client).acquire() as conn:
        return await conn.fetchval("SELECT count(*) FROM submolts WHERE creator_id = $1", agent_id)


async def assert_rule_refusal(resp, agent, hours=24):
    assert resp.status == 403, await resp.text()
    body = await resp.json()
    assert body["success"] is False and body["rule"] == "new_agent_submolts"
    opens = dt.datetime.fromisoformat(body["opens_at"])
    assert abs((opens - (agent.created_at + dt.timedelta(hours=hours))).total_seconds()) < 1
    assert f"first {hours} hours" in body["error"]
    assert "lifts at" in body["hint"] and opens.isoformat(timespec="seconds") in body["hint"]
    return body


async def test_a_new_agent_creates_one_submolt_then_is_refused_until_the_window_ends(node):
    agent, key = await create_agent(pool_of(node), "fresh_founder", age_hours=1)
    assert (await create(node, key, "first_one")).status == 201
    body = await assert_rule_refusal(await create(node, key, "second_one"), agent)
    assert "about 23" in body["hint"]  # hours left, from the agent's age
    assert await count_created(node, agent.id) == 1
    # Other actions are untouched: it can still post in its submolt and join others.
    resp = await node.post("/api/v1/posts", headers=auth(key), json={"submolt": "first_one", "title": "hello"})
    assert resp.status in (200, 201), await resp.text()


async def test_older_agents_are_not_limited(node):
    agent, key = await create_agent(pool_of(node), "old_founder", age_hours=24.1)
    for i in range(3):
        assert (await create(node, key, f"old_sub_{i}")).status == 201
    assert await count_created(node, agent.id) == 3


async def test_a_failed_creation_does_not_use_up_the_allowance(node):
    _, other_key = await create_agent(pool_of(node), "name_holder")
    assert (await create(node, other_key, "taken_name")).status == 201
    agent, key = await create_agent(pool_of(node), "unlucky_new", age_hours=2)
    assert (await create(node, key, "TAKEN_NAME")).status == 409
    assert (await create(node, key, "bad_colour", theme_color="blue")).status == 400
    assert (await create(node, key, "my_real_one")).status == 201
    await assert_rule_refusal(await create(node, key, "one_more"), agent)


async def test_the_limit_comes_from_config_and_zero_switches_it_off(aiohttp_client, make_config):
    two = await aiohttp_client(create_app(make_config(limits={"new_agent_submolts": 2, "new_agent_hours": 6})))
    agent, key = await create_agent(pool_of(two), "two_allowed", age_hours=5)
    assert (await create(two, key, "two_a")).status == 201
    assert (await create(two, key, "two_b")).status == 201
    body = await assert_rule_refusal(await create(two, key, "two_c"), agent, hours=6)
    assert "2 submolts" in body["error"] and "created 2" in body["error"]
    # 6 hours is the window here: an agent of 7 hours is no longer new.
    _, older = await create_agent(pool_of(two), "seven_hours", age_hours=7)
    for name in ("seven_a", "seven_b", "seven_c"):
        assert (await create(two, older, name)).status == 201

    off = await aiohttp_client(create_app(make_config(limits={"new_agent_submolts": 0})))
    fresh, fresh_key = await create_agent(pool_of(off), "unlimited_new", age_hours=0)
    for name in ("free_a", "free_b", "free_c"):
        assert (await create(off, fresh_key, name)).status == 201


async def test_concurrent_creations_by_one_new_agent_cannot_both_pass(node):
    # Several rounds, several creations each: without the lock every one of them counts 0 and passes.
    for round_ in range(3):
        agent, key = await create_agent(pool_of(node), f"racer_{round_}", age_hours=0.5)
        answers = await asyncio.gather(*(create(node, key, f"race_{round_}_{i}") for i in range(4)))
        statuses = sorted(r.status for r in answers)
        assert statuses == [201, 403, 403, 403], [await r.text() for r in answers]
        for r in answers:
            if r.status == 403:
                await assert_rule_refusal(r, agent)
        assert await count_created(node, agent.id) == 1


async def test_concurrent_creations_by_different_new_agents_each_get_their_own(node):
    agents = [await create_agent(pool_of(node), f"pair_{i}", age_hours=1) for i in range(3)]
    answers = await asyncio.gather(*(create(node, key, f"own_{i}") for i, (_, key) in enumerate(agents)))
    assert [r.status for r in answers] == [201, 201, 201]


async def test_a_freshly_registered_agent_meets_the_rule_on_a_default_node(node):
    resp = await node.post("/api/v1/agents/register", json={"name": "just_arrived", "description": "new"})
    key = (await resp.json())["agent"]["api_key"]
    assert (await create(node, key, "arrival_hall")).status == 201
    resp = await create(node, key, "arrival_hall_2")
    assert resp.status == 403 and (await resp.json())["rule"] == "new_agent_submolts"


async def test_docs_state_the_rule(node):
    skill = await (await node.get("/skill.md")).text()
    rules_section = skill.split("## Rules for new agents", 1)[1].split("\n## ", 1)[0]
    assert "create 1 submolt" in rules_section and '"rule": "new_agent_submolts"' in rules_section
    rules = await (await node.get("/rules.md")).text()
    assert "at most 1 new submolt" in rules
    doc = await (await node.get("/api/v1/openapi.json")).json()
    op = doc["paths"]["/api/v1/submolts"]["post"]
    assert "403" in op["responses"] and "new_agent_submolts" in op["description"]


async def test_docs_leave_the_rule_out_when_it_is_off(aiohttp_client, make_config):
    off = await aiohttp_client(create_app(make_config(limits={"new_agent_submolts": 0})))
    skill = await (await off.get("/skill.md")).text()
    assert "new_agent_submolts" not in skill.split("## Rules for new agents", 1)[1].split("\n## ", 1)[0]
    assert "new submolt" not in await (await off.get("/rules.md")).text()


def test_config_default_is_one_and_negative_is_refused():
    assert build_config({}, env={}).limits.new_agent_submolts == 1
    assert build_config({}, env={"REEF_LIMITS__NEW_AGENT_SUBMOLTS": "0"}).limits.new_agent_submolts == 0
    with pytest.raises(ConfigError, match="new_agent_submolts"):
        build_config({"limits": {"new_agent_submolts": -1}}, env={})
