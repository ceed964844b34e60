"""Remote actors become local rows (API lookups of name@host), remote keys are cached and refreshed, and
signatures guard GETs (authorized fetch, blocked hosts)."""
from __future__ import annotations

import pytest

from factories import create_agent
from fed_peer import AP, Peer, node_config
from federation import resolve
from federation.fetch import FetchError
from federation.gate import verify_request
from federation.signatures import SignatureError
from node.app import create_app
from node.platform.appkeys import POOL


@pytest.fixture
async def peer(aiohttp_server):
    return await Peer().start(aiohttp_server)


async def make_node(aiohttp_client, make_config, **federation):
    return await aiohttp_client(create_app(node_config(make_config, **federation)))


# --- remote lookup through the Agent API ---------------------------------------------------------


async def test_profile_of_a_remote_agent_is_fetched_stored_and_shown(aiohttp_client, make_config, peer):
    alice = peer.add_actor("alice")
    node = await make_node(aiohttp_client, make_config)
    handle = f"alice@{peer.host}"

    resp = await node.get("/api/v1/agents/profile", params={"name": handle})
    assert resp.status == 200, await resp.text()
    agent = (await resp.json())["agent"]
    assert agent["name"] == handle
    assert agent["is_local"] is False and agent["domain"] == peer.host
    assert agent["display_name"] == "Alice"
    assert agent["description"] == "I am alice & friends.\n\nSecond line."
    assert agent["avatar_url"] == f"{peer.base}/media/alice.png"
    async with node.server.app[POOL].acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM agents WHERE actor_url = $1", alice.url)
        cached_key = await conn.fetchrow("SELECT * FROM remote_keys WHERE key_id = $1", alice.key_id)
    assert row["name"] == "alice" and not row["is_local"] and row["ap_type"] == "Person"
    assert row["inbox_url"] == f"{alice.url}/inbox" and row["shared_inbox_url"] == f"{peer.base}/inbox"
    assert row["public_key_pem"] == alice.public_key_pem and row["fetched_at"] is not None
    assert row["private_key_pem"] is None
    assert cached_key["owner_url"] == alice.url

    # fresh for a day: asking again reads the row, not the peer
    asked = len(peer.seen)
    resp = await node.get("/api/v1/agents/profile", params={"name": "@" + handle})
    assert resp.status == 200 and (await resp.json())["agent"]["id"] == agent["id"]
    assert len(peer.seen) == asked
    # a local agent of the same name stays distinct
    await create_agent(node.server.app[POOL], "alice")
    local = (await (await node.get("/api/v1/agents/profile", params={"name": "alice"})).json())["agent"]
    assert local["name"] == "alice" and local["is_local"] is True and local["id"] != agent["id"]
    # name@<this node> is the local agent
    mine = await node.get("/api/v1/agents/profile", params={"name": "alice@127.0.0.1:8080"})
    assert (await mine.json())["agent"]["id"] == local["id"]


async def test_remote_submolt_lookup_and_a_name_that_is_both(aiohttp_client, make_config, peer):
    peer.add_actor("news", kind="Group", extra={"postingRestrictedToMods": True, "name": "World News"})
    both_person = peer.add_actor("both")
    both_group = peer.add_actor("both", kind="Group")
    node = await make_node(aiohttp_client, make_config)

    resp = await node.get(f"/api/v1/submolts/news@{peer.host}")
    assert resp.status == 200, await resp.text()
    sub = (await resp.json())["submolt"]
    assert sub["name"] == f"news@{peer.host}" and sub["display_name"] == "World News"
    assert sub["is_local"] is False and sub["posting_restricted_to_mods"] is True

    agent = (await (await node.get("/api/v1/agents/profile", params={"name": f"both@{peer.host}"})).json())["agent"]
    group = (await (await node.get(f"/api/v1/submolts/both@{peer.host}")).json())["submolt"]
    async with node.server.app[POOL].acquire() as conn:
        assert await conn.fetchval("SELECT actor_url FROM agents WHERE id = $1", agent["id"]) == both_person.url
        assert await conn.fetchval("SELECT actor_url FROM submolts WHERE id = $1", group["id"]) == both_group.url
    # a Person is not a submolt, a Group not an agent
    assert (await node.get(f"/api/v1/submolts/alice@{peer.host}")).status == 404
    resp = await node.get("/api/v1/agents/profile", params={"name": f"news@{peer.host}"})
    assert resp.status == 404


async def test_unknown_blocked_and_disabled_lookups(aiohttp_client, make_config, peer):
    peer.add_actor("alice")
    node = await make_node(aiohttp_client, make_config)
    resp = await node.get("/api/v1/agents/profile", params={"name": f"nobody@{peer.host}"})
    assert resp.status == 404 and (await resp.json())["hint"]
    blocked = await make_node(aiohttp_client, make_config, block=[peer.host])
    assert (await blocked.get("/api/v1/agents/profile", params={"name": f"alice@{peer.host}"})).status == 403
    off = await make_node(aiohttp_client, make_config, enabled=False)
    assert (await off.get("/api/v1/agents/profile", params={"name": f"alice@{peer.host}"})).status == 404
    assert [s.path_qs for s in peer.seen] == [
        f"/.well-known/webfinger?resource=acct:nobody@{peer.host}"
    ]


async def test_a_stale_row_is_refetched_and_updated(aiohttp_client, make_config, peer):
    alice = peer.add_actor("alice")
    node = await make_node(aiohttp_client, make_config)
    app = node.server.app
    first = await resolve.resolve_actor(app, alice.url)
    alice.doc["name"] = "Alice Renamed"
    assert (await resolve.resolve_actor(app, alice.url)).id == first.id  # fresh: not refetched
    async with app[POOL].acquire() as conn:
        assert await conn.fetchval("SELECT display_name FROM agents WHERE id = $1", first.id) == "Alice"
        await conn.execute("UPDATE agents SET fetched_at = now() - interval '2 days' WHERE id = $1", first.id)
    again = await resolve.resolve_actor(app, alice.url)
    assert again.id == first.id
    async with app[POOL].acquire() as conn:
        assert await conn.fetchval("SELECT display_name FROM agents WHERE id = $1", first.id) == "Alice Renamed"


async def test_actor_documents_that_are_not_usable_actors_are_refused(aiohttp_client, make_config, peer):
    note = peer.add_actor("note", extra={"type": "Note"})
    nameless = peer.add_actor("nameless", extra={"preferredUsername": "bad name"})
    node = await make_node(aiohttp_client, make_config)
    for url in (note.url, nameless.url):
        with pytest.raises(FetchError):
            await resolve.resolve_actor(node.server.app, url)


# --- the key cache -------------------------------------------------------------------------------


async def test_key_cache_and_refresh_on_rotation(aiohttp_client, make_config, peer):
    alice = peer.add_actor("alice")
    node = await make_node(aiohttp_client, make_config)
    app = node.server.app
    assert await resolve.get_public_key(app, alice.key_id) == (alice.url, alice.public_key_pem)
    assert len(peer.requests_to("/users/alice")) == 1
    assert await resolve.get_public_key(app, alice.key_id) == (alice.url, alice.public_key_pem)
    assert len(peer.requests_to("/users/alice")) == 1  # cached

    old = alice.public_key_pem
    alice.rotate_key()
    # a refresh right after a fetch is refused (forged signatures must not make us hammer the peer)
    assert (await resolve.get_public_key(app, alice.key_id, refresh=True))[1] == old
    assert len(peer.requests_to("/users/alice")) == 1
    async with app[POOL].acquire() as conn:
        await conn.execute("UPDATE remote_keys SET fetched_at = now() - interval '1 minute'")
    # a request signed with the new key verifies: the cached key fails, the refetched one passes
    url = "http://127.0.0.1:8080/u/bob"
    headers = alice.sign_get(url)
    assert await verify_request(app, "GET", url, headers) == alice.url
    assert len(peer.requests_to("/users/alice")) == 2
    assert (await resolve.get_public_key(app, alice.key_id))[1] == alice.public_key_pem
    # the old key no longer verifies, and a forged signature fails after the one refetch
    stale = dict(headers)
    stale["Signature"] = stale["Signature"].replace('signature="', 'signature="AAAA')
    with pytest.raises(SignatureError):
        await verify_request(app, "GET", url, stale)


async def test_a_key_owned_by_another_host_is_refused(aiohttp_client, make_config, peer):
    async def foreign_key(request):
        import json as _json
        from aiohttp import web

        return web.Response(text=_json.dumps({
            "id": f"{peer.base}/keys/1", "type": "Key", "owner": "https://victim.example/users/v",
            "publicKeyPem": "x"}), content_type=AP)

    peer.handlers["/keys/1"] = foreign_key
    node = await make_node(aiohttp_client, make_config)
    with pytest.raises(FetchError, match="another host"):
        await resolve.get_public_key(node.server.app, f"{peer.base}/keys/1")


# --- signatures on GETs ---------------------------------------------------------------------------


async def test_authorized_fetch_requires_a_valid_signature(aiohttp_client, make_config, peer):
    alice = peer.add_actor("alice")
    node = await make_node(aiohttp_client, make_config, authorized_fetch=True)
    await create_agent(node.server.app[POOL], "bob")
    url = f"http://{node.server.host}:{node.server.port}/u/bob"

    assert (await node.get("/u/bob", headers={"Accept": AP})).status == 401
    resp = await node.get("/u/bob", headers=alice.sign_get(url))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["preferredUsername"] == "bob"
    tampered = alice.sign_get(url.replace("/u/bob", "/u/other"))  # signed for another path
    assert (await node.get("/u/bob", headers=tampered)).status == 401
    # the node actor, WebFinger and NodeInfo stay open, or peers could never start
    assert (await node.get("/actor")).status == 200
    assert (await node.get("/.well-known/webfinger", params={"resource": "acct:bob@127.0.0.1:8080"})).status == 200
    assert (await node.get("/nodeinfo/2.1")).status == 200


async def test_blocked_hosts_get_403_on_signed_gets(aiohttp_client, make_config, peer):
    alice = peer.add_actor("alice")
    node = await make_node(aiohttp_client, make_config, block=[peer.host])
    await create_agent(node.server.app[POOL], "bob")
    base = f"http://{node.server.host}:{node.server.port}"
    for path in ("/u/bob", "/actor", "/m/general", "/u/bob/followers"):
        resp = await node.get(path, headers=alice.sign_get(base + path))
        assert resp.status == 403, path
    resp = await node.get("/.well-known/webfinger", params={"resource": "acct:bob@127.0.0.1:8080"},
                          headers=alice.sign_get(base + "/.well-known/webfinger?resource=acct:bob@127.0.0.1:8080"))
    assert resp.status == 403
    for path in ("/nodeinfo/2.1", "/.well-known/nodeinfo", "/.well-known/host-meta"):
        assert (await node.get(path, headers=alice.sign_get(base + path))).status == 403, path
    assert (await node.get("/u/bob", headers={"Accept": AP})).status == 200  # unsigned: anyone may read
    assert peer.seen == []  # the block is decided without fetching the blocked host's key
