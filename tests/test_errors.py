"""The error model: one JSON shape for every failure, request ids, no tracebacks to clients."""
from __future__ import annotations

import json
import logging

from aiohttp import web

from node.app import create_app
from node.platform.errors import Conflict
from node.edge.http import ok, read_json
from node.edge.validation import get_int, get_str


def _app_with_probe_routes(cfg):
    app = create_app(cfg)

    async def boom(request):
        raise RuntimeError("secret internal detail")

    async def conflict(request):
        raise Conflict("Name taken.", "Pick another name.")

    async def echo(request):
        body = await read_json(request)
        return ok(name=get_str(body, "name", required=True, max_len=5), n=get_int(body, "n"))

    app.router.add_get("/api/v1/_probe/boom", boom)
    app.router.add_get("/api/v1/_probe/conflict", conflict)
    app.router.add_post("/api/v1/_probe/echo", echo)
    return app


async def test_unhandled_exception_is_logged_500_with_request_id_and_no_detail(aiohttp_client, make_config, caplog):
    client = await aiohttp_client(_app_with_probe_routes(make_config()))
    with caplog.at_level(logging.ERROR, logger="reef.errors"):
        resp = await client.get("/api/v1/_probe/boom", headers={"X-Request-Id": "req-abcdef12"})
    assert resp.status == 500
    body = await resp.json()
    assert body["success"] is False and body["error"] == "Internal server error."
    assert body["request_id"] == "req-abcdef12" == resp.headers["X-Request-Id"]
    assert "secret internal detail" not in json.dumps(body)
    assert "Traceback" not in await resp.text()
    assert any("secret internal detail" in (r.exc_text or "") or r.exc_info for r in caplog.records)


async def test_reef_error_maps_to_status_error_and_hint(aiohttp_client, make_config):
    client = await aiohttp_client(_app_with_probe_routes(make_config()))
    resp = await client.get("/api/v1/_probe/conflict")
    assert resp.status == 409
    assert await resp.json() == {"success": False, "error": "Name taken.", "hint": "Pick another name."}


async def test_body_errors_400_415_422_413(aiohttp_client, make_config):
    client = await aiohttp_client(_app_with_probe_routes(make_config(limits={"max_body_bytes": 200})))
    url = "/api/v1/_probe/echo"
    cases = [
        (dict(data="{not json", headers={"Content-Type": "application/json"}), 400, "Malformed JSON"),
        (dict(json=[1, 2]), 400, "must be an object"),
        (dict(json={}), 400, "Missing required field 'name'"),
        (dict(json={"name": 5}), 422, "must be a string"),
        (dict(json={"name": "toolong"}), 422, "too long"),
        (dict(json={"name": "ok", "n": "3"}), 422, "must be an integer"),
        (dict(data="name=x", headers={"Content-Type": "application/x-www-form-urlencoded"}), 415, "Expected a JSON body"),
        (dict(data="x" * 500, headers={"Content-Type": "application/json"}), 413, "too large"),
    ]
    for kwargs, status, needle in cases:
        resp = await client.post(url, **kwargs)
        body = await resp.json()
        assert resp.status == status, (kwargs, body)
        assert body["success"] is False and needle in body["error"], body
        assert body["hint"], body
        assert resp.headers["X-Request-Id"]
    resp = await client.post(url, json={"name": "ok", "n": 3})
    assert resp.status == 200 and (await resp.json())["n"] == 3


async def test_method_not_allowed_is_json(client):
    resp = await client.delete("/api/v1/health")
    assert resp.status == 405
    body = await resp.json()
    assert body["success"] is False and body["hint"]
    assert "GET" in resp.headers.get("Allow", "")


async def test_access_log_line_has_request_fields(client, caplog):
    with caplog.at_level(logging.INFO, logger="reef.access"):
        resp = await client.get("/api/v1/health")
    rec = next(r for r in caplog.records if r.name == "reef.access")
    assert (rec.method, rec.path, rec.status) == ("GET", "/api/v1/health", 200)
    assert rec.duration_ms >= 0 and hasattr(rec, "agent")
    assert resp.headers["X-Request-Id"]


def test_json_log_lines_carry_request_id_and_extras():
    import io

    from node.platform.logs import JsonFormatter, request_id_var

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("reef.test.jsonlog")
    logger.addHandler(handler)
    logger.propagate = False
    token = request_id_var.set("rid-12345678")
    try:
        logger.warning("hello %s", "world", extra={"agent": "alice", "status": 201})
    finally:
        request_id_var.reset(token)
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line["msg"] == "hello world" and line["level"] == "warning"
    assert line["request_id"] == "rid-12345678"
    assert line["agent"] == "alice" and line["status"] == 201


async def test_key_use_is_recorded_once_a_minute_not_on_every_request(client):
    from node.platform.appkeys import POOL
    from tests.factories import auth, create_agent

    pool = client.server.app[POOL]
    agent, key = await create_agent(pool, "toucher")
    assert (await client.get("/api/v1/agents/me", headers=auth(key))).status == 200
    first = await pool.fetchrow("SELECT k.last_used_at, a.last_active FROM api_keys k JOIN agents a ON a.id = k.agent_id"
                                " WHERE a.id = $1", agent.id)
    assert first["last_used_at"] is not None and first["last_active"] is not None
    await pool.execute("UPDATE api_keys SET last_used_at = now() - interval '1 hour' WHERE agent_id = $1", agent.id)
    assert (await client.get("/api/v1/agents/me", headers=auth(key))).status == 200
    # Within the minute the node does not write again, even though the row looks old.
    again = await pool.fetchval("SELECT last_used_at FROM api_keys WHERE agent_id = $1", agent.id)
    assert again < first["last_used_at"]


async def test_query_parameters_repeated_or_out_of_range_are_400_with_a_hint(client):
    for query in ("limit=5&limit=6", f"limit={2**53}", f"offset=-{2**53}", "limit=%D9%A1", "limit=1_000"):
        resp = await client.get(f"/api/v1/posts?{query}")
        body = await resp.json()
        assert resp.status == 400, (query, body)
        assert body["hint"], body
    assert (await client.get(f"/api/v1/posts?limit={2**53 - 1}")).status == 200  # clamped to the page size
    assert (await client.get("/api/v1/posts?limit=")).status == 200  # empty: the default
