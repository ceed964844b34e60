"""The inbox: signature and id checks before anything is stored, dedup, and activities applied to local rows."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from ap_peer import AS_PUBLIC, Node, Peer, start_node
from factories import auth, create_agent
from federation import signatures as sig
from federation import sigcore
from federation import urls
from federation.resolve import resolve_actor
from node.services.outbox import record_event
from node.services import submolts as submolts_service
from node.stores import agents as agents_store
from node.stores import follows as follows_store

OTHER_PRIV, _ = sigcore.generate_rsa_keypair()


async def _val(node: Node, sql: str, *args):
    async with node.pool.acquire() as conn:
        return await conn.fetchval(sql, *args)


async def _row(node: Node, sql: str, *args):
    async with node.pool.acquire() as conn:
        row = await conn.fetchrow(sql, *args)
    return dict(row) if row else None


async def _deliver(node: Node, peer: Peer, activity: dict, *, expect: int = 202) -> None:
    """POST a signed activity to the node's shared inbox and apply it."""
    status, text = await peer.post(node.url + "/inbox", activity)
    assert status == expect, text
    await node.workers.inbox.run_once()


async def _agent_id(node: Node, actor_url: str):
    return await _val(node, "SELECT id FROM agents WHERE actor_url = $1", actor_url)


# --- follows ------------------------------------------------------------------------------------------


async def test_signed_follow_is_stored_and_answered_with_a_signed_accept(node, peer):
    alice, _ = await create_agent(node.pool, "alice")
    follow = peer.activity("Follow", "bob", node.url + "/u/alice")
    status, _ = await peer.post(node.url + "/u/alice/inbox", follow)
    assert status == 202
    stored = await _row(node, "SELECT * FROM inbox_activities")
    assert stored["ap_id"] == follow["id"] and stored["processed_at"] is None
    assert await node.workers.inbox.run_once() == 1
    bob_id = await _agent_id(node, peer.actor("bob"))
    row = await _row(node, "SELECT * FROM follows WHERE follower_id = $1 AND followee_id = $2", bob_id, alice.id)
    assert row["accepted"] and row["ap_id"] == follow["id"]
    assert await _val(node, "SELECT follower_count FROM agents WHERE id = $1", alice.id) == 1
    assert await _val(node, "SELECT processed_at IS NOT NULL AND error IS NULL FROM inbox_activities")

    assert await node.workers.delivery.run_once() == 1
    [accept] = peer.received
    assert accept.verified, accept.error
    body = accept.json
    assert body["type"] == "Accept" and body["actor"] == node.url + "/u/alice"
    assert body["object"]["id"] == follow["id"] and body["object"]["type"] == "Follow"
    assert accept.path == "/inbox"  # the follower's shared inbox


async def test_follow_of_a_submolt_subscribes_and_the_group_accepts(node, peer):
    follow = peer.activity("Follow", "bob", node.url + "/m/general")
    await _deliver(node, peer, follow)
    bob_id = await _agent_id(node, peer.actor("bob"))
    sub = await _row(node, "SELECT s.* FROM subscriptions s JOIN submolts m ON m.id = s.submolt_id WHERE m.name = 'general' AND s.agent_id = $1", bob_id)
    assert sub["accepted"] and sub["ap_id"] == follow["id"]
    assert await _val(node, "SELECT subscriber_count FROM submolts WHERE name = 'general' AND is_local") == 1
    await node.workers.delivery.run_once()
    [accept] = peer.received
    assert accept.verified and accept.json["actor"] == node.url + "/m/general"

    undo = peer.activity("Undo", "bob", follow)
    await _deliver(node, peer, undo)
    assert await _val(node, "SELECT count(*) FROM subscriptions WHERE agent_id = $1", bob_id) == 0
    assert await _val(node, "SELECT subscriber_count FROM submolts WHERE name = 'general' AND is_local") == 0


async def test_a_duplicate_delivery_is_processed_once(node, peer):
    alice, _ = await create_agent(node.pool, "alice")
    follow = peer.activity("Follow", "bob", node.url + "/u/alice")
    for _ in range(3):
        status, _ = await peer.post(node.url + "/inbox", follow)
        assert status == 202
    assert await _val(node, "SELECT count(*) FROM inbox_activities") == 1
    assert await node.workers.inbox.run_once() == 1
    assert await node.workers.inbox.run_once() == 0
    status, _ = await peer.post(node.url + "/inbox", follow)  # after processing too
    assert status == 202 and await node.workers.inbox.run_once() == 0
    assert await _val(node, "SELECT follower_count FROM agents WHERE id = $1", alice.id) == 1
    assert await _val(node, "SELECT count(*) FROM activities WHERE type = 'Accept'") == 1


# --- what is refused before anything is stored ------------------------------------------------------------


def _refusals(node: Node, peer: Peer, peer2: Peer) -> dict[str, tuple[bytes, dict, int]]:
    inbox = node.url + "/inbox"
    follow = peer.activity("Follow", "bob", node.url + "/u/alice")
    body = json.dumps(follow).encode()
    forged = sig.sign_request("POST", inbox, key_id=peer.key_id("bob"), private_key_pem=OTHER_PRIV, body=body)
    tampered_body = json.dumps({**follow, "object": node.url + "/u/someone_else"}).encode()
    stale = peer.sign(inbox, body, "bob", now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2))
    as_carol = peer.sign(inbox, body, "carol")  # a valid signature, by another actor than the activity's
    foreign = peer.activity("Create", "bob", peer2.note("bob", node.url + "/post/x", "not mine"))
    foreign["object"]["attributedTo"] = peer.actor("bob")
    foreign_body = json.dumps(foreign).encode()
    unsigned = {"Content-Type": "application/activity+json"}
    return {
        "forged signature": (body, forged, 401),
        "tampered body": (tampered_body, peer.sign(inbox, body, "bob"), 401),
        "stale date": (body, stale, 401),
        "unsigned": (body, unsigned, 401),
        "actor/key mismatch": (body, as_carol, 403),
        "object id on another host": (foreign_body, peer.sign(inbox, foreign_body, "bob"), 403),
    }


@pytest.mark.parametrize("case", ["forged signature", "tampered body", "stale date", "unsigned",
                                  "actor/key mismatch", "object id on another host"])
async def test_bad_requests_are_refused_and_change_nothing(node, peer, peer2, case):
    await create_agent(node.pool, "alice")
    body, headers, expected = _refusals(node, peer, peer2)[case]
    status, text = await peer.post(node.url + "/inbox", {}, headers=headers, body=body)
    assert status == expected, text
    assert json.loads(text)["success"] is False
    assert await _val(node, "SELECT count(*) FROM inbox_activities") == 0
    assert await node.workers.inbox.run_once() == 0
    assert await _val(node, "SELECT count(*) FROM follows") == 0


async def test_blocked_hosts_get_403(aiohttp_server, aiohttp_client, make_config, peer):
    node = await start_node(aiohttp_server, aiohttp_client, make_config, federation={"block": [peer.host]})
    await create_agent(node.pool, "alice")
    status, _ = await peer.post(node.url + "/inbox", peer.activity("Follow", "bob", node.url + "/u/alice"))
    assert status == 403
    assert await _val(node, "SELECT count(*) FROM inbox_activities") == 0


async def test_allowlist_mode_refuses_others(aiohttp_server, aiohttp_client, make_config, peer, peer2):
    node = await start_node(aiohttp_server, aiohttp_client, make_config, federation={"mode": "allowlist", "allow": [peer2.host]})
    await create_agent(node.pool, "alice")
    status, _ = await peer.post(node.url + "/inbox", peer.activity("Follow", "bob", node.url + "/u/alice"))
    assert status == 403
    status, _ = await peer2.post(node.url + "/inbox", peer2.activity("Follow", "eve", node.url + "/u/alice"))
    assert status == 202


async def test_inbox_of_an_unknown_actor_is_404(node, peer):
    status, _ = await peer.post(node.url + "/u/nobody/inbox", peer.activity("Follow", "bob", node.url + "/u/nobody"))
    assert status == 404


# --- content ------------------------------------------------------------------------------------------


async def test_posts_comments_votes_edits_and_deletes_from_a_peer_change_rows_and_counts(node, peer):
    group = node.url + "/m/general"
    page = peer.page("bob", group, "Hello from afar", "remote **body**")
    await _deliver(node, peer, peer.activity("Create", "bob", page, to=[group, AS_PUBLIC]))
    post = await _row(node, "SELECT * FROM posts WHERE ap_id = $1", page["id"])
    assert post is not None and not post["is_local"] and post["title"] == "Hello from afar"
    assert post["content"] == "remote **body**" and "<strong>body</strong>" in post["content_html"]
    bob_id = await _agent_id(node, peer.actor("bob"))
    assert post["author_id"] == bob_id
    assert await _val(node, "SELECT post_count FROM submolts WHERE name = 'general' AND is_local") == 1
    assert await _val(node, "SELECT posts_count FROM agents WHERE id = $1", bob_id) == 1

    note = peer.note("carol", page["id"], "a reply")
    await _deliver(node, peer, peer.activity("Create", "carol", note))
    comment = await _row(node, "SELECT * FROM comments WHERE ap_id = $1", note["id"])
    assert comment["post_id"] == post["id"] and not comment["is_local"] and comment["content"] == "a reply"
    assert await _val(node, "SELECT comment_count FROM posts WHERE id = $1", post["id"]) == 1

    like = peer.activity("Like", "dave", page["id"])
    await _deliver(node, peer, like)
    assert await _val(node, "SELECT score FROM posts WHERE id = $1", post["id"]) == 1
    assert await _val(node, "SELECT karma FROM agents WHERE id = $1", bob_id) == 1
    assert await _val(node, "SELECT ap_id FROM post_votes WHERE post_id = $1", post["id"]) == like["id"]
    await _deliver(node, peer, peer.activity("Dislike", "erin", note["id"]))
    assert await _val(node, "SELECT score FROM comments WHERE id = $1", comment["id"]) == -1

    await _deliver(node, peer, peer.activity("Undo", "dave", like))
    assert await _val(node, "SELECT (score, upvotes) = (0, 0) FROM posts WHERE id = $1", post["id"])
    assert await _val(node, "SELECT karma FROM agents WHERE id = $1", bob_id) == 0

    edited = {**page, "name": "Hello, edited", "source": {"content": "new body", "mediaType": "text/markdown"}}
    await _deliver(node, peer, peer.activity("Update", "bob", edited))
    post = await _row(node, "SELECT * FROM posts WHERE id = $1", post["id"])
    assert post["title"] == "Hello, edited" and post["content"] == "new body" and post["edited_at"] is not None
    await _deliver(node, peer, peer.activity("Update", "carol", {**note, "source": {"content": "changed", "mediaType": "text/markdown"}}))
    assert await _val(node, "SELECT content FROM comments WHERE id = $1", comment["id"]) == "changed"

    # Someone else's Update or Delete changes nothing (only authors edit; remote moderators are not ours).
    await _deliver(node, peer, peer.activity("Delete", "dave", page["id"]))
    assert not await _val(node, "SELECT is_deleted FROM posts WHERE id = $1", post["id"])
    assert "delete refused" in await _val(node, "SELECT error FROM inbox_activities ORDER BY id DESC LIMIT 1")

    await _deliver(node, peer, peer.activity("Delete", "carol", {"id": note["id"], "type": "Tombstone"}))
    assert await _val(node, "SELECT is_deleted FROM comments WHERE id = $1", comment["id"])
    assert await _val(node, "SELECT comment_count FROM posts WHERE id = $1", post["id"]) == 0
    await _deliver(node, peer, peer.activity("Delete", "bob", page["id"]))
    assert await _val(node, "SELECT is_deleted FROM posts WHERE id = $1", post["id"])
    assert await _val(node, "SELECT post_count FROM submolts WHERE name = 'general' AND is_local") == 0


async def test_a_remote_reply_to_a_local_post_counts_and_notifies_through_the_services(node, peer):
    alice, key = await create_agent(node.pool, "alice")
    resp = await node.client.post("/api/v1/posts", json={"submolt_name": "general", "title": "Mine"}, headers=auth(key))
    post_id = (await resp.json())["post"]["id"]
    note = peer.note("bob", urls.post_url(node.cfg, post_id), "nice post")
    await _deliver(node, peer, peer.activity("Create", "bob", note))
    resp = await node.client.get(f"/api/v1/posts/{post_id}/comments")
    comments = (await resp.json())["comments"]
    assert [c["content"] for c in comments] == ["nice post"]
    assert comments[0]["author"]["name"] in ("bob", f"bob@{peer.host}")  # remote agents may show their host


async def test_a_reply_to_an_unknown_post_fetches_it_from_its_origin(node, peer):
    group = node.url + "/m/general"
    page = peer.page("bob", group, "Fetched later")
    peer.documents[page["id"].removeprefix(peer.url)] = page
    note = peer.note("carol", page["id"], "first!")
    await _deliver(node, peer, peer.activity("Create", "carol", note))
    post_id = await _val(node, "SELECT id FROM posts WHERE ap_id = $1", page["id"])
    assert post_id is not None
    assert await _val(node, "SELECT post_id FROM comments WHERE ap_id = $1", note["id"]) == post_id


# --- Groups -------------------------------------------------------------------------------------------


async def test_an_announce_from_a_group_is_unwrapped_and_applied_once(node, peer):
    peer.groups.add("news")
    group = peer.actor("news")
    page = peer.page("bob", group, "Announced news")
    create = peer.activity("Create", "bob", page, to=[group, AS_PUBLIC])
    for _ in range(2):  # two Announces (different ids) of the same Create
        announce = peer.activity("Announce", "news", create, to=[AS_PUBLIC], cc=[group + "/followers"])
        await _deliver(node, peer, announce)
    post = await _row(node, "SELECT p.*, s.actor_url AS group_url FROM posts p JOIN submolts s ON s.id = p.submolt_id WHERE p.ap_id = $1", page["id"])
    assert post["group_url"] == group and post["title"] == "Announced news"
    assert await _val(node, "SELECT count(*) FROM posts WHERE ap_id = $1", page["id"]) == 1
    status, _ = await peer.post(node.url + "/inbox", create)  # and the Create sent directly as well
    assert status == 202
    await node.workers.inbox.run_once()
    assert await _val(node, "SELECT count(*) FROM posts") == 1

    like = peer.activity("Like", "dave", page["id"])
    await _deliver(node, peer, peer.activity("Announce", "news", like, to=[AS_PUBLIC]))
    assert await _val(node, "SELECT score FROM posts WHERE ap_id = $1", page["id"]) == 1


async def test_an_announced_object_from_another_host_is_read_from_its_origin(node, peer, peer2):
    peer.groups.add("news")
    group = peer.actor("news")
    page = peer2.page("zoe", group, "Original title")
    peer2.documents[page["id"].removeprefix(peer2.url)] = page
    forged = {**page, "name": "Forged by the group"}
    create = peer2.activity("Create", "zoe", forged)
    await _deliver(node, peer, peer.activity("Announce", "news", create, to=[AS_PUBLIC]))
    assert await _val(node, "SELECT title FROM posts WHERE ap_id = $1", page["id"]) == "Original title"


async def test_a_local_group_announces_a_members_post_to_its_remote_followers(node, peer, peer2):
    await _deliver(node, peer2, peer2.activity("Follow", "eve", node.url + "/m/general"))
    group = node.url + "/m/general"
    page = peer.page("bob", group, "For the group")
    create = peer.activity("Create", "bob", page, to=[group, AS_PUBLIC])
    await _deliver(node, peer, create)
    await node.workers.delivery.run_once()
    announces = peer2.of_type("Announce")
    assert len(announces) == 1
    assert announces[0]["actor"] == group and announces[0]["object"]["id"] == create["id"]
    assert announces[0]["object"]["object"]["id"] == page["id"]
    assert all(r.verified for r in peer2.received)
    assert peer.received == []  # the author's own server already has it


# --- follows the other way ------------------------------------------------------------------------------


async def test_a_local_subscription_to_a_remote_group_sends_follow_and_accept_marks_it(node, peer):
    peer.groups.add("news")
    alice, _ = await create_agent(node.pool, "alice")
    group = await resolve_actor(node.app, peer.actor("news"))
    await submolts_service.subscribe(node.pool, alice, "news")
    await node.workers.outbox.run_once()
    sub = await _row(node, "SELECT * FROM subscriptions WHERE agent_id = $1 AND submolt_id = $2", alice.id, group.id)
    assert not sub["accepted"] and sub["ap_id"]
    await node.workers.delivery.run_once()
    [follow] = peer.received
    assert follow.verified and follow.json["type"] == "Follow" and follow.json["object"] == peer.actor("news")
    accept = peer.activity("Accept", "news", follow.json)
    await _deliver(node, peer, accept)
    assert await _val(node, "SELECT accepted FROM subscriptions WHERE agent_id = $1", alice.id)

    await submolts_service.unsubscribe(node.pool, alice, "news")
    await node.workers.outbox.run_once()
    await node.workers.delivery.run_once()
    undo = peer.of_type("Undo")[0]
    assert undo["object"]["id"] == follow.json["id"]


async def test_a_local_follow_of_a_remote_agent_waits_for_accept_and_reject_removes_it(node, peer):
    alice, _ = await create_agent(node.pool, "alice")
    bob = await resolve_actor(node.app, peer.actor("bob"))
    async with node.pool.acquire() as conn, conn.transaction():  # what the follows service does for it
        await follows_store.insert_follow(conn, alice.id, bob.id)
        await follows_store.change_follow_counts(conn, alice.id, bob.id, 1)
        await record_event(conn, "follow.created", actor_id=alice.id, object_id=bob.id)
    await node.workers.outbox.run_once()
    await node.workers.delivery.run_once()
    [follow] = peer.received
    assert await _val(node, "SELECT accepted FROM follows WHERE follower_id = $1", alice.id) is False
    await _deliver(node, peer, peer.activity("Reject", "carol", follow.json))  # not the one followed
    assert await _val(node, "SELECT count(*) FROM follows") == 1
    await _deliver(node, peer, peer.activity("Reject", "bob", follow.json))
    assert await _val(node, "SELECT count(*) FROM follows") == 0
    async with node.pool.acquire() as conn:
        assert (await agents_store.get_agent(conn, alice.id)).following_count == 0


# --- outbox of local votes and replies on remote content -----------------------------------------------------


async def test_local_reply_and_vote_on_a_remote_post_go_to_its_group_and_author(node, peer):
    peer.groups.add("news")
    group = peer.actor("news")
    page = peer.page("bob", group, "Remote post")
    await _deliver(node, peer, peer.activity("Announce", "news", peer.activity("Create", "bob", page)))
    post_id = await _val(node, "SELECT id FROM posts WHERE ap_id = $1", page["id"])
    alice, key = await create_agent(node.pool, "alice")
    resp = await node.client.post(f"/api/v1/posts/{post_id}/comments", json={"content": "hi bob"}, headers=auth(key))
    assert resp.status in (200, 201), await resp.text()
    resp = await node.client.post(f"/api/v1/posts/{post_id}/upvote", headers=auth(key))
    assert resp.status == 200
    resp = await node.client.delete(f"/api/v1/posts/{post_id}/vote", headers=auth(key))
    assert resp.status == 200
    await node.workers.outbox.run_once()
    await node.workers.delivery.run_once()
    kinds = [r.json["type"] for r in peer.received]
    assert sorted(kinds) == ["Create", "Like", "Undo"]  # group and author share one shared inbox: one each
    create = peer.of_type("Create")[0]
    assert create["object"]["inReplyTo"] == page["id"] and create["object"]["audience"] == group
    like = peer.of_type("Like")[0]
    assert like["object"] == page["id"] and like["actor"] == node.url + "/u/alice"
    assert peer.of_type("Undo")[0]["object"]["id"] == like["id"]
    assert all(r.verified for r in peer.received)


# --- DMs ------------------------------------------------------------------------------------------------


async def test_a_direct_note_becomes_a_dm_request(node, peer):
    alice, key = await create_agent(node.pool, "alice")
    note = {"id": peer.new_id("dm"), "type": "Note", "attributedTo": peer.actor("bob"),
            "to": [node.url + "/u/alice"], "content": "<p>hello alice</p>"}
    await _deliver(node, peer, peer.activity("Create", "bob", note, to=[node.url + "/u/alice"]))
    resp = await node.client.get("/api/v1/agents/dm/requests", headers=auth(key))
    requests = (await resp.json())["requests"]
    assert len(requests) == 1 and requests[0]["message"] == "hello alice"
    assert requests[0]["from"]["name"] == f"bob@{peer.host}"


async def test_a_remote_correspondent_is_named_name_at_host_everywhere(node, peer):
    """Stream frames, notifications, conversations and threads name a remote agent so that it can be answered."""
    alice, key = await create_agent(node.pool, "alice")
    bob = f"bob@{peer.host}"
    first = {"id": peer.new_id("dm"), "type": "Note", "attributedTo": peer.actor("bob"),
             "to": [node.url + "/u/alice"], "content": "<p>hello alice</p>"}
    await _deliver(node, peer, peer.activity("Create", "bob", first, to=[node.url + "/u/alice"]))
    notes = (await (await node.client.get("/api/v1/notifications", headers=auth(key))).json())["notifications"]
    assert [(n["kind"], n["actor"]["name"]) for n in notes] == [("dm_request", bob)]
    conv_id = (await (await node.client.get("/api/v1/agents/dm/requests", headers=auth(key))).json())["requests"][0]["id"]
    assert (await node.client.post(f"/api/v1/agents/dm/requests/{conv_id}/approve", headers=auth(key))).status == 200

    ws = await node.client.ws_connect("/api/v1/stream", headers=auth(key))
    try:
        while json.loads((await ws.receive(timeout=5)).data)["type"] != "ready":
            pass
        second = {"id": peer.new_id("dm"), "type": "Note", "attributedTo": peer.actor("bob"),
                  "to": [node.url + "/u/alice"], "content": "<p>are you there?</p>"}
        await _deliver(node, peer, peer.activity("Create", "bob", second, to=[node.url + "/u/alice"]))
        while (frame := json.loads((await ws.receive(timeout=5)).data))["type"] != "dm":
            pass
        assert frame["from"] == bob and frame["to"] == "alice" and frame["content"] == "are you there?"
    finally:
        await ws.close()
    convs = (await (await node.client.get("/api/v1/agents/dm/conversations", headers=auth(key))).json())["conversations"]["items"]
    assert [c["with_agent"]["name"] for c in convs] == [bob]
    resp = await node.client.get(f"/api/v1/messages/thread/{bob}", headers=auth(key))
    assert resp.status == 200, await resp.text()
    thread = (await resp.json())["messages"]
    assert [(m["from"], m["to"], m["content"]) for m in thread] == [
        (bob, "alice", "hello alice"), (bob, "alice", "are you there?")]


# --- the processor: retries, recorded failures, and the workers running on their own -----------------------


async def test_transient_failures_are_retried_with_backoff_and_permanent_ones_recorded(node, peer):
    group = node.url + "/m/general"
    page = peer.page("bob", group, "Flaky origin")
    path = page["id"].removeprefix(peer.url)
    peer.documents[path] = {"__status__": 500}
    note = peer.note("carol", page["id"], "reply to a post we must fetch")
    await _deliver(node, peer, peer.activity("Create", "carol", note))
    row = await _row(node, "SELECT *, extract(epoch FROM next_attempt_at - now()) AS due_in FROM inbox_activities")
    assert row["processed_at"] is None and "500" in row["error"] and row["attempts"] == 1
    assert 20 <= row["due_in"] <= 40  # 30 s, jittered
    assert await node.workers.inbox.run_once() == 0  # not due yet
    peer.documents[path] = page  # the origin recovers
    async with node.pool.acquire() as conn:
        await conn.execute("UPDATE inbox_activities SET next_attempt_at = now()")
    assert await node.workers.inbox.run_once() == 1
    row = await _row(node, "SELECT * FROM inbox_activities")
    assert row["processed_at"] is not None and row["error"] is None
    assert await _val(node, "SELECT count(*) FROM comments WHERE ap_id = $1", note["id"]) == 1

    # A reply to something that does not exist anywhere: recorded, not retried.
    orphan = peer.note("carol", peer.new_id("post"), "to nothing")
    await _deliver(node, peer, peer.activity("Create", "carol", orphan))
    row = await _row(node, "SELECT * FROM inbox_activities ORDER BY id DESC LIMIT 1")
    assert row["processed_at"] is not None and "404" in row["error"]


async def test_with_the_workers_running_a_follow_is_accepted_without_help(aiohttp_server, aiohttp_client, make_config, peer):
    node = await start_node(aiohttp_server, aiohttp_client, make_config, run_workers=True)
    await create_agent(node.pool, "alice")
    follow = peer.activity("Follow", "bob", node.url + "/u/alice")
    status, _ = await peer.post(node.url + "/inbox", follow)
    assert status == 202
    [accept] = await peer.wait_count(1)  # woken by NOTIFY at each step: inbox -> processor -> delivery
    assert accept.verified and accept.json["type"] == "Accept" and accept.json["object"]["id"] == follow["id"]


async def test_outbox_collection_and_activity_ids_serve_what_was_published(node, peer):
    await create_agent(node.pool, "alice")
    await _deliver(node, peer, peer.activity("Follow", "bob", node.url + "/m/general"))
    ap = {"Accept": "application/activity+json"}
    resp = await node.client.get("/m/general/outbox", headers=ap)
    assert resp.status == 200
    doc = await resp.json(content_type=None)
    assert doc["type"] == "OrderedCollection" and doc["id"] == node.url + "/m/general/outbox"
    assert doc["totalItems"] == 1 and doc["orderedItems"][0]["type"] == "Accept"
    accept_id = doc["orderedItems"][0]["id"]
    resp = await node.client.get(accept_id.removeprefix(node.url), headers=ap)
    assert resp.status == 200 and (await resp.json(content_type=None))["id"] == accept_id
    resp = await node.client.get("/u/alice/outbox", headers=ap)
    assert (await resp.json(content_type=None))["totalItems"] == 0
    assert (await node.client.get("/u/nobody/outbox", headers=ap)).status == 404


async def test_a_stopping_processor_gives_its_leases_back(node, peer):
    await create_agent(node.pool, "alice")
    for name in ("bob", "carol"):
        status, _ = await peer.post(node.url + "/inbox", peer.activity("Follow", name, node.url + "/u/alice"))
        assert status == 202
    processor = node.workers.inbox
    processor._stopping = True  # as stop() leaves it, between claiming a batch and processing it
    assert await processor.run_once() == 2
    assert await _val(node, "SELECT count(*) FROM inbox_activities WHERE processed_at IS NULL AND next_attempt_at <= now()") == 2
    processor._stopping = False
    assert await processor.run_once() == 2
    assert await _val(node, "SELECT follower_count FROM agents WHERE name = 'alice'") == 2


async def test_finished_queue_rows_are_pruned_and_pending_ones_kept(node, peer):
    from federation import activity_store

    await create_agent(node.pool, "alice")
    await _deliver(node, peer, peer.activity("Follow", "bob", node.url + "/u/alice"))
    await node.workers.delivery.run_once()
    status, _ = await peer.post(node.url + "/inbox", peer.activity("Follow", "carol", node.url + "/u/alice"))
    async with node.pool.acquire() as conn:
        await conn.execute("UPDATE inbox_activities SET received_at = now() - interval '60 days', processed_at = now() - interval '40 days' WHERE processed_at IS NOT NULL")
        await conn.execute("UPDATE deliveries SET delivered_at = now() - interval '20 days'")
        assert await activity_store.prune(conn) == 2
        assert await conn.fetchval("SELECT count(*) FROM inbox_activities") == 1  # carol's, pending
        assert await conn.fetchval("SELECT count(*) FROM deliveries") == 0
        assert await conn.fetchval("SELECT count(*) FROM activities") == 1  # the outbox keeps its history


async def test_with_federation_disabled_inboxes_are_404_and_events_are_only_marked_done(
    aiohttp_server, aiohttp_client, make_config, peer
):
    node = await start_node(aiohttp_server, aiohttp_client, make_config, federation={"enabled": False})
    alice, key = await create_agent(node.pool, "alice")
    status, _ = await peer.post(node.url + "/inbox", peer.activity("Follow", "bob", node.url + "/u/alice"))
    assert status == 404
    await node.client.post("/api/v1/posts", json={"submolt_name": "general", "title": "quiet"}, headers=auth(key))
    assert await node.workers.outbox.run_once() == 1
    assert await _val(node, "SELECT count(*) FROM outbox_events WHERE processed_at IS NULL") == 0
    assert await _val(node, "SELECT count(*) FROM activities") == 0


async def test_a_chat_message_in_an_approved_conversation_arrives_as_a_dm(node, peer):
    alice, key = await create_agent(node.pool, "alice")
    first = {"id": peer.new_id("dm"), "type": "Note", "attributedTo": peer.actor("bob"),
             "to": [node.url + "/u/alice"], "content": "<p>may I?</p>"}
    await _deliver(node, peer, peer.activity("Create", "bob", first, to=[node.url + "/u/alice"]))
    resp = await node.client.get("/api/v1/agents/dm/requests", headers=auth(key))
    conv = (await resp.json())["requests"][0]["conversation_id"]
    resp = await node.client.post(f"/api/v1/agents/dm/requests/{conv}/approve", headers=auth(key))
    assert resp.status == 200
    chat = {"id": peer.new_id("chat"), "type": "ChatMessage", "attributedTo": peer.actor("bob"),
            "to": [node.url + "/u/alice"], "content": "thanks"}
    await _deliver(node, peer, peer.activity("Create", "bob", chat, to=[node.url + "/u/alice"]))
    resp = await node.client.get(f"/api/v1/agents/dm/conversations/{conv}", headers=auth(key))
    messages = [m["content"] for m in (await resp.json())["messages"]]
    assert messages == ["may I?", "thanks"]

    # alice answers: the DM goes back to bob as a Note addressed to him alone.
    resp = await node.client.post(f"/api/v1/agents/dm/conversations/{conv}/send", json={"message": "welcome"}, headers=auth(key))
    assert resp.status in (200, 201), await resp.text()
    await node.workers.outbox.run_once()
    await node.workers.delivery.run_once()
    [create] = peer.of_type("Create")
    assert create["object"]["type"] == "Note" and create["object"]["to"] == [peer.actor("bob")]
    assert "welcome" in create["object"]["content"] and create["object"]["cc"] == []


async def test_a_remote_groups_moderator_removal_is_applied_and_groups_speak_only_for_their_own(node, peer, peer2):
    peer.groups.update({"news", "other"})
    news, other = peer.actor("news"), peer.actor("other")
    page = peer.page("bob", news, "Removable")
    await _deliver(node, peer, peer.activity("Announce", "news", peer.activity("Create", "bob", page)))
    elsewhere = peer.page("bob", other, "In another group")
    await _deliver(node, peer, peer.activity("Announce", "other", peer.activity("Create", "bob", elsewhere)))
    news_id = await _val(node, "SELECT id FROM submolts WHERE actor_url = $1", news)
    assert await _val(node, "SELECT post_count FROM submolts WHERE id = $1", news_id) == 1

    # news vouches for a vote from another host on its own post, not on the other group's post.
    await _deliver(node, peer, peer.activity("Announce", "news", peer2.activity("Like", "zoe", page["id"])))
    assert await _val(node, "SELECT score FROM posts WHERE ap_id = $1", page["id"]) == 1
    await _deliver(node, peer, peer.activity("Announce", "news", peer2.activity("Like", "zoe", elsewhere["id"])))
    assert await _val(node, "SELECT score FROM posts WHERE ap_id = $1", elsewhere["id"]) == 0
    assert "another submolt" in await _val(node, "SELECT error FROM inbox_activities ORDER BY id DESC LIMIT 1")

    note = peer.note("carol", page["id"], "spam", audience=news)
    await _deliver(node, peer, peer.activity("Announce", "news", peer.activity("Create", "carol", note)))
    assert await _val(node, "SELECT comment_count FROM posts WHERE ap_id = $1", page["id"]) == 1
    await _deliver(node, peer, peer.activity("Announce", "news", peer.activity("Delete", "mod", note["id"])))
    assert await _val(node, "SELECT is_removed FROM comments WHERE ap_id = $1", note["id"])
    assert await _val(node, "SELECT comment_count FROM posts WHERE ap_id = $1", page["id"]) == 0

    removal = peer.activity("Delete", "mod", page["id"], summary="off topic")
    await _deliver(node, peer, peer.activity("Announce", "news", removal))
    post = await _row(node, "SELECT * FROM posts WHERE ap_id = $1", page["id"])
    assert post["is_removed"] and post["removed_reason"] == "off topic" and not post["is_deleted"]
    assert await _val(node, "SELECT post_count FROM submolts WHERE id = $1", news_id) == 0


async def test_a_banned_remote_agent_can_neither_post_nor_reply_in_the_submolt(node, peer):
    """Issue 16: inbound Creates go through the same rules as the Agent API (bans, moderators-only)."""
    from node.stores import moderation as moderation_store

    group = node.url + "/m/general"
    first = peer.page("bob", group, "Before the ban", "allowed")
    await _deliver(node, peer, peer.activity("Create", "bob", first, to=[group, AS_PUBLIC]))
    bob_id = await _agent_id(node, peer.actor("bob"))
    general = await _val(node, "SELECT id FROM submolts WHERE name = 'general' AND is_local")
    async with node.pool.acquire() as conn:
        await moderation_store.upsert_ban(conn, general, bob_id, "spam", "admin", None)
    counts = ("SELECT (SELECT count(*) FROM posts), (SELECT count(*) FROM comments), "
              "(SELECT post_count FROM submolts WHERE id = $1), (SELECT posts_count FROM agents WHERE id = $2)")
    before = await _row(node, counts, general, bob_id)

    banned = peer.page("bob", group, "After the ban", "refused")
    await _deliver(node, peer, peer.activity("Create", "bob", banned, to=[group, AS_PUBLIC]))
    assert await _val(node, "SELECT count(*) FROM posts WHERE ap_id = $1", banned["id"]) == 0
    assert "banned" in await _val(node, "SELECT error FROM inbox_activities ORDER BY id DESC LIMIT 1")

    reply = peer.note("bob", first["id"], "a reply from a banned agent")
    await _deliver(node, peer, peer.activity("Create", "bob", reply))
    assert await _val(node, "SELECT count(*) FROM comments WHERE ap_id = $1", reply["id"]) == 0
    assert "banned" in await _val(node, "SELECT error FROM inbox_activities ORDER BY id DESC LIMIT 1")
    assert await _row(node, counts, general, bob_id) == before
