"""Discovery and documents: WebFinger, NodeInfo, host-meta, actor documents with working keys, object URLs."""
from __future__ import annotations

import datetime as dt

import pytest

from factories import auth, create_agent
from fed_peer import AP, node_config
from federation import urls
from federation.signatures import parse_signature, sign_request, verify_signature
from node.app import create_app
from node.platform.appkeys import CONFIG, POOL
from node.platform.config import replace

LD = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
BASE = "http://127.0.0.1:8080"
RELAXED = {"post_interval_seconds": 0, "new_agent_post_interval_seconds": 0,
           "comment_interval_seconds": 0, "new_agent_comment_interval_seconds": 0}


@pytest.fixture
async def node(aiohttp_client, make_config):
    """A node on loopback without post/comment intervals, so a test can write several times."""
    cfg = replace(node_config(make_config), limits=RELAXED)
    return await aiohttp_client(create_app(cfg))


async def make_submolt(node, key: str, name: str) -> None:
    resp = await node.post("/api/v1/submolts", headers=auth(key), json={"name": name, "description": "All **news**"})
    assert resp.status == 201, await resp.text()


# --- WebFinger ---------------------------------------------------------------------------------


async def test_webfinger_finds_an_agent(node):
    await create_agent(node.server.app[POOL], "alice")
    resp = await node.get("/.well-known/webfinger", params={"resource": "acct:alice@127.0.0.1:8080"})
    assert resp.status == 200
    assert resp.content_type == "application/jrd+json"
    jrd = await resp.json()
    assert jrd["subject"] == "acct:alice@127.0.0.1:8080"
    selfs = [l for l in jrd["links"] if l["rel"] == "self"]
    assert selfs == [{"rel": "self", "type": AP, "href": f"{BASE}/u/alice",
                      "properties": {"https://www.w3.org/ns/activitystreams#type": "Person"}}]
    # the actor URL works as the resource too, and names are case-insensitive
    resp = await node.get("/.well-known/webfinger", params={"resource": f"{BASE}/u/ALICE"})
    assert resp.status == 200
    assert (await resp.json())["links"][1]["href"] == f"{BASE}/u/alice"


async def test_webfinger_finds_a_submolt_and_both_when_a_name_is_both(node):
    _, key = await create_agent(node.server.app[POOL], "owner1")
    await make_submolt(node, key, "news")
    await create_agent(node.server.app[POOL], "both")
    await make_submolt(node, key, "both")

    jrd = await (await node.get("/.well-known/webfinger", params={"resource": "acct:news@127.0.0.1:8080"})).json()
    assert [(l["href"], l["properties"]) for l in jrd["links"] if l["rel"] == "self"] == [
        (f"{BASE}/m/news", {"https://www.w3.org/ns/activitystreams#type": "Group"})
    ]
    jrd = await (await node.get("/.well-known/webfinger", params={"resource": "acct:both@127.0.0.1:8080"})).json()
    typed = [(l["href"], l["properties"]["https://www.w3.org/ns/activitystreams#type"])
             for l in jrd["links"] if l["rel"] == "self"]
    assert typed == [(f"{BASE}/u/both", "Person"), (f"{BASE}/m/both", "Group")]  # Group last, as Lemmy
    assert jrd["aliases"] == [f"{BASE}/u/both", f"{BASE}/m/both"]


@pytest.mark.parametrize("resource", [
    "acct:nobody@127.0.0.1:8080", "acct:alice@other.example", "https://other.example/u/alice", "nonsense",
])
async def test_webfinger_unknown_is_404(node, resource):
    await create_agent(node.server.app[POOL], "alice")
    resp = await node.get("/.well-known/webfinger", params={"resource": resource})
    assert resp.status == 404
    assert (await resp.json())["success"] is False


async def test_webfinger_without_resource_is_400_and_instance_actor_is_found(node):
    assert (await node.get("/.well-known/webfinger")).status == 400
    jrd = await (await node.get("/.well-known/webfinger",
                                params={"resource": "acct:127.0.0.1:8080@127.0.0.1:8080"})).json()
    assert jrd["links"][1]["href"] == f"{BASE}/actor"
    assert jrd["links"][1]["properties"]["https://www.w3.org/ns/activitystreams#type"] == "Application"


# --- NodeInfo and host-meta -------------------------------------------------------------------


async def test_nodeinfo_shape_and_counts(node):
    pool = node.server.app[POOL]
    _, key = await create_agent(pool, "poster")
    await create_agent(pool, "idle")
    old, _ = await create_agent(pool, "sleeper")
    async with pool.acquire() as conn:
        await conn.execute("UPDATE agents SET created_at = now() - interval '400 days', last_active = NULL WHERE id = $1", old.id)
    post = await (await node.post("/api/v1/posts", headers=auth(key),
                                  json={"submolt_name": "general", "title": "T", "content": "C"})).json()
    resp = await node.post(f"/api/v1/posts/{post['post']['id']}/comments", headers=auth(key), json={"content": "hi"})
    assert resp.status == 201, await resp.text()
    # a remote row counts for nothing
    async with pool.acquire() as conn:
        await conn.execute("INSERT INTO agents (name, display_name, is_local, domain, actor_url) "
                           "VALUES ('far', 'far', false, 'x.example', 'https://x.example/u/far')")

    links = await (await node.get("/.well-known/nodeinfo")).json()
    assert links == {"links": [{"rel": "http://nodeinfo.diaspora.software/ns/schema/2.1",
                                "href": f"{BASE}/nodeinfo/2.1"}]}
    resp = await node.get("/nodeinfo/2.1")
    assert resp.status == 200
    assert 'profile="http://nodeinfo.diaspora.software/ns/schema/2.1#"' in resp.headers["Content-Type"]
    info = await resp.json()
    assert info["version"] == "2.1"
    assert info["software"]["name"] == "reef" and info["software"]["version"]
    assert info["protocols"] == ["activitypub"]
    assert info["openRegistrations"] is True
    assert info["usage"] == {"users": {"total": 3, "activeMonth": 2, "activeHalfyear": 2},
                             "localPosts": 1, "localComments": 1}


async def test_host_meta_points_at_webfinger(node):
    resp = await node.get("/.well-known/host-meta")
    assert resp.status == 200
    assert resp.content_type == "application/xrd+xml"
    text = await resp.text()
    assert f'template="{BASE}/.well-known/webfinger?resource={{uri}}"' in text
    assert 'rel="lrdd"' in text


# --- actor documents ---------------------------------------------------------------------------


async def _verifies_with_stored_key(node, doc: dict, table: str | None) -> None:
    """A signature made with the private key stored for the actor verifies with the publicKey served."""
    pool = node.server.app[POOL]
    async with pool.acquire() as conn:
        if table is None:
            private = await conn.fetchval("SELECT private_key_pem FROM instance_actor")
        else:
            private = await conn.fetchval(
                f"SELECT private_key_pem FROM {table} WHERE lower(name) = lower($1) AND is_local", doc["preferredUsername"]
            )
    assert private
    key = doc["publicKey"]
    assert key == {"id": doc["id"] + "#main-key", "owner": doc["id"], "publicKeyPem": key["publicKeyPem"]}
    headers = sign_request("GET", "http://peer.example/inbox", key_id=key["id"], private_key_pem=private)
    parsed = parse_signature("GET", "http://peer.example/inbox", headers)
    verify_signature(parsed, key["publicKeyPem"])


async def test_agent_actor_document(node):
    pool = node.server.app[POOL]
    agent, key = await create_agent(pool, "alice")
    resp = await node.patch("/api/v1/agents/me", headers=auth(key),
                            json={"description": "I *test*", "display_name": "Alice A", "avatar_url": "https://img.example/a.png"})
    assert resp.status == 200, await resp.text()
    resp = await node.get("/u/alice", headers={"Accept": AP})
    assert resp.status == 200
    assert resp.content_type == AP
    doc = await resp.json()
    actor = f"{BASE}/u/alice"
    assert doc["type"] == "Person" and doc["id"] == actor
    assert doc["preferredUsername"] == "alice" and doc["name"] == "Alice A"
    assert doc["summary"] == "<p>I <em>test</em></p>"
    assert doc["source"] == {"content": "I *test*", "mediaType": "text/markdown"}
    assert (doc["inbox"], doc["outbox"], doc["followers"], doc["following"]) == (
        f"{actor}/inbox", f"{actor}/outbox", f"{actor}/followers", f"{actor}/following")
    assert doc["endpoints"] == {"sharedInbox": f"{BASE}/inbox"}
    assert doc["icon"] == {"type": "Image", "url": "https://img.example/a.png"}
    assert "https://www.w3.org/ns/activitystreams" in doc["@context"]
    assert dt.datetime.fromisoformat(doc["published"].replace("Z", "+00:00"))
    await _verifies_with_stored_key(node, doc, "agents")
    # the key is made once: a second read serves the same one
    again = await (await node.get("/u/alice", headers={"Accept": LD})).json()
    assert again["publicKey"]["publicKeyPem"] == doc["publicKey"]["publicKeyPem"]
    assert (await node.get("/u/nobody", headers={"Accept": AP})).status == 404


async def test_agent_actor_carries_its_reputation_as_a_reef_extension(node):
    from federation import jsonld
    from node.services.trust import recompute_trust

    pool = node.server.app[POOL]
    seed, _ = await create_agent(pool, "elder", claimed=True)
    async with pool.acquire() as conn:
        owner = await conn.fetchval("INSERT INTO owners (display_name) VALUES ('h') RETURNING id")
        await conn.execute("UPDATE agents SET owner_id = $2, karma = 7 WHERE id = $1", seed.id, owner)
    doc = await (await node.get("/u/elder", headers={"Accept": AP})).json()
    assert doc["reputation"] == {"type": "Reputation", "karma": 7, "collaborationCredits": 0, "valueAttestations": 0,
                                 "trust": 0, "computedAt": None}  # not computed yet
    await recompute_trust(pool, node.server.app[CONFIG].reputation)
    doc = await (await node.get("/u/elder", headers={"Accept": AP})).json()
    rep = doc["reputation"]
    assert rep["trust"] > 0 and rep["computedAt"].endswith("Z") and rep["karma"] == 7
    # In JSON-LD the terms are Reef's own IRIs (so other servers can tell and ignore them).
    (expanded,) = jsonld.expand(doc)
    (block,) = expanded["https://w3id.org/reef#reputation"]
    assert block["@type"] == ["https://w3id.org/reef#Reputation"]
    assert block["https://w3id.org/reef#trust"][0]["@value"] == rep["trust"]
    assert block["https://w3id.org/reef#karma"][0]["@value"] == 7


async def test_submolt_group_document_and_collections(node):
    pool = node.server.app[POOL]
    owner, key = await create_agent(pool, "owner1")
    await make_submolt(node, key, "news")
    resp = await node.patch("/api/v1/submolts/news/settings", headers=auth(key), json={"posting_restricted_to_mods": True})
    assert resp.status == 200, await resp.text()
    doc = await (await node.get("/m/news", headers={"Accept": AP})).json()
    actor = f"{BASE}/m/news"
    assert doc["type"] == "Group" and doc["id"] == actor and doc["preferredUsername"] == "news"
    assert doc["attributedTo"] == f"{actor}/moderators"
    assert doc["featured"] == f"{actor}/featured" and doc["followers"] == f"{actor}/followers"
    assert doc["outbox"] == f"{actor}/outbox" and doc["inbox"] == f"{actor}/inbox"
    assert doc["postingRestrictedToMods"] is True
    assert doc["summary"] == "<p>All <strong>news</strong></p>"
    assert doc["endpoints"]["sharedInbox"] == f"{BASE}/inbox"
    await _verifies_with_stored_key(node, doc, "submolts")

    mods = await (await node.get("/m/news/moderators", headers={"Accept": AP})).json()
    assert mods["type"] == "OrderedCollection" and mods["orderedItems"] == [f"{BASE}/u/owner1"]
    followers = await (await node.get("/m/news/followers", headers={"Accept": AP})).json()
    assert followers["totalItems"] == 1  # the creator is subscribed
    post = await (await node.post("/api/v1/posts", headers=auth(key),
                                  json={"submolt_name": "news", "title": "Pinned", "content": "x"})).json()
    assert (await node.post(f"/api/v1/posts/{post['post']['id']}/pin", headers=auth(key))).status == 200
    featured = await (await node.get("/m/news/featured", headers={"Accept": AP})).json()
    assert [p["id"] for p in featured["orderedItems"]] == [f"{BASE}/post/{post['post']['id']}"]
    assert featured["orderedItems"][0]["stickied"] is True


async def test_key_pairs_are_made_once_even_when_asked_concurrently(node):
    import asyncio

    from federation.keys import actor_key_pair, instance_key_pair, signing_key_for

    pool, cfg = node.server.app[POOL], node.server.app[CONFIG]
    agent, _ = await create_agent(pool, "Keyed")
    pairs = await asyncio.gather(*(actor_key_pair(pool, "agent", agent.id) for _ in range(4)))
    assert len({p.private_key_pem for p in pairs}) == 1
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT private_key_pem FROM agents WHERE id = $1", agent.id) == pairs[0].private_key_pem
    instance = await asyncio.gather(*(instance_key_pair(pool) for _ in range(3)))
    assert len({p.public_key_pem for p in instance}) == 1
    key = await signing_key_for(pool, cfg, f"{BASE}/u/keyed")  # any case: the canonical id comes back
    assert (key.key_id, key.private_key_pem) == (f"{BASE}/u/Keyed#main-key", pairs[0].private_key_pem)
    assert (await signing_key_for(pool, cfg, f"{BASE}/actor")).key_id == f"{BASE}/actor#main-key"
    for url in (f"{BASE}/u/nobody", "https://other.example/u/keyed", f"{BASE}/post/{agent.id}"):
        with pytest.raises(LookupError):
            await signing_key_for(pool, cfg, url)


async def test_instance_actor_is_an_application_served_unsigned(node):
    resp = await node.get("/actor")  # no Accept: peers and tools get JSON anyway
    assert resp.status == 200
    doc = await resp.json()
    assert doc["type"] == "Application" and doc["id"] == f"{BASE}/actor"
    assert doc["inbox"] == f"{BASE}/actor/inbox"
    await _verifies_with_stored_key(node, doc, None)


# --- objects under content negotiation ---------------------------------------------------------


async def test_post_and_comment_urls_negotiate_content(node):
    pool = node.server.app[POOL]
    _, key = await create_agent(pool, "writer")
    _, key2 = await create_agent(pool, "replier")
    post = (await (await node.post("/api/v1/posts", headers=auth(key), json={
        "submolt_name": "general", "title": "A link", "url": "https://example.org/story", "content": "Read **this**"})).json())["post"]
    pid = post["id"]
    for accept in (AP, LD):
        resp = await node.get(f"/post/{pid}", headers={"Accept": accept})
        assert resp.status == 200 and resp.content_type == AP
        page = await resp.json()
        assert page["type"] == "Page" and page["id"] == f"{BASE}/post/{pid}"
        assert page["attributedTo"] == f"{BASE}/u/writer"
        assert page["to"] == [f"{BASE}/m/general", "https://www.w3.org/ns/activitystreams#Public"]
        assert page["audience"] == f"{BASE}/m/general"
        assert page["name"] == "A link" and page["mediaType"] == "text/html"
        assert page["content"] == "<p>Read <strong>this</strong></p>"
        assert page["source"] == {"content": "Read **this**", "mediaType": "text/markdown"}
        assert page["attachment"] == [{"type": "Link", "href": "https://example.org/story"}]
    # browsers go to the web site's page for the post
    resp = await node.get(f"/post/{pid}", headers={"Accept": "text/html"}, allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == f"/posts/{pid}"

    top = (await (await node.post(f"/api/v1/posts/{pid}/comments", headers=auth(key2), json={"content": "First"})).json())["comment"]
    reply = (await (await node.post(f"/api/v1/posts/{pid}/comments", headers=auth(key),
                                    json={"content": "Re", "parent_id": top["id"]})).json())["comment"]
    note = await (await node.get(f"/comment/{top['id']}", headers={"Accept": AP})).json()
    assert note["type"] == "Note" and note["inReplyTo"] == f"{BASE}/post/{pid}"
    assert note["attributedTo"] == f"{BASE}/u/replier"
    assert note["cc"] == [f"{BASE}/m/general", f"{BASE}/u/writer"]
    note = await (await node.get(f"/comment/{reply['id']}", headers={"Accept": LD})).json()
    assert note["inReplyTo"] == f"{BASE}/comment/{top['id']}"
    assert note["content"] == "<p>Re</p>"
    resp = await node.get(f"/comment/{reply['id']}", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == f"/comments/{reply['id']}"

    # deleted: 410 with a Tombstone
    assert (await node.delete(f"/api/v1/posts/{pid}", headers=auth(key))).status == 200
    resp = await node.get(f"/post/{pid}", headers={"Accept": AP})
    assert resp.status == 410
    tomb = await resp.json()
    assert tomb["type"] == "Tombstone" and tomb["formerType"] == "Page" and tomb["id"] == f"{BASE}/post/{pid}"
    assert (await node.get("/post/00000000-0000-0000-0000-000000000000", headers={"Accept": AP})).status == 404
    assert (await node.get("/post/not-a-uuid", headers={"Accept": AP})).status == 404


async def test_urls_parse_back():
    from node.platform.config import build_config

    cfg = replace(build_config({}, env={}), node={"domain": "reef.example", "https": True})
    assert urls.parse_local(cfg, "https://reef.example/u/alice") == urls.LocalRef("agent", "alice")
    assert urls.parse_local(cfg, "https://reef.example/m/news/followers") == urls.LocalRef("submolt", "news", "followers")
    assert urls.parse_local(cfg, "https://reef.example/actor") == urls.LocalRef("instance", None)
    assert urls.parse_local(cfg, "https://reef.example/inbox") == urls.LocalRef("shared_inbox", None)
    pid = "6f1c1d8e-34a1-4b8e-9a63-6f0b7d3c1a55"
    assert urls.parse_local(cfg, urls.post_url(cfg, pid)) == urls.LocalRef("post", pid)
    assert urls.parse_local(cfg, "https://reef.example/post/nope") is None
    assert urls.parse_local(cfg, "https://other.example/u/alice") is None
    assert urls.parse_local(cfg, "https://reef.example/u/alice/secret") is None


async def test_without_web_pages_browsers_get_the_api_json(aiohttp_client, make_config):
    from federation.gate import HTML_VIEWS

    app = create_app(node_config(make_config))
    del app[HTML_VIEWS]  # as on a node without the web site
    node = await aiohttp_client(app)
    agent, _ = await create_agent(node.server.app[POOL], "alice")
    for path, location in (
        ("/u/alice", "/api/v1/agents/profile?name=alice"),
        ("/m/general", "/api/v1/submolts/general"),
        (f"/post/{agent.id}", f"/api/v1/posts/{agent.id}"),
        (f"/comment/{agent.id}", f"/api/v1/comments/{agent.id}"),
    ):
        resp = await node.get(path, headers={"Accept": "text/html"}, allow_redirects=False)
        assert (resp.status, resp.headers["Location"]) == (302, location), path
    assert (await node.get("/u/alice")).status == 200  # followed to the profile JSON


# --- federation off ----------------------------------------------------------------------------


async def test_disabled_federation_answers_404_on_activitypub_routes(aiohttp_client, make_config):
    node = await aiohttp_client(create_app(node_config(make_config, enabled=False)))
    await create_agent(node.server.app[POOL], "alice")
    for path in ("/u/alice", "/m/general", "/actor", "/u/alice/followers"):
        assert (await node.get(path, headers={"Accept": AP})).status == 404, path
    assert (await node.get("/.well-known/webfinger", params={"resource": "acct:alice@127.0.0.1:8080"})).status == 404
    assert (await node.get("/.well-known/host-meta")).status == 404
    info = await (await node.get("/nodeinfo/2.1")).json()
    assert info["protocols"] == []
