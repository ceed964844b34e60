"""openapi.json describes exactly the app's routes; skill.md names this node's own base URL."""
from __future__ import annotations

from node.api.spec import OPERATIONS


def _app_routes(app) -> set[tuple[str, str]]:
    found = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if not path or route.method in ("HEAD", "*", "OPTIONS"):
            continue
        found.add((route.method, path))
    return found


async def test_openapi_matches_the_routes(client):
    app = client.server.app
    routes = {r for r in _app_routes(app) if r[1].startswith(("/api/", "/skill.md", "/skill.json", "/heartbeat.md", "/messaging.md", "/rules.md"))}
    described = {(op.method, op.path) for op in OPERATIONS}
    assert routes - described == set(), "routes missing from node/api/spec.py"
    assert described - routes == set(), "spec.py describes routes that do not exist"

    resp = await client.get("/api/v1/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    assert doc["openapi"].startswith("3.1")
    served = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert served == described
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)), "operationIds must be unique"


async def test_skill_md_names_this_nodes_base_url_and_every_endpoint(client):
    resp = await client.get("/skill.md")
    assert resp.status == 200
    assert resp.content_type == "text/markdown"
    text = await resp.text()
    assert "http://127.0.0.1:8080/api/v1" in text
    for op in OPERATIONS:
        if op.path.startswith("/api/"):
            assert f"`{op.method} {op.path.replace('/api/v1', '')}`" in text
    # One endpoint per line, each line starting with it (a template's block tag once ate the newlines).
    lines = text.splitlines()
    for op in OPERATIONS:
        if op.path.startswith("/api/"):
            head = f"- `{op.method} {op.path.replace('/api/v1', '')}`"
            assert sum(line.startswith(head + " ") for line in lines) == 1, head
    assert not [line for line in lines if line.count("- `") > 1 and " — " in line]
    for doc in ("/heartbeat.md", "/messaging.md"):
        resp = await client.get(doc)
        assert resp.status == 200
        assert "http://127.0.0.1:8080/api/v1" in await resp.text()


async def test_agent_docs_state_this_nodes_limits_and_new_agent_rules(aiohttp_client, make_config):
    from node.app import create_app

    limits = {"post_interval_seconds": 900, "new_agent_post_interval_seconds": 10800, "new_agent_hours": 12,
              "dm_min_agent_age_hours": 6, "new_agent_comments_per_day": 7}
    client = await aiohttp_client(create_app(make_config(limits=limits)))
    skill = await (await client.get("/skill.md")).text()
    assert "one post per 15 minutes" in skill
    rules = skill[skill.index("## Rules for new agents"):]
    assert "first 12 hours" in rules and "3 hours" in rules and "7 comments per day" in rules
    assert "first 6 hours you cannot open conversations" in rules and "POST /groups" in rules
    messaging = await (await client.get("/messaging.md")).text()
    assert "first 6 hours you cannot open conversations" in messaging
    # With the DM rule off, the docs don't claim it.
    client = await aiohttp_client(create_app(make_config(limits={"dm_min_agent_age_hours": 0})))
    assert "cannot open conversations" not in await (await client.get("/skill.md")).text()


async def test_rules_md_and_skill_json_as_moltbook_serves_them(aiohttp_client, make_config):
    from node.app import create_app

    client = await aiohttp_client(create_app(make_config(limits={"comments_per_day": 33})))
    resp = await client.get("/rules.md")
    assert resp.status == 200 and resp.content_type == "text/markdown"
    rules = await resp.text()
    assert "33 comments per day" in rules and "appeal" in rules and "http://127.0.0.1:8080/api/v1" in rules
    resp = await client.get("/skill.json")
    assert resp.status == 200 and resp.content_type == "application/json"
    pkg = await resp.json()
    assert pkg["moltbot"]["api_base"] == "http://127.0.0.1:8080/api/v1"
    files = pkg["moltbot"]["files"]
    assert set(files) == {"SKILL.md", "HEARTBEAT.md", "MESSAGING.md", "RULES.md"}
    for url in files.values():  # every file it names is served
        assert (await client.get(url.removeprefix("http://127.0.0.1:8080"))).status == 200
    skill = await (await client.get("/skill.md")).text()
    assert "/rules.md" in skill


async def test_documents_say_what_the_node_enforces(client):
    doc = await (await client.get("/api/v1/openapi.json")).json()
    for path in ("/skill.md", "/heartbeat.md", "/messaging.md"):
        assert set(doc["paths"][path]["get"]["responses"]["200"]["content"]) == {"text/markdown"}
    register = doc["paths"]["/api/v1/agents/register"]["post"]
    props = register["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert "pattern" in props["name"] and props["name"]["type"] == "string"  # required: no null
    assert props["description"]["type"] == ["string", "null"] and props["description"]["maxLength"] == 500
    for path, ops in doc["paths"].items():
        for op in ops.values():
            for param in op.get("parameters", []):
                schema = param["schema"].get("anyOf", [param["schema"]])[0]
                if schema.get("type") == "integer":
                    assert schema["maximum"] <= 2**53 - 1 and schema["minimum"] >= -(2**53 - 1), (path, param)
            if any(p["in"] == "query" for p in op.get("parameters", [])) and path.startswith("/api/"):
                assert "400" in op["responses"], path  # a repeated or malformed query parameter
    assert "more than once" in doc["components"]["responses"]["E400"]["description"]
    assert {"E502", "E504"} <= set(doc["components"]["responses"])
