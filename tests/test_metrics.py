"""GET /metrics (prometheus-client): request counters by route pattern, latency histograms, GC gauges."""
from __future__ import annotations

from metrics_support import samples, value
from node.app import create_app


async def test_metrics_count_requests_by_route_pattern(client):
    for _ in range(3):
        assert (await client.get("/api/v1/health")).status == 200
    await client.get("/api/v1/nope")
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    text = await resp.text()
    health = {"method": "GET", "route": "/api/v1/health"}
    assert value(text, "reef_http_requests_total", status="200", **health) == 3
    assert value(text, "reef_http_requests_total", route="unmatched", status="404") == 1
    assert value(text, "reef_http_request_duration_seconds_count", **health) == 3
    assert value(text, "reef_http_request_duration_seconds_bucket", le="+Inf", **health) == 3
    assert value(text, "reef_http_request_duration_seconds_sum", **health) > 0
    # Raw paths never become labels: one series per route pattern.
    assert not any("nope" in str(lab) for _, lab, _ in samples(text))
    assert value(text, "reef_db_pool_size") >= 1


async def test_metrics_token_and_disable(aiohttp_client, make_config):
    client = await aiohttp_client(create_app(make_config(metrics={"token": "s3cret"})))
    assert (await client.get("/metrics")).status == 401
    resp = await client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    assert resp.status == 200 and "reef_uptime_seconds" in await resp.text()
    off = await aiohttp_client(create_app(make_config(metrics={"enabled": False})))
    assert (await off.get("/metrics")).status == 404


def _gc_gauge(text: str, name: str, gen: int) -> float:
    assert any(n == name and lab.get("generation") == str(gen) for n, lab, _ in samples(text)), name
    return value(text, name, generation=str(gen))


async def test_garbage_collections_and_their_pauses_are_counted(client):
    import gc

    before = _gc_gauge(await (await client.get("/metrics")).text(), "reef_gc_collections", 2)
    gc.collect()
    gc.collect()
    text = await (await client.get("/metrics")).text()
    assert _gc_gauge(text, "reef_gc_collections", 2) >= before + 2
    assert _gc_gauge(text, "reef_gc_pause_seconds", 2) > 0
    assert 0 < _gc_gauge(text, "reef_gc_pause_max_seconds", 2) <= _gc_gauge(text, "reef_gc_pause_seconds", 2)


def test_tuning_raises_the_young_threshold_and_freezes_what_exists():
    import gc

    from node.platform import gctune

    saved = gc.get_threshold()
    try:
        gctune.tune()
        assert gc.get_threshold()[0] == gctune.YOUNG_THRESHOLD
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*saved)
