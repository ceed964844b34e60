"""The remote fetcher: SSRF refusals before any connection, blocks, size and time limits, typed errors, signed GETs."""
from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web

from fed_peer import AP, Peer, node_config
from federation.fetch import (
    FETCHER,
    FetchError,
    FetchGone,
    FetchNotFound,
    FetchRefused,
    FetchTimeout,
    FetchTooLarge,
    is_public_address,
)
from federation.signatures import check_freshness, parse_signature, verify_signature
from node.app import create_app


@pytest.fixture
async def peer(aiohttp_server):
    return await Peer().start(aiohttp_server)


async def node_with(aiohttp_client, make_config, **federation):
    client = await aiohttp_client(create_app(node_config(make_config, **federation)))
    return client, client.server.app[FETCHER]


@pytest.mark.parametrize(
    ("address", "public"),
    [("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.9", False), ("192.168.1.1", False),
     ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("224.0.0.1", False),
     ("::1", False), ("fe80::1", False), ("fc00::1", False), ("::ffff:127.0.0.1", False), ("ff02::1", False),
     ("93.184.216.34", True), ("2606:4700:4700::1111", True), ("not-an-ip", False)],
)
def test_public_addresses(address, public):
    assert is_public_address(address) is public


async def test_private_addresses_are_refused_before_any_connection(aiohttp_client, make_config, peer):
    peer.add_actor("alice")
    _, fetcher = await node_with(aiohttp_client, make_config, allow_private_addresses=False)
    port = peer.server.port
    for url in (
        f"http://127.0.0.1:{port}/users/alice",   # loopback literal, where a server does answer
        f"http://localhost:{port}/users/alice",   # a name that resolves to loopback
        f"http://[::1]:{port}/users/alice",
        "http://10.0.0.1/users/alice",
        "http://169.254.169.254/latest/meta-data",
        f"http://0x7f.1:{port}/users/alice",      # legacy numeric spelling of 127.0.0.1
    ):
        with pytest.raises(FetchRefused):
            await fetcher.get_json(url)
    assert peer.seen == []


async def test_every_redirect_hop_is_checked(aiohttp_client, make_config, peer):
    """A peer may not bounce the fetcher to a host it must not reach: each hop passes the same checks."""
    target = peer.add_actor("alice")
    _, fetcher = await node_with(aiohttp_client, make_config, block=["blocked.example"])

    async def bounce(request):
        raise web.HTTPFound("http://blocked.example/secret")

    async def bounce_home(request):
        raise web.HTTPFound(target.url)

    async def loop(request):
        raise web.HTTPFound("/loop")

    peer.handlers.update({"/bounce": bounce, "/home": bounce_home, "/loop": loop})
    with pytest.raises(FetchRefused):
        await fetcher.get_json(f"{peer.base}/bounce")
    assert (await fetcher.get_json(f"{peer.base}/home"))["id"] == target.url
    with pytest.raises(FetchError, match="redirects"):
        await fetcher.get_json(f"{peer.base}/loop")


async def test_blocked_and_unlisted_hosts_are_refused(aiohttp_client, make_config, peer):
    actor = peer.add_actor("alice")
    _, blocked = await node_with(aiohttp_client, make_config, block=[peer.host])
    with pytest.raises(FetchRefused):
        await blocked.get_json(actor.url)
    _, by_name = await node_with(aiohttp_client, make_config, block=["127.0.0.1"])  # every port of the host
    with pytest.raises(FetchRefused):
        await by_name.get_json(actor.url)
    _, allowlist = await node_with(aiohttp_client, make_config, mode="allowlist", allow=["friend.example"])
    with pytest.raises(FetchRefused):
        await allowlist.get_json(actor.url)
    _, off = await node_with(aiohttp_client, make_config, enabled=False)
    with pytest.raises(FetchRefused):
        await off.get_json(actor.url)
    assert peer.seen == []
    _, allowed = await node_with(aiohttp_client, make_config, mode="allowlist", allow=[peer.host])
    assert (await allowed.get_json(actor.url))["id"] == actor.url


async def test_signed_get_with_the_node_actor_key(aiohttp_client, make_config, peer):
    actor = peer.add_actor("alice")
    client, fetcher = await node_with(aiohttp_client, make_config)
    doc = await fetcher.get_json(actor.url)
    assert doc["preferredUsername"] == "alice"
    seen = peer.requests_to("/users/alice")[-1]
    assert "application/activity+json" in seen.headers["Accept"]
    parsed = parse_signature("GET", actor.url, seen.headers)
    assert parsed.key_id == "http://127.0.0.1:8080/actor#main-key"
    assert set(parsed.components) == {"(request-target)", "host", "date"}
    check_freshness(parsed, seen.headers, window=60)
    instance = await (await client.get("/actor")).json()
    verify_signature(parsed, instance["publicKey"]["publicKeyPem"])


async def test_status_codes_become_typed_errors(aiohttp_client, make_config, peer):
    async def gone(request):
        return web.Response(status=410)

    async def boom(request):
        return web.Response(status=500)

    async def html(request):
        return web.Response(text="<html>hi</html>", content_type="text/html")

    async def elsewhere(request):
        return web.json_response({"id": "https://evil.example/users/alice", "type": "Person"})

    peer.handlers.update({"/gone": gone, "/boom": boom, "/html": html, "/elsewhere": elsewhere})
    _, fetcher = await node_with(aiohttp_client, make_config)
    with pytest.raises(FetchGone) as info:
        await fetcher.get_json(f"{peer.base}/gone")
    assert info.value.status == 410
    with pytest.raises(FetchNotFound):
        await fetcher.get_json(f"{peer.base}/nothing")
    with pytest.raises(FetchError) as info:
        await fetcher.get_json(f"{peer.base}/boom")
    assert info.value.status == 500 and type(info.value) is FetchError
    with pytest.raises(FetchError, match="JSON"):
        await fetcher.get_json(f"{peer.base}/html")
    with pytest.raises(FetchError, match="another host"):
        await fetcher.get_json(f"{peer.base}/elsewhere")


async def test_size_limit_with_and_without_content_length(aiohttp_client, make_config, peer):
    big = json.dumps({"id": f"{peer.base}/big", "type": "Note", "content": "x" * 5000})

    async def sized(request):
        return web.Response(text=big, content_type=AP)

    async def streamed(request):
        resp = web.StreamResponse(headers={"Content-Type": AP})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(0, len(big), 500):
            await resp.write(big[i:i + 500].encode())
        await resp.write_eof()
        return resp

    peer.handlers.update({"/big": sized, "/stream": streamed})
    _, small = await node_with(aiohttp_client, make_config, max_document_bytes=1000)
    with pytest.raises(FetchTooLarge):
        await small.get_json(f"{peer.base}/big")
    with pytest.raises(FetchTooLarge):
        await small.get_json(f"{peer.base}/stream")
    _, roomy = await node_with(aiohttp_client, make_config, max_document_bytes=100_000)
    assert len((await roomy.get_json(f"{peer.base}/big"))["content"]) == 5000


async def test_a_peer_that_does_not_answer_times_out(aiohttp_client, make_config, peer):
    release = asyncio.Event()
    entered = asyncio.Event()

    async def stuck(request):
        entered.set()
        await release.wait()
        return web.json_response({})

    peer.handlers["/stuck"] = stuck
    _, fetcher = await node_with(aiohttp_client, make_config, fetch_timeout_seconds=1)
    try:
        with pytest.raises(FetchTimeout):
            await fetcher.get_json(f"{peer.base}/stuck")
        assert entered.is_set()
    finally:
        release.set()
