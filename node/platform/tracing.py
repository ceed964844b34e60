"""OpenTelemetry tracing, off unless [tracing] otlp_endpoint is set: spans for requests, database statements and
federation deliveries, exported over OTLP/HTTP; W3C traceparent read on requests and sent on outgoing ones.

The spans are made here on the SDK rather than by opentelemetry-instrumentation-aiohttp-server/-client: those
0.66b1 releases pin opentelemetry-semantic-conventions==0.66b1 while the current SDK (1.45.2) needs 0.66b2, the
server one instruments through a process-wide patch of web.Application or the global tracer provider, and what we
need (a server span named by route pattern, a header injected on the client) is a few lines.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator, Awaitable, Callable

import aiohttp
from aiohttp import web
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from . import appkeys
from .metrics import route_label

TRACER = web.AppKey("tracer", Any)  # an opentelemetry Tracer, or None when tracing is off
PROVIDER = web.AppKey("tracer_provider", Any)
PROPAGATOR = TraceContextTextMapPropagator()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) in hex of the span current in this context, if any (for log lines)."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def tracer_of(app: web.Application) -> Any:
    return app.get(TRACER)


def build_provider(cfg: Any) -> Any:
    """A TracerProvider that batches spans to the OTLP/HTTP endpoint of [tracing]."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    tr = cfg.tracing
    provider = TracerProvider(
        resource=Resource.create({"service.name": tr.service_name, "service.instance.id": cfg.domain}),
        sampler=ParentBased(TraceIdRatioBased(tr.sample_ratio)),
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=tr.otlp_endpoint, timeout=5),
                                                   schedule_delay_millis=500))
    return provider


@web.middleware
async def tracing_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The server span of a request, child of the caller's traceparent if it sent one; outermost middleware,
    so the access log line and everything below carry its trace id."""
    tracer = request.app[TRACER]
    route = route_label(request)
    parent = PROPAGATOR.extract(request.headers)
    with tracer.start_as_current_span(
        f"{request.method} {route}", context=parent, kind=SpanKind.SERVER,
        attributes={"http.request.method": request.method, "http.route": route, "url.path": request.path},
        record_exception=False, set_status_on_exception=False,
    ) as span:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            span.set_attribute("http.response.status_code", exc.status)
            raise
        except BaseException as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        span.set_attribute("http.response.status_code", response.status)
        if response.status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        return response


def record_query_span(tracer: Any, record: Any) -> None:
    """A span for one finished statement (asyncpg's LoggedQuery), placed back in time where it ran."""
    if not trace.get_current_span().get_span_context().is_valid:
        return  # statements outside any trace (background polling) would each be a trace of their own
    end = time.time_ns()
    statement = " ".join(record.query.split())
    span = tracer.start_span(
        statement.split(" ", 1)[0].upper() or "query", kind=SpanKind.CLIENT,
        start_time=end - int(record.elapsed * 1e9),
        attributes={"db.system": "postgresql", "db.statement": statement[:1000]},
    )
    if record.exception is not None:
        span.set_status(Status(StatusCode.ERROR, type(record.exception).__name__))
    span.end(end_time=end)


def client_trace_config() -> aiohttp.TraceConfig:
    """For ClientSessions: send the current span's traceparent (nothing when no span is current)."""

    async def on_request_start(_session: Any, _ctx: Any, params: aiohttp.TraceRequestStartParams) -> None:
        PROPAGATOR.inject(params.headers)

    config = aiohttp.TraceConfig()
    config.on_request_start.append(on_request_start)
    return config


async def _provider_ctx(app: web.Application) -> AsyncIterator[None]:
    try:
        yield
    finally:
        provider = app.get(PROVIDER)
        if provider is not None:
            # Flushes the spans still batched; in a thread, as the exporter's HTTP call blocks (and the collector
            # may be served by this very loop, as in the tests).
            await asyncio.to_thread(provider.shutdown)


def setup(app: web.Application) -> bool:
    """Turn tracing on for this app when configured; True if it is on (then add tracing_middleware first)."""
    cfg = app[appkeys.CONFIG]
    if not cfg.tracing.otlp_endpoint:
        app[TRACER] = None
        return False
    provider = build_provider(cfg)
    app[PROVIDER] = provider
    app[TRACER] = provider.get_tracer("reef")
    app.cleanup_ctx.append(_provider_ctx)
    return True
