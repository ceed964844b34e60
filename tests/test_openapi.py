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
    routes = {r for r in _app_routes(app) if r[1].startswith(("/api/", "/skill.md", "/heartbeat.md", "/messaging.md"))}
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
    for doc in ("/heartbeat.md", "/messaging.md"):
        resp = await client.get(doc)
        assert resp.status == 200
        assert "http://127.0.0.1:8080/api/v1" in await resp.text()


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
