"""OpenTelemetry tracing, checked at an in-process OTLP/HTTP collector: request spans continue the caller's
traceparent, database statements are their children, deliveries send their traceparent, logs carry the trace id."""
from __future__ import annotations

import asyncio
import io
import json
import logging
import secrets
from dataclasses import dataclass

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest, ExportTraceServiceResponse,
)

from ap_peer import start_node
from factories import auth, create_agent
from federation import outbox, urls
from node.app import create_app
from node.platform import tracing
from node.platform.config import build_config
from node.platform.logs import JsonFormatter


@dataclass
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    attributes: dict
    service: str


class Collector:
    """Receives OTLP/HTTP protobuf at /v1/traces, as an OpenTelemetry collector does."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.arrived = asyncio.Event()

    async def traces(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/x-protobuf"
        msg = ExportTraceServiceRequest()
        msg.ParseFromString(await request.read())
        for rs in msg.resource_spans:
            service = next(a.value.string_value for a in rs.resource.attributes if a.key == "service.name")
            for ss in rs.scope_spans:
                for s in ss.spans:
                    attrs = {a.key: getattr(a.value, a.value.WhichOneof("value")) for a in s.attributes}
                    self.spans.append(Span(s.name, s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(), s.kind,
                                           attrs, service))
        self.arrived.set()
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(), content_type="application/x-protobuf")

    async def wait_for(self, predicate, timeout: float = 15.0) -> list[Span]:  # noqa: ANN001
        async with asyncio.timeout(timeout):
            while not predicate(self.spans):
                self.arrived.clear()
                await self.arrived.wait()
        return self.spans


@pytest.fixture
async def collector(aiohttp_server):
    c = Collector()
    app = web.Application()
    app.router.add_post("/v1/traces", c.traces)
    server = await aiohttp_server(app)
    c.endpoint = str(server.make_url("/v1/traces"))
    return c


def _flush(app: web.Application) -> None:
    app[tracing.PROVIDER].force_flush()


def test_tracing_is_off_by_default_and_the_env_turns_it_on():
    assert build_config({}, env={}).tracing.otlp_endpoint == ""
    cfg = build_config({}, env={"REEF_TRACING__OTLP_ENDPOINT": "http://127.0.0.1:4318/v1/traces",
                                "REEF_TRACING__SAMPLE_RATIO": "0.5"})
    assert cfg.tracing.otlp_endpoint == "http://127.0.0.1:4318/v1/traces" and cfg.tracing.sample_ratio == 0.5
    from node.platform.config import ConfigError

    with pytest.raises(ConfigError, match="otlp_endpoint"):
        build_config({"tracing": {"otlp_endpoint": "127.0.0.1:4318"}}, env={})
    with pytest.raises(ConfigError, match="sample_ratio"):
        build_config({"tracing": {"sample_ratio": 2.0}}, env={})


async def test_no_tracing_no_spans_no_middleware(aiohttp_client, make_config):
    app = create_app(make_config())
    assert tracing.tracing_middleware not in app.middlewares
    client = await aiohttp_client(app)
    assert app[tracing.TRACER] is None
    resp = await client.get("/api/v1/health", headers={"traceparent": f"00-{'ab' * 16}-{'cd' * 8}-01"})
    assert resp.status == 200


async def test_request_spans_continue_the_callers_trace_with_database_children(aiohttp_client, make_config, collector):
    app = create_app(make_config(tracing={"otlp_endpoint": collector.endpoint, "service_name": "reef-test"}))
    client = await aiohttp_client(app)
    pool = app[tracing.appkeys.POOL]
    _, key = await create_agent(pool)
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    logs = io.StringIO()
    handler = logging.StreamHandler(logs)
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("reef.access")
    access.addHandler(handler)
    old_level = access.level
    access.setLevel(logging.INFO)
    try:
        resp = await client.get("/api/v1/agents/me", headers={**auth(key), "traceparent": f"00-{trace_id}-{parent_id}-01"})
        assert resp.status == 200
        fresh = await client.get("/api/v1/health")  # no traceparent: a trace of its own
        assert fresh.status == 200
    finally:
        access.removeHandler(handler)
        access.setLevel(old_level)
    await asyncio.to_thread(_flush, app)
    spans = await collector.wait_for(lambda s: any(x.name == "GET /api/v1/health" for x in s))
    [server] = [s for s in spans if s.name == "GET /api/v1/agents/me"]
    assert server.trace_id == trace_id and server.parent_id == parent_id  # W3C traceparent accepted
    assert server.kind == 2  # SERVER
    assert server.attributes["http.route"] == "/api/v1/agents/me"
    assert server.attributes["http.response.status_code"] == 200
    assert server.service == "reef-test"
    children = [s for s in spans if s.parent_id == server.span_id]
    assert children and all(s.trace_id == trace_id for s in children)
    assert any(s.attributes.get("db.system") == "postgresql" and "api_keys" in s.attributes["db.statement"]
               for s in children), [c.name for c in children]
    [health] = [s for s in spans if s.name == "GET /api/v1/health"]
    assert health.trace_id != trace_id and health.parent_id == ""
    # The access log lines carry the trace and span ids of their request.
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    me = [e for e in lines if e.get("path") == "/api/v1/agents/me"]
    assert me and me[0]["trace_id"] == trace_id and me[0]["span_id"] == server.span_id
    assert [e["trace_id"] for e in lines if e.get("path") == "/api/v1/health"] == [health.trace_id]


async def test_a_failing_request_is_an_error_span(aiohttp_client, make_config, collector):
    app = create_app(make_config(tracing={"otlp_endpoint": collector.endpoint}))

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("forced")

    app.router.add_get("/test/boom", boom)
    client = await aiohttp_client(app)
    assert (await client.get("/test/boom")).status == 500
    await asyncio.to_thread(_flush, app)
    [span] = [s for s in await collector.wait_for(lambda s: any(x.name == "GET /test/boom" for x in s))
              if s.name == "GET /test/boom"]
    assert span.attributes["http.response.status_code"] == 500


async def test_deliveries_are_spans_and_send_their_traceparent(aiohttp_server, aiohttp_client, make_config, collector,
                                                               peer):
    node = await start_node(aiohttp_server, aiohttp_client, make_config, tracing={"otlp_endpoint": collector.endpoint})
    await create_agent(node.pool, "sender")
    actor = urls.agent_url(node.cfg, "sender")
    activity = {"@context": "https://www.w3.org/ns/activitystreams", "id": outbox.new_activity_id(node.cfg),
                "type": "Create", "actor": actor, "object": {"type": "Note", "id": f"{actor}/notes/1", "content": "hi"}}
    async with node.pool.acquire() as conn, conn.transaction():
        await outbox.publish(conn, node.cfg, activity, [peer.shared_inbox])
    peer.script = [503]
    assert await node.workers.delivery.run_once() == 1
    async with node.pool.acquire() as conn:
        await conn.execute("UPDATE deliveries SET next_attempt_at = now()")
    assert await node.workers.delivery.run_once() == 1
    await asyncio.to_thread(_flush, node.app)
    spans = await collector.wait_for(lambda s: sum(x.name == "federation.deliver" for x in s) == 2)
    failed, delivered = [s for s in spans if s.name == "federation.deliver"]
    assert failed.attributes["reef.delivery.outcome"] == "retry" and failed.attributes["http.response.status_code"] == 503
    assert delivered.attributes["reef.delivery.outcome"] == "delivered"
    assert delivered.attributes["server.address"] == peer.host and delivered.kind == 3  # CLIENT
    sent = [r.headers.get("traceparent", "") for r in peer.received if r.json]
    assert len(sent) == 2
    for header, span in zip(sent, (failed, delivered)):
        version, trace_id, span_id, flags = header.split("-")
        assert (trace_id, span_id) == (span.trace_id, span.span_id)  # the receiver's trace continues the delivery
