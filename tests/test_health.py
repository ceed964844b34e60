"""GET /api/v1/health and the error model on unknown routes."""
from __future__ import annotations


async def test_health_reports_database(client):
    resp = await client.get("/api/v1/health")
    assert resp.status == 200
    body = await resp.json()
    assert body["success"] is True
    assert body["checks"]["database"]["ok"] is True
    assert "redis" not in body["checks"]
    assert len(resp.headers["X-Request-Id"]) >= 8


async def test_unknown_route_is_json_404_with_hint(client):
    resp = await client.get("/api/v1/nope")
    assert resp.status == 404
    body = await resp.json()
    assert body == {"success": False, "error": "Not found.", "hint": body["hint"]}
    assert "openapi" in body["hint"]
    assert resp.headers["X-Request-Id"]
