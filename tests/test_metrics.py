"""GET /metrics: Prometheus text with request counters by route pattern, latency histograms and gauges."""
from __future__ import annotations

import re

from node.app import create_app


async def test_metrics_count_requests_by_route_pattern(client):
    for _ in range(3):
        assert (await client.get("/api/v1/health")).status == 200
    await client.get("/api/v1/nope")
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    text = await resp.text()
    m = re.search(r'reef_http_requests_total\{method="GET",route="/api/v1/health",status="200"\} (\d+)', text)
    assert m and int(m.group(1)) == 3
    assert 'route="unmatched",status="404"' in text
    count = re.search(r'reef_http_request_duration_seconds_count\{method="GET",route="/api/v1/health"\} (\d+)', text)
    assert count and int(count.group(1)) == 3
    inf = re.search(r'reef_http_request_duration_seconds_bucket\{method="GET",route="/api/v1/health",le="\+Inf"\} (\d+)', text)
    assert inf and int(inf.group(1)) == 3
    assert re.search(r"^reef_db_pool_size \d+", text, re.M)


async def test_metrics_token_and_disable(aiohttp_client, make_config):
    client = await aiohttp_client(create_app(make_config(metrics={"token": "s3cret"})))
    assert (await client.get("/metrics")).status == 401
    resp = await client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    assert resp.status == 200 and "reef_uptime_seconds" in await resp.text()
    off = await aiohttp_client(create_app(make_config(metrics={"enabled": False})))
    assert (await off.get("/metrics")).status == 404
