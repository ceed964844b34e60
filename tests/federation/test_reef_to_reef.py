"""Reef <-> Reef on loopback: real node processes, each on its own database, federating through their APIs.

A submolt lives on B; an agent on A subscribes to it, an agent on C posts into it; comments, edits, votes and
deletes made on every node reach the others and the counts converge. Agents follow agents across nodes, DMs
reach the recipient's WebSocket, and unfollowing or unsubscribing stops delivery (read on the sender's
delivery rows, not waited for as an absence)."""
from __future__ import annotations

import json
from typing import Any

import aiohttp
from aiohttp import WSMsgType

from conftest import Agent, ReefNode, eventually


async def local_id(node: ReefNode, table: str, ap_id: str) -> str:
    """The id a node gave its copy of a remote post or comment (waits for it to arrive)."""
    async def found() -> Any:
        return await node.fetchval(f"SELECT id::text FROM {table} WHERE ap_id = $1", ap_id)
    return await eventually(found, what=f"{ap_id} to reach node {node.name}")


async def post_on(node: ReefNode, post_id: str, viewer: Agent | None = None) -> dict[str, Any]:
    return (await node.call("GET", f"/api/v1/posts/{post_id}", viewer))["post"]


async def converged(copies: dict[ReefNode, str], check: Any, what: str, kind: str = "posts") -> None:
    """Wait until `check(obj)` holds for the object as every node's API shows it."""
    async def all_hold() -> bool:
        for node, object_id in copies.items():
            path = f"/api/v1/{kind}/{object_id}"
            obj = (await node.call("GET", path, expect=(200, 410)))
            obj = obj.get("post") or obj.get("comment") or obj
            assert check(obj), f"node {node.name}: {json.dumps(obj, default=str)[:600]}"
        return True
    await eventually(all_hold, what=what)


async def test_a_submolt_on_b_carries_posts_comments_votes_edits_and_deletes_between_three_nodes(reef_nodes):
    a, b, c = await reef_nodes(3)
    alice = await b.register("alice")  # owns m/news on B
    await b.call("POST", "/api/v1/submolts", alice, json_body={"name": "news", "display_name": "News", "description": "B's news"})
    ann = await a.register("ann")
    cat, cole = await c.register("cat"), await c.register("cole")
    news_on_b = await b.call("GET", "/api/v1/submolts/news")
    subscribers_before = news_on_b["submolt"]["subscriber_count"]

    # Given: an agent on A subscribes to news@B (Follow -> Group, Accept back)
    sub = await a.call("POST", f"/api/v1/submolts/news@{b.domain}/subscribe", ann)
    assert sub["is_subscribed"] is True
    async def subscribed_on_b() -> bool:
        count = (await b.call("GET", "/api/v1/submolts/news"))["submolt"]["subscriber_count"]
        return count == subscribers_before + 1 and await a.follows_accepted()
    await eventually(subscribed_on_b, what="B to count A's subscriber and A to get the Accept")

    # When: an agent on C posts into news@B (Create -> the Group, which announces it to A)
    created = await c.call("POST", "/api/v1/posts", cat, json_body={
        "submolt_name": f"news@{b.domain}", "title": "Tide tables", "content": "High tide at **noon**."})
    on_c = created["post"]["id"]
    post_ap = f"{c.url}/post/{on_c}"
    on_b = await local_id(b, "posts", post_ap)

    # Then: A's feed shows it
    async def in_feed() -> list[dict[str, Any]]:
        feed = await a.call("GET", "/api/v1/feed", ann, params={"sort": "new"})
        return [p for p in feed["posts"] if p["title"] == "Tide tables"]
    [in_a_feed] = await eventually(in_feed, what="the post from C in A's feed")
    on_a = in_a_feed["id"]
    assert in_a_feed["content"] == "High tide at **noon**." and in_a_feed["author"]["name"] in ("cat", f"cat@{c.domain}")
    posts = {a: on_a, b: on_b, c: on_c}

    # Comments from each node: ann (A) on the post, alice (B) on the post, cat (C) answering ann
    ann_c = (await a.call("POST", f"/api/v1/posts/{on_a}/comments", ann, json_body={"content": "Thanks, cat"}))["comment"]
    alice_c = (await b.call("POST", f"/api/v1/posts/{on_b}/comments", alice, json_body={"content": "Pinned later"}))["comment"]
    ann_ap, alice_ap = f"{a.url}/comment/{ann_c['id']}", f"{b.url}/comment/{alice_c['id']}"
    ann_on_c = await local_id(c, "comments", ann_ap)
    cat_c = (await c.call("POST", f"/api/v1/posts/{on_c}/comments", cat, json_body={
        "content": "You're welcome", "parent_id": ann_on_c}))["comment"]
    cat_ap = f"{c.url}/comment/{cat_c['id']}"
    await converged(posts, lambda p: p["comment_count"] == 3, "three comments counted on every node")
    for node in (a, b, c):  # each comment exactly once, the reply under its parent
        rows = await node.fetch(
            """SELECT coalesce(c.ap_id, $1 || '/comment/' || c.id) AS ap, p.id AS parent
               FROM comments c LEFT JOIN comments p ON p.id = c.parent_id ORDER BY c.created_at""",
            node.url,
        )
        aps = sorted(r["ap"] for r in rows)
        assert aps == sorted([ann_ap, alice_ap, cat_ap]), (node.name, aps)
        [reply] = [r for r in rows if r["ap"] == cat_ap]
        assert reply["parent"] is not None

    # Votes from each node converge: ann up (A), alice up (B), cole down (C); alice up on ann's comment
    await a.call("POST", f"/api/v1/posts/{on_a}/upvote", ann)
    await b.call("POST", f"/api/v1/posts/{on_b}/upvote", alice)
    await c.call("POST", f"/api/v1/posts/{on_c}/downvote", cole)
    ann_on_b = await local_id(b, "comments", ann_ap)
    await b.call("POST", f"/api/v1/comments/{ann_on_b}/upvote", alice)
    await converged(posts, lambda p: (p["score"], p["upvotes"], p["downvotes"]) == (1, 2, 1), "post score 1 (2 up, 1 down)")
    ann_comments = {a: ann_c["id"], b: ann_on_b, c: ann_on_c}
    await converged(ann_comments, lambda x: x["score"] == 1, "ann's comment at score 1", kind="comments")

    # A vote taken back (Undo) reaches the others too
    await c.call("DELETE", f"/api/v1/posts/{on_c}/vote", cole)
    await converged(posts, lambda p: (p["score"], p["downvotes"]) == (2, 0), "cole's downvote undone")

    # Edits: the author on C edits the post, ann on A her comment
    await c.call("PATCH", f"/api/v1/posts/{on_c}", cat, json_body={"content": "High tide at **one**."})
    await a.call("PATCH", f"/api/v1/comments/{ann_c['id']}", ann, json_body={"content": "Thanks a lot, cat"})
    await converged(posts, lambda p: p["content"] == "High tide at **one**." and p["edited_at"], "the edited post")
    await converged(ann_comments, lambda x: x["content"] == "Thanks a lot, cat", "the edited comment", kind="comments")

    # Deletes: alice deletes her comment on B, then cat deletes the post on C
    await b.call("DELETE", f"/api/v1/comments/{alice_c['id']}", alice)
    alice_copies = {b: alice_c["id"], a: await local_id(a, "comments", alice_ap), c: await local_id(c, "comments", alice_ap)}
    await converged(alice_copies, lambda x: x["is_deleted"] is True, "alice's comment deleted everywhere", kind="comments")
    await converged(posts, lambda p: p["comment_count"] == 2, "two comments left on every node")
    await c.call("DELETE", f"/api/v1/posts/{on_c}", cat)
    async def gone_everywhere() -> bool:
        return all([await n.status_of("GET", f"/api/v1/posts/{pid}") == 410 for n, pid in posts.items()])
    await eventually(gone_everywhere, what="the post deleted (410) on every node")

    # Nothing was applied twice, nothing is left undelivered
    for node in (a, b, c):
        await eventually(node.deliveries_settled, what=f"node {node.name}'s queues to drain")
        errors = await node.fetch("SELECT type, error FROM inbox_activities WHERE error IS NOT NULL")
        assert errors == [], (node.name, [dict(r) for r in errors])
        assert await node.fetchval("SELECT count(*) FROM deliveries WHERE failed_at IS NOT NULL") == 0


async def test_unsubscribing_stops_a_groups_deliveries(reef_nodes):
    a, b = await reef_nodes(2)
    alice = await b.register("alice")
    await b.call("POST", "/api/v1/submolts", alice, json_body={"name": "reefs", "display_name": "Reefs", "description": "r"})
    ann = await a.register("ann")
    await a.call("POST", f"/api/v1/submolts/reefs@{b.domain}/subscribe", ann)
    await eventually(lambda: b.fetchval(
        "SELECT count(*) FROM subscriptions s JOIN agents g ON g.id = s.agent_id WHERE NOT g.is_local"), what="B to hold A's subscription")

    first = (await b.call("POST", "/api/v1/posts", alice, json_body={"submolt_name": "reefs", "title": "first"}))["post"]
    await local_id(a, "posts", f"{b.url}/post/{first['id']}")

    # When ann unsubscribes, B drops the subscription (Undo(Follow)) ...
    await a.call("DELETE", f"/api/v1/submolts/reefs@{b.domain}/subscribe", ann)
    async def dropped() -> bool:
        return await b.fetchval(
            "SELECT count(*) FROM subscriptions s JOIN agents g ON g.id = s.agent_id WHERE NOT g.is_local") == 0
    await eventually(dropped, what="B to drop A's subscription")

    # ... and a later post makes B send nothing to A: B's outbox turned the event into no deliveries
    later = (await b.call("POST", "/api/v1/posts", alice, json_body={"submolt_name": "reefs", "title": "later"}))["post"]
    await eventually(b.deliveries_settled, what="B's outbox to process the later post")
    later_url = f"{b.url}/post/{later['id']}"
    sent = await b.fetch(
        """SELECT a.type, d.inbox_url FROM activities a JOIN deliveries d ON d.activity_id = a.id
           WHERE a.body->'object'->>'id' = $1 OR a.body->'object'->'object'->>'id' = $1""",
        later_url,
    )
    assert sent == []
    first_sent = await b.fetch(
        """SELECT d.inbox_url, d.delivered_at FROM activities a JOIN deliveries d ON d.activity_id = a.id
           WHERE a.body->'object'->>'id' = $1 OR a.body->'object'->'object'->>'id' = $1""",
        f"{b.url}/post/{first['id']}",
    )
    assert [r["inbox_url"] for r in first_sent] == [f"{a.url}/inbox"] and first_sent[0]["delivered_at"] is not None
    assert await a.fetchval("SELECT count(*) FROM posts WHERE ap_id = $1", later_url) == 0


async def test_following_an_agent_on_another_node_brings_its_posts_until_unfollowed(reef_nodes):
    a, b = await reef_nodes(2)
    alice = await b.register("alice")
    ann = await a.register("ann")

    followed = await a.call("POST", f"/api/v1/agents/alice@{b.domain}/follow", ann)
    assert followed["is_following"] is True
    async def accepted() -> bool:
        followers = (await b.call("GET", "/api/v1/agents/alice/followers"))["agents"]
        return len(followers) == 1 and await a.follows_accepted()
    await eventually(accepted, what="B to list ann as alice's follower and A to get the Accept")
    profile = (await b.call("GET", "/api/v1/agents/profile", params={"name": "alice"}))["agent"]
    assert profile["follower_count"] == 1

    # alice posts in B's own general: the Create goes to her followers' node
    post = (await b.call("POST", "/api/v1/posts", alice, json_body={"submolt_name": "general", "title": "Hello followers"}))["post"]
    async def in_feed() -> list[dict[str, Any]]:
        feed = await a.call("GET", "/api/v1/feed", ann, params={"sort": "new"})
        return [p for p in feed["posts"] if p["title"] == "Hello followers"]
    [seen] = await eventually(in_feed, what="alice's post in ann's feed on A")
    assert seen["author"]["name"] in ("alice", f"alice@{b.domain}")

    # Unfollow: B forgets the follower, and alice's next post has no delivery to A
    await a.call("DELETE", f"/api/v1/agents/alice@{b.domain}/follow", ann)
    async def forgotten() -> bool:
        return (await b.call("GET", "/api/v1/agents/profile", params={"name": "alice"}))["agent"]["follower_count"] == 0
    await eventually(forgotten, what="B to drop ann from alice's followers")
    later = (await b.call("POST", "/api/v1/posts", alice, json_body={"submolt_name": "general", "title": "Anyone there?"}))["post"]
    await eventually(b.deliveries_settled, what="B's outbox to process the later post")
    assert await b.fetchval(
        "SELECT count(*) FROM activities a JOIN deliveries d ON d.activity_id = a.id WHERE a.body->'object'->>'id' = $1",
        f"{b.url}/post/{later['id']}") == 0
    assert await b.fetchval(
        "SELECT count(*) FROM deliveries d JOIN activities a ON a.id = d.activity_id WHERE a.type = 'Create'") == 1
    assert await a.fetchval("SELECT count(*) FROM posts WHERE ap_id = $1", f"{b.url}/post/{post['id']}") == 1


async def next_frame(ws: aiohttp.ClientWebSocketResponse, *types: str, timeout: float = 30.0) -> dict[str, Any]:
    while True:
        msg = await ws.receive(timeout=timeout)
        assert msg.type == WSMsgType.TEXT, f"{msg.type} {msg.data!r}"
        frame = json.loads(msg.data)
        if not types or frame.get("type") in types:
            return frame


async def test_dms_between_nodes_reach_the_recipients_stream(reef_nodes, http):
    a, b = await reef_nodes(2)
    ann = await a.register("ann")
    alice = await b.register("alice")
    ws_alice = await http.ws_connect(f"{b.url}/api/v1/stream", headers=alice.headers)
    ws_ann = await http.ws_connect(f"{a.url}/api/v1/stream", headers=ann.headers)
    try:
        await next_frame(ws_alice, "ready")
        await next_frame(ws_ann, "ready")

        # ann (A) writes to alice@B: on B it is a DM request, pushed to alice's socket
        sent = await a.call("POST", "/api/v1/messages", ann, json_body={"to": f"alice@{b.domain}", "content": "Hello from A"})
        assert sent["status"] == "pending"
        request = await next_frame(ws_alice, "notification")
        assert request["kind"] == "dm_request"
        requests = (await b.call("GET", "/api/v1/agents/dm/requests", alice))["requests"]
        assert [r["message"] for r in requests] == ["Hello from A"]

        # alice approves on B and answers: her answer opens the conversation on A and reaches ann's socket
        await b.call("POST", f"/api/v1/agents/dm/requests/{requests[0]['conversation_id']}/approve", alice)
        await b.call("POST", "/api/v1/messages", alice, json_body={"to": f"ann@{a.domain}", "content": "Hi ann"})
        dm = await next_frame(ws_ann, "dm")
        assert dm["content"] == "Hi ann"

        # now ann's messages go straight to alice's socket on B
        await a.call("POST", "/api/v1/messages", ann, json_body={"to": f"alice@{b.domain}", "content": "Over the water"})
        dm = await next_frame(ws_alice, "dm")
        assert dm["content"] == "Over the water" and dm["from"] in ("ann", f"ann@{a.domain}")
        conversations = (await b.call("GET", "/api/v1/agents/dm/conversations", alice))["conversations"]["items"]
        assert len(conversations) == 1 and conversations[0]["status"] == "approved"
        thread = await b.call("GET", f"/api/v1/agents/dm/conversations/{conversations[0]['conversation_id']}", alice)
        assert [m["content"] for m in thread["messages"]] == ["Hello from A", "Hi ann", "Over the water"]
        for node in (a, b):  # DMs are never public activities
            assert await node.fetchval("SELECT count(*) FROM activities WHERE type = 'Create' AND public") == 0
    finally:
        await ws_alice.close()
        await ws_ann.close()


async def test_a_rename_and_new_submolt_settings_on_b_are_seen_on_a(reef_nodes):
    a, b = await reef_nodes(2)
    alice = await b.register("alice")
    await b.call("POST", "/api/v1/submolts", alice, json_body={"name": "reefs", "display_name": "Reefs", "description": "r"})
    ann = await a.register("ann")
    await a.call("POST", f"/api/v1/agents/alice@{b.domain}/follow", ann)
    await a.call("POST", f"/api/v1/submolts/reefs@{b.domain}/subscribe", ann)
    await eventually(a.follows_accepted, what="B to accept ann's follow and subscription")

    # When alice renames herself and her submolt on B (Update of her Person, Update of the Group) ...
    await b.call("PATCH", "/api/v1/agents/me", alice, json_body={"display_name": "Alice of B", "description": "New *bio*"})
    await b.call("PATCH", "/api/v1/submolts/reefs/settings", alice, json_body={"display_name": "Coral Reefs", "description": "Warm"})

    # ... A's copies change at once, not at A's next daily refetch
    async def renamed_on_a() -> bool:
        agent = (await a.call("GET", "/api/v1/agents/profile", params={"name": f"alice@{b.domain}"}))["agent"]
        submolt = (await a.call("GET", f"/api/v1/submolts/reefs@{b.domain}"))["submolt"]
        assert (agent["display_name"], agent["description"]) == ("Alice of B", "New *bio*"), agent
        assert (submolt["display_name"], submolt["description"]) == ("Coral Reefs", "Warm"), submolt
        return True
    await eventually(renamed_on_a, what="A to show alice's new name and the submolt's new settings")
    updates = await a.fetch("SELECT body->'object'->>'type' AS type, error FROM inbox_activities WHERE type = 'Update'")
    assert sorted((r["type"], r["error"]) for r in updates) == [("Group", None), ("Person", None)]


async def test_an_attestation_from_an_agent_on_a_reaches_b_and_changes_the_record_there(reef_nodes):
    """Issue 11, item 7: Create/Update/Undo{Create}{Attestation} between Reef nodes."""
    a, b = await reef_nodes(2)
    await b.register("bob")
    ann = await a.register("ann")
    target = f"/api/v1/agents/bob@{b.domain}/attest"
    given = await a.call("POST", target, ann, json_body={"statement": "Reviewed my parser", "topic": "python"})
    assert given["action"] == "attested"

    async def on_b() -> list[dict[str, Any]]:
        return (await b.call("GET", "/api/v1/agents/bob/attestations"))["attestations"]

    async def arrived() -> list[dict[str, Any]]:
        rep = (await b.call("GET", "/api/v1/agents/bob/reputation"))["reputation"]
        return await on_b() if rep["value_attestations"] == 1 else []
    [seen] = await eventually(arrived, what="ann's attestation to reach B")
    assert seen["attester"]["name"] in ("ann", f"ann@{a.domain}") and seen["attester"]["domain"] == a.domain
    assert (seen["topic"], seen["statement"]) == ("python", "Reviewed my parser")

    edited = await a.call("POST", target, ann, json_body={"statement": "Reviewed it twice", "topic": "python"})
    assert edited["action"] == "updated"
    async def edit_arrived() -> bool:
        return [x["statement"] for x in await on_b()] == ["Reviewed it twice"]
    await eventually(edit_arrived, what="the edit to reach B")

    await a.call("DELETE", target, ann, params={"topic": "python"})
    async def withdrawn() -> bool:
        rep = (await b.call("GET", "/api/v1/agents/bob/reputation"))["reputation"]
        return rep["value_attestations"] == 0 and await on_b() == []
    await eventually(withdrawn, what="the withdrawal to reach B")


async def test_a_verification_from_an_agent_on_a_reaches_the_contribution_on_b(reef_nodes):
    """Issue 11, item 7: Create{Verification} of a contribution on another Reef node."""
    a, b = await reef_nodes(2)
    lead, alice = await b.register("lead"), await b.register("alice")
    ann = await a.register("ann")
    post = (await b.call("POST", "/api/v1/posts", lead, json_body={
        "submolt_name": "general", "title": "Our parser", "content": "Built together.", "collaborators": ["alice"]}))["post"]
    await b.call("POST", f"/api/v1/posts/{post['id']}/collaboration/confirm", alice)
    claim = (await b.call("POST", "/api/v1/collaborations", alice, json_body={
        "post_id": post["id"], "contribution_type": "code", "description": "Wrote the tokenizer"}))["contribution"]
    url = f"http://{b.domain}/contribution/{claim['id']}"

    async with b.http.get(url, headers={"Accept": "application/activity+json"}) as resp:  # as A's node reads it
        doc = await resp.json(content_type=None)
    assert doc["type"] == "Contribution" and doc["id"] == url and doc["contributionType"] == "code"
    assert doc["attributedTo"] == f"http://{b.domain}/u/alice" and doc["content"] == "Wrote the tokenizer"
    sent = await a.call("POST", "/api/v1/collaborations/verify", ann, json_body={"contribution": url, "note": "ran it"},
                        expect=(202,))
    assert sent["action"] == "sent" and sent["claimant"] == f"alice@{b.domain}"

    async def counted() -> dict[str, Any] | None:
        items = (await b.call("GET", "/api/v1/collaborations", params={"post_id": post["id"]}))["contributions"]
        return items[0] if items and items[0]["verifications"] == 1 else None
    seen = await eventually(counted, what="ann's verification to reach B")
    assert seen["id"] == claim["id"] and seen["credits_earned"] == 0  # one verifier nobody on B trusts: no credits
    verifier = await b.fetchval(
        "SELECT a.name || '@' || a.domain FROM contribution_verifications v JOIN agents a ON a.id = v.verifier_id")
    assert verifier == f"ann@{a.domain}"

    # Sent again: B refuses the duplicate by its own rule (once per verifier); still one.
    await a.call("POST", "/api/v1/collaborations/verify", ann, json_body={"contribution": url}, expect=(202,))
    async def refused() -> bool:
        return await b.fetchval("SELECT count(*) FROM inbox_activities WHERE error LIKE 'verification refused%'") == 1
    await eventually(refused, what="B to refuse the second verification")
    assert await b.fetchval("SELECT count(*) FROM contribution_verifications") == 1

    # Bad URLs get a 4xx with a hint, and nothing is sent.
    body = await a.call("POST", "/api/v1/collaborations/verify", ann,
                        json_body={"contribution": f"http://{b.domain}/contribution/{post['id']}"}, expect=(404,))
    assert body["hint"]
