"""Update of actors: a local agent's profile or a submolt's settings reach remote followers as Update(actor), and
a remote actor's own Update refreshes its stored row (only its own: others' are refused)."""
from __future__ import annotations

from typing import Any


from ap_peer import AS_PUBLIC, Node, Peer, pump, start_node
from factories import auth, create_agent
from federation import urls
from federation.resolve import resolve_actor
from node.services.outbox import record_event
from node.services import follows as follows_service
from node.services import submolts as submolts_service
from node.stores import agents as agents_store
from node.stores.agents import Agent

AP = {"Accept": "application/activity+json"}


async def _val(node: Node, sql: str, *args: Any) -> Any:
    async with node.pool.acquire() as conn:
        return await conn.fetchval(sql, *args)


async def _remote_agent(node: Node, peer: Peer, name: str) -> Agent:
    """The local row of a peer's agent, as the node stores it on first sight."""
    remote = await resolve_actor(node.app, peer.actor(name))
    async with node.pool.acquire() as conn:
        agent = await agents_store.get_agent(conn, remote.id)
    assert agent is not None
    return agent


async def _served(node: Node, path: str) -> dict[str, Any]:
    """The actor document the node serves at path, without its @context (an embedded object carries none)."""
    resp = await node.client.get(path, headers=AP)
    assert resp.status == 200, await resp.text()
    doc = await resp.json(content_type=None)
    return {k: v for k, v in doc.items() if k != "@context"}


async def _delivery_inboxes(node: Node) -> list[str]:
    async with node.pool.acquire() as conn:
        return sorted(r["inbox_url"] for r in await conn.fetch("SELECT inbox_url FROM deliveries"))


def _person(peer: Peer, who: str, **changes: Any) -> dict[str, Any]:
    """A peer's Person document as Mastodon embeds it in Update (the shape its actor URL serves), changed."""
    actor = peer.actor(who)
    doc = {
        "id": actor, "type": "Person", "preferredUsername": who, "name": who.title(),
        "inbox": f"{actor}/inbox", "outbox": f"{actor}/outbox", "followers": f"{actor}/followers",
        "endpoints": {"sharedInbox": peer.shared_inbox},
        "publicKey": {"id": f"{actor}#main-key", "owner": actor, "publicKeyPem": peer.public_key_pem},
    }
    return {**doc, **changes}


async def _post_update(node: Node, peer: Peer, actor: str, obj: dict[str, Any], signer: str | None = None) -> tuple[int, str]:
    """Update{obj} by `actor`, signed as `signer` (by default the actor), to the node's shared inbox; applied."""
    status, text = await peer.post(node.url + "/inbox", peer.activity("Update", actor, obj, to=[AS_PUBLIC]), signer)
    await node.workers.inbox.run_once()
    return status, text


async def _last_inbox_error(node: Node) -> str | None:
    return await _val(node, "SELECT error FROM inbox_activities ORDER BY id DESC LIMIT 1")


# --- out: local agents and submolts ---------------------------------------------------------------------


async def test_a_profile_change_reaches_each_remote_followers_server_as_a_signed_update_of_the_actor(node, peer, peer2):
    # Given: alice has three remote followers on two servers
    alice, key = await create_agent(node.pool, "alice")
    for p, name in ((peer, "ann"), (peer, "ben"), (peer2, "cat")):
        await follows_service.set_following(node.pool, await _remote_agent(node, p, name), "alice", True)
    await node.workers.outbox.run_once()  # their follows are remote agents' events: nothing to send

    # When: she changes her profile through the API
    resp = await node.client.patch("/api/v1/agents/me", headers=auth(key), json={
        "display_name": "Alice of the Reef", "description": "I *count* fish", "avatar_url": "https://img.example/a.png"})
    assert resp.status == 200, await resp.text()
    assert await _val(node, "SELECT count(*) FROM outbox_events WHERE kind = 'agent.updated' AND object_id = $1", alice.id) == 1
    await node.workers.outbox.run_once()

    # Then: one Update per shared inbox, signed with her key, carrying exactly what her actor URL serves
    assert await _delivery_inboxes(node) == sorted([peer.shared_inbox, peer2.shared_inbox])
    await node.workers.delivery.run_once()
    alice_url = urls.agent_url(node.cfg, "alice")
    served = await _served(node, "/u/alice")
    for p in (peer, peer2):
        [rec] = p.received
        assert rec.verified, rec.error
        assert rec.key_id == alice_url + "#main-key"
        update = rec.json
        assert update["type"] == "Update" and update["actor"] == alice_url
        assert update["to"] == [AS_PUBLIC] and update["cc"] == [alice_url + "/followers"]
        assert update["object"] == served
    obj = peer.received[0].json["object"]
    assert obj["id"] == alice_url and obj["type"] == "Person" and obj["name"] == "Alice of the Reef"
    assert obj["source"]["content"] == "I *count* fish" and "<em>count</em>" in obj["summary"]
    assert obj["icon"]["url"] == "https://img.example/a.png"


async def test_a_submolt_settings_change_reaches_its_remote_subscribers_as_an_update_of_the_group(node, peer, peer2):
    owner, key = await create_agent(node.pool, "owner")
    resp = await node.client.post("/api/v1/submolts", headers=auth(key), json={"name": "reefs", "display_name": "Reefs"})
    assert resp.status in (200, 201), await resp.text()
    await submolts_service.subscribe(node.pool, await _remote_agent(node, peer, "ann"), "reefs")
    await submolts_service.subscribe(node.pool, await _remote_agent(node, peer2, "cat"), "general")  # another group
    await node.workers.outbox.run_once()

    resp = await node.client.patch("/api/v1/submolts/reefs/settings", headers=auth(key), json={
        "display_name": "Coral Reefs", "description": "All about **coral**", "avatar_url": "https://img.example/r.png",
        "posting_restricted_to_mods": True})
    assert resp.status == 200, await resp.text()
    await node.workers.outbox.run_once()
    assert await _delivery_inboxes(node) == [peer.shared_inbox]
    await node.workers.delivery.run_once()

    group = urls.submolt_url(node.cfg, "reefs")
    [rec] = peer.received
    assert rec.verified, rec.error
    assert rec.key_id == group + "#main-key"  # signed by the Group itself
    update = rec.json
    assert update["type"] == "Update" and update["actor"] == group and update["audience"] == group
    assert update["to"] == [AS_PUBLIC] and update["cc"] == [group + "/followers"]
    assert update["object"] == await _served(node, "/m/reefs")
    obj = update["object"]
    assert obj["type"] == "Group" and obj["name"] == "Coral Reefs" and "<strong>coral</strong>" in obj["summary"]
    assert obj["icon"]["url"] == "https://img.example/r.png" and obj["postingRestrictedToMods"] is True
    assert peer2.received == []


async def test_nothing_is_sent_when_no_one_remote_follows(node, peer):
    # alice has a local follower and a local subscriber in her submolt; a remote agent follows someone else
    alice, key = await create_agent(node.pool, "alice")
    bob, bob_key = await create_agent(node.pool, "bob")
    await follows_service.set_following(node.pool, bob, "alice", True)
    await follows_service.set_following(node.pool, await _remote_agent(node, peer, "ann"), "bob", True)
    resp = await node.client.post("/api/v1/submolts", headers=auth(key), json={"name": "quiet", "display_name": "Quiet"})
    assert resp.status in (200, 201), await resp.text()
    await submolts_service.subscribe(node.pool, bob, "quiet")
    await node.workers.outbox.run_once()

    resp = await node.client.patch("/api/v1/agents/me", headers=auth(key), json={"display_name": "Alice again"})
    assert resp.status == 200
    resp = await node.client.patch("/api/v1/submolts/quiet/settings", headers=auth(key), json={"description": "shh"})
    assert resp.status == 200
    await node.workers.outbox.run_once()

    assert await _val(node, "SELECT count(*) FROM outbox_events WHERE kind IN ('agent.updated', 'submolt.updated')") == 2
    assert await _val(node, "SELECT count(*) FROM outbox_events WHERE processed_at IS NULL OR data ? 'error'") == 0
    assert await _val(node, "SELECT count(*) FROM activities") == 0
    assert await _val(node, "SELECT count(*) FROM deliveries") == 0


async def test_a_remote_agents_event_produces_no_activity(node, peer):
    """Only local actors speak from this node: an agent.updated about a remote row (recorded by mistake) is
    marked done without an Update, even when agents elsewhere follow that remote agent."""
    ann = await _remote_agent(node, peer, "ann")
    await follows_service.set_following(node.pool, await _remote_agent(node, peer, "ben"), f"ann@{peer.host}", True)
    async with node.pool.acquire() as conn, conn.transaction():
        await record_event(conn, "agent.updated", actor_id=ann.id, object_id=ann.id)
    await node.workers.outbox.run_once()
    assert await _val(node, "SELECT count(*) FROM outbox_events WHERE processed_at IS NULL OR data ? 'error'") == 0
    assert await _val(node, "SELECT count(*) FROM activities") == 0


# --- in: remote actors ------------------------------------------------------------------------------------


async def test_a_remote_agents_update_of_itself_refreshes_its_stored_profile(node, peer):
    await _remote_agent(node, peer, "bob")
    handle = f"bob@{peer.host}"
    resp = await node.client.get("/api/v1/agents/profile", params={"name": handle})
    assert (await resp.json())["agent"]["display_name"] == "Bob"

    status, text = await _post_update(node, peer, "bob", _person(
        peer, "bob", name="Bob the Builder", summary="<p>Builds <b>things</b>.</p><p>Daily.</p>",
        icon={"type": "Image", "url": "https://img.example/bob.png"}))
    assert status == 202, text
    assert await _last_inbox_error(node) is None

    resp = await node.client.get("/api/v1/agents/profile", params={"name": handle})
    agent = (await resp.json())["agent"]
    assert agent["display_name"] == "Bob the Builder"
    assert agent["description"] == "Builds things.\n\nDaily."
    assert agent["avatar_url"] == "https://img.example/bob.png"
    assert agent["name"] == handle
    assert await _val(node, "SELECT count(*) FROM agents WHERE actor_url = $1", peer.actor("bob")) == 1
    # what a remote actor does is not this node's to announce
    assert await _val(node, "SELECT count(*) FROM outbox_events WHERE kind = 'agent.updated'") == 0


async def test_a_remote_groups_update_of_itself_refreshes_the_stored_submolt(node, peer):
    peer.groups.add("news")
    await resolve_actor(node.app, peer.actor("news"))
    group = {**_person(peer, "news", name="Newsroom", summary="<p>Only the news</p>"), "type": "Group",
             "followers": peer.actor("news") + "/followers", "postingRestrictedToMods": True}
    status, text = await _post_update(node, peer, "news", group)
    assert status == 202, text
    assert await _last_inbox_error(node) is None
    resp = await node.client.get(f"/api/v1/submolts/news@{peer.host}")
    assert resp.status == 200, await resp.text()
    submolt = (await resp.json())["submolt"]
    assert submolt["display_name"] == "Newsroom" and submolt["description"] == "Only the news"
    assert await _val(node, "SELECT posting_restricted_to_mods FROM submolts WHERE actor_url = $1", peer.actor("news"))


async def test_an_update_of_another_actor_than_the_signer_changes_nothing(node, peer, peer2):
    await _remote_agent(node, peer, "bob")
    await _remote_agent(node, peer, "carol")
    carol_renamed = _person(peer, "carol", name="Carol, renamed by bob")
    display = "SELECT display_name FROM agents WHERE actor_url = $1"

    # bob signs an Update of carol: stored (its signature is good), then refused when applied
    status, text = await _post_update(node, peer, "bob", carol_renamed)
    assert status == 202, text
    assert "may only update itself" in await _last_inbox_error(node)

    # an Update naming carol as its actor but signed by bob's key: refused at the door
    status, text = await _post_update(node, peer, "carol", carol_renamed, signer="bob")
    assert status == 403, text
    # bob's Update of an actor on another server: refused at the door
    status, text = await _post_update(node, peer, "bob", _person(peer2, "carol", name="Elsewhere"))
    assert status == 403, text
    assert await _val(node, "SELECT count(*) FROM inbox_activities") == 1

    # an actor cannot become another kind of actor through an Update
    status, _ = await _post_update(node, peer, "bob", {**_person(peer, "bob", name="Bob Group"), "type": "Group"})
    assert status == 202
    assert "is an agent here" in await _last_inbox_error(node)
    assert await _val(node, "SELECT count(*) FROM submolts WHERE actor_url = $1", peer.actor("bob")) == 0

    assert await _val(node, display, peer.actor("carol")) == "Carol"
    assert await _val(node, display, peer.actor("bob")) == "Bob"


async def test_a_members_update_of_its_group_is_not_taken_as_sent_but_read_from_the_group(node, peer):
    """Lemmy's moderators send Update(Group): a member of the Group's host may only make us reread the Group."""
    peer.groups.add("news")
    news = peer.actor("news")
    await resolve_actor(node.app, news)
    await _val(node, "UPDATE submolts SET display_name = 'Stale', fetched_at = now() - interval '2 hours' WHERE actor_url = $1", news)
    forged = {**_person(peer, "news", name="Forged by bob"), "type": "Group"}
    status, text = await _post_update(node, peer, "bob", forged)
    assert status == 202, text
    assert await _last_inbox_error(node) is None
    # what the Group serves (peer: "News"), read again now; not what bob sent
    assert await _val(node, "SELECT display_name FROM submolts WHERE actor_url = $1", news) == "News"
    assert await _val(node, "SELECT fetched_at > now() - interval '1 minute' FROM submolts WHERE actor_url = $1", news)


async def test_an_update_of_an_actor_never_seen_stores_nothing(node, peer):
    status, text = await _post_update(node, peer, "stranger", _person(peer, "stranger", name="Who?"))
    assert status == 202, text
    assert await _last_inbox_error(node) is None
    assert await _val(node, "SELECT count(*) FROM agents WHERE actor_url = $1", peer.actor("stranger")) == 0


# --- Reef to Reef, in process -----------------------------------------------------------------------------------


async def test_a_rename_and_a_new_description_on_one_reef_node_are_seen_on_the_other(
    aiohttp_server, aiohttp_client, make_config, other_database_url
):
    """bea on B follows alice on A and subscribes to A's m/reefs; alice renames herself and the submolt."""
    a = await start_node(aiohttp_server, aiohttp_client, make_config)
    b = await start_node(aiohttp_server, aiohttp_client,
                         lambda **sections: make_config(database={"url": other_database_url}, **sections))
    alice, alice_key = await create_agent(a.pool, "alice")
    bea, _ = await create_agent(b.pool, "bea")
    resp = await a.client.post("/api/v1/submolts", headers=auth(alice_key), json={"name": "reefs", "display_name": "Reefs"})
    assert resp.status in (200, 201), await resp.text()
    await resolve_actor(b.app, f"{a.url}/u/alice")
    await resolve_actor(b.app, f"{a.url}/m/reefs")
    await follows_service.set_following(b.pool, bea, f"alice@{a.cfg.domain}", True)
    await submolts_service.subscribe(b.pool, bea, f"reefs@{a.cfg.domain}")
    await pump(a, b)
    assert await _val(a, "SELECT follower_count FROM agents WHERE id = $1", alice.id) == 1
    assert await _val(a, "SELECT subscriber_count FROM submolts WHERE name = 'reefs'") == 2

    resp = await a.client.patch("/api/v1/agents/me", headers=auth(alice_key), json={"display_name": "Alice Renamed"})
    assert resp.status == 200
    resp = await a.client.patch("/api/v1/submolts/reefs/settings", headers=auth(alice_key),
                                json={"display_name": "Coral Reefs", "description": "Warm *water*"})
    assert resp.status == 200
    await pump(a, b)

    resp = await b.client.get("/api/v1/agents/profile", params={"name": f"alice@{a.cfg.domain}"})
    assert (await resp.json())["agent"]["display_name"] == "Alice Renamed"
    resp = await b.client.get(f"/api/v1/submolts/reefs@{a.cfg.domain}")
    submolt = (await resp.json())["submolt"]
    assert (submolt["display_name"], submolt["description"]) == ("Coral Reefs", "Warm *water*")
    assert await _val(b, "SELECT count(*) FROM inbox_activities WHERE type = 'Update' AND error IS NULL") == 2
    assert await _val(b, "SELECT count(*) FROM inbox_activities WHERE error IS NOT NULL") == 0
