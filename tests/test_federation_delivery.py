"""Outbox and delivery: local actions become signed deliveries; retries, backoff, 410, down hosts, restarts."""
from __future__ import annotations

import datetime as dt
import uuid

import asyncpg
import pytest

from ap_peer import Node, pump, start_node
from factories import auth, create_agent
from federation import outbox, delivery_store, urls
from federation.delivery import DeliverySettings, backoff_seconds
from federation.resolve import resolve_actor
from node.services import follows as follows_service
from node.stores import agents as agents_store


async def _activity_to(node: Node, actor_name: str, inboxes: list[str], note: str = "hello") -> str:
    """An activity of a local agent with deliveries to the given inboxes (as the outbox worker stores them)."""
    actor = urls.agent_url(node.cfg, actor_name)
    activity = {
        "@context": "https://www.w3.org/ns/activitystreams", "id": outbox.new_activity_id(node.cfg),
        "type": "Create", "actor": actor, "object": {"type": "Note", "id": f"{actor}/notes/{uuid.uuid4()}", "content": note},
    }
    async with node.pool.acquire() as conn, conn.transaction():
        assert await outbox.publish(conn, node.cfg, activity, inboxes) == len(set(inboxes))
    return activity["id"]


_ROWS = """SELECT d.*, a.ap_id, extract(epoch FROM d.next_attempt_at - now()) AS due_in
           FROM deliveries d JOIN activities a ON a.id = d.activity_id ORDER BY d.id"""


async def _rows(node: Node) -> list[dict]:
    async with node.pool.acquire() as conn:
        return [dict(r) for r in await conn.fetch(_ROWS)]


async def _rows_in(database_url: str) -> list[dict]:
    """The same, on a connection of its own (for when no node is running)."""
    conn = await asyncpg.connect(database_url)
    try:
        return [dict(r) for r in await conn.fetch(_ROWS)]
    finally:
        await conn.close()


async def _fast_forward(node: Node) -> None:
    """What the passing of time would do: every pending delivery (and probe) is due now."""
    async with node.pool.acquire() as conn:
        await conn.execute("UPDATE deliveries SET next_attempt_at = now() WHERE delivered_at IS NULL AND failed_at IS NULL")


async def _host(node: Node, host: str):
    async with node.pool.acquire() as conn:
        return await delivery_store.get_peer_host(conn, host)


def test_backoff_doubles_from_30_seconds_to_6_hours_with_jitter():
    s = DeliverySettings()
    assert backoff_seconds(s, 1, rand=lambda: 0.5) == 30
    assert backoff_seconds(s, 2, rand=lambda: 0.5) == 60
    assert backoff_seconds(s, 5, rand=lambda: 0.5) == 480
    assert backoff_seconds(s, 30, rand=lambda: 0.5) == 6 * 3600
    assert backoff_seconds(s, 1, rand=lambda: 0.0) == pytest.approx(24)
    assert backoff_seconds(s, 1, rand=lambda: 1.0) == pytest.approx(36)


async def test_delivery_is_signed_with_the_actors_key_and_marked_delivered(node, peer):
    agent, _ = await create_agent(node.pool, "sender")
    activity_id = await _activity_to(node, "sender", [peer.shared_inbox])
    assert await node.workers.delivery.run_once() == 1
    [rec] = peer.received
    assert rec.verified, rec.error
    assert rec.key_id == urls.agent_url(node.cfg, "sender") + "#main-key"
    assert rec.json["id"] == activity_id
    assert rec.headers["Digest"].startswith("SHA-256=")
    [row] = await _rows(node)
    assert row["delivered_at"] is not None and row["last_status"] == 202 and row["attempts"] == 1
    assert await node.workers.delivery.run_once() == 0  # nothing is sent twice


async def test_500_is_retried_with_exponential_backoff_until_delivered(node, peer):
    await create_agent(node.pool, "sender")
    peer.script = [500, 503]
    await _activity_to(node, "sender", [peer.shared_inbox])
    assert await node.workers.delivery.run_once() == 1
    [row] = await _rows(node)
    assert row["delivered_at"] is None and row["failed_at"] is None
    assert row["attempts"] == 1 and row["last_status"] == 500
    assert 30 * 0.8 - 2 <= row["due_in"] <= 30 * 1.2 + 1
    assert await node.workers.delivery.run_once() == 0  # not due yet
    await _fast_forward(node)
    assert await node.workers.delivery.run_once() == 1
    [row] = await _rows(node)
    assert row["attempts"] == 2 and row["last_status"] == 503
    assert 60 * 0.8 - 2 <= row["due_in"] <= 60 * 1.2 + 1
    await _fast_forward(node)
    assert await node.workers.delivery.run_once() == 1
    [row] = await _rows(node)
    assert row["delivered_at"] is not None and row["attempts"] == 3
    assert len(peer.received) == 3 and all(r.verified for r in peer.received)
    host = await _host(node, peer.host)
    assert host.status == "up" and host.consecutive_fails == 0


async def test_429_waits_at_least_retry_after_and_does_not_count_against_the_host(node, peer):
    await create_agent(node.pool, "sender")
    peer.script = [(429, {"Retry-After": "600"})]
    await _activity_to(node, "sender", [peer.shared_inbox])
    await node.workers.delivery.run_once()
    [row] = await _rows(node)
    assert row["last_status"] == 429 and row["delivered_at"] is None
    assert row["due_in"] >= 590
    host = await _host(node, peer.host)
    assert host.consecutive_fails == 0 and host.status == "up"


async def test_a_timeout_is_retried_and_counts_as_a_host_failure(aiohttp_server, aiohttp_client, make_config, peer):
    node = await start_node(aiohttp_server, aiohttp_client, make_config, federation={"delivery_timeout_seconds": 1})
    await create_agent(node.pool, "sender")
    peer.verify = False  # only the timing matters here: no key fetch inside the 1 s budget
    peer.script = ["hang"]
    await _activity_to(node, "sender", [peer.shared_inbox])
    await node.workers.delivery.run_once()
    [row] = await _rows(node)
    assert row["delivered_at"] is None and row["failed_at"] is None
    assert "no answer within 1 s" in row["last_error"] and row["attempts"] == 1
    assert (await _host(node, peer.host)).consecutive_fails == 1
    peer.release.set()
    await _fast_forward(node)
    await node.workers.delivery.run_once()
    assert (await _rows(node))[0]["delivered_at"] is not None


async def test_retries_stop_after_four_days(node, peer):
    await create_agent(node.pool, "sender")
    peer.default_status = 502
    await _activity_to(node, "sender", [peer.shared_inbox])
    async with node.pool.acquire() as conn:
        await conn.execute("UPDATE deliveries SET created_at = now() - interval '4 days 1 minute'")
    await node.workers.delivery.run_once()
    [row] = await _rows(node)
    assert row["failed_at"] is not None and row["last_error"].startswith("gave up after 1 attempts")
    await _fast_forward(node)
    assert await node.workers.delivery.run_once() == 0


async def test_4xx_fails_for_good_with_its_status(node, peer):
    await create_agent(node.pool, "sender")
    peer.script = [400]
    await _activity_to(node, "sender", [peer.shared_inbox])
    await node.workers.delivery.run_once()
    [row] = await _rows(node)
    assert row["failed_at"] is not None and row["last_status"] == 400 and row["delivered_at"] is None
    await _fast_forward(node)
    assert await node.workers.delivery.run_once() == 0
    assert len(peer.received) == 1


async def test_410_drops_every_delivery_to_that_inbox_and_marks_its_actor_gone(node, peer):
    await create_agent(node.pool, "sender")
    bob = await resolve_actor(node.app, peer.actor("bob"))
    bob_inbox = bob.inbox_url
    peer.status_by_path = {"/users/bob/inbox": 410}
    await _activity_to(node, "sender", [bob_inbox], "first")
    await _activity_to(node, "sender", [bob_inbox], "second")
    await _activity_to(node, "sender", [peer.shared_inbox], "to the others")
    async with node.pool.acquire() as conn:  # the second is not due yet: dropped without being tried
        await conn.execute(
            """UPDATE deliveries SET next_attempt_at = now() + interval '1 hour'
               WHERE id = (SELECT max(id) FROM deliveries WHERE inbox_url = $1)""", bob_inbox,
        )
    await node.workers.delivery.run_once()
    rows = await _rows(node)
    to_bob = [r for r in rows if r["inbox_url"] == bob_inbox]
    assert len(to_bob) == 2 and all(r["failed_at"] is not None and r["last_status"] == 410 for r in to_bob)
    assert [r["attempts"] for r in to_bob] == [1, 0]
    other = [r for r in rows if r["inbox_url"] == peer.shared_inbox]
    assert other[0]["delivered_at"] is not None
    async with node.pool.acquire() as conn:
        assert await conn.fetchval("SELECT gone_at IS NOT NULL FROM agents WHERE id = $1", bob.id)
    await _fast_forward(node)
    assert await node.workers.delivery.run_once() == 0


async def test_a_host_is_marked_down_probed_rarely_and_resumes(aiohttp_server, aiohttp_client, make_config, peer):
    settings = DeliverySettings(down_after_failures=3, probe_interval_seconds=3600)
    node = await start_node(aiohttp_server, aiohttp_client, make_config, delivery=settings)
    await create_agent(node.pool, "sender")
    peer.default_status = 500
    for i in range(6):
        await _activity_to(node, "sender", [peer.shared_inbox], f"n{i}")
    # 4 at once per host (delivery_concurrency_per_host), all failing: the host goes down.
    assert await node.workers.delivery.run_once() == 4
    host = await _host(node, peer.host)
    assert host.status == "down" and host.consecutive_fails == 4
    assert (host.next_probe_at - dt.datetime.now(dt.timezone.utc)).total_seconds() > 3500
    await _fast_forward(node)
    assert await node.workers.delivery.run_once() == 0  # down: nothing until the probe is due
    async with node.pool.acquire() as conn:
        await conn.execute("UPDATE peer_hosts SET next_probe_at = now()")
    assert await node.workers.delivery.run_once() == 1  # one probe, which fails
    assert await node.workers.delivery.run_once() == 0  # and the next one waits a full interval
    host = await _host(node, peer.host)
    assert host.status == "down" and (host.next_probe_at - dt.datetime.now(dt.timezone.utc)).total_seconds() > 3500
    assert len(peer.received) == 5
    peer.default_status = 202
    async with node.pool.acquire() as conn:
        await conn.execute("UPDATE peer_hosts SET next_probe_at = now()")
    assert await node.workers.delivery.run_once() == 1  # the probe succeeds: the host is up again
    host = await _host(node, peer.host)
    assert host.status == "up" and host.consecutive_fails == 0
    # Its backlog was released from backoff: everything goes now, without fast-forwarding.
    assert await node.workers.delivery.run_once() == 4
    assert await node.workers.delivery.run_once() == 1
    rows = await _rows(node)
    assert all(r["delivered_at"] is not None for r in rows)
    ids = [r.json["id"] for r in peer.received if r.json]
    assert len(set(ids)) == 6


async def test_blocked_hosts_get_nothing(aiohttp_server, aiohttp_client, make_config, peer):
    node = await start_node(aiohttp_server, aiohttp_client, make_config)
    await create_agent(node.pool, "sender")
    activity = {"id": outbox.new_activity_id(node.cfg), "type": "Create", "actor": urls.agent_url(node.cfg, "sender"), "object": {}}
    blocked = await start_node(aiohttp_server, aiohttp_client, make_config, federation={"block": [peer.host]})
    async with blocked.pool.acquire() as conn, conn.transaction():
        assert await outbox.publish(conn, blocked.cfg, activity, [peer.shared_inbox]) == 0
    assert (await _rows(blocked)) == []


async def test_restart_mid_delivery_loses_nothing_and_delivers_once(
    aiohttp_server, aiohttp_client, make_config, database_url, peer, peer2
):
    """Stop a node while a peer is hanging on its deliveries; a new node on the same database finishes them."""
    settings = DeliverySettings(loops=1, stop_grace_seconds=0.2)
    first = await start_node(aiohttp_server, aiohttp_client, make_config, run_workers=True, delivery=settings)
    await create_agent(first.pool, "sender")
    peer2.script = ["hang", "hang"]
    for i in range(3):
        await _activity_to(first, "sender", [peer.shared_inbox], f"fast {i}")
    for i in range(2):
        await _activity_to(first, "sender", [peer2.shared_inbox], f"slow {i}")
    await first.workers.delivery.wait_for_outcomes(lambda c: c["delivered"] >= 3)
    await peer2.wait_arrived(2)
    await first.client.close()  # stops the workers: the hanging deliveries are given back
    rows = await _rows_in(database_url)
    fast = [r for r in rows if r["inbox_url"] == peer.shared_inbox]
    slow = [r for r in rows if r["inbox_url"] == peer2.shared_inbox]
    assert all(r["delivered_at"] is not None for r in fast)
    assert all(r["delivered_at"] is None and r["failed_at"] is None and r["due_in"] <= 0.5 for r in slow)
    assert all(r["attempts"] == 0 for r in slow)

    peer2.release.set()  # the abandoned requests end; the peer answers normally from now on
    second = await start_node(
        aiohttp_server, aiohttp_client, make_config, port=first.port, run_workers=True, delivery=DeliverySettings(loops=1)
    )
    slow_ids = {r["ap_id"] for r in slow}
    await second.workers.delivery.wait_for_outcomes(lambda c: c["delivered"] >= 2)
    await second.client.close()
    rows = await _rows_in(database_url)
    assert all(r["delivered_at"] is not None for r in rows)
    assert all(r["attempts"] == 1 for r in rows)  # each row was sent to completion exactly once
    assert sorted(r.json["id"] for r in peer.received) == sorted(r["ap_id"] for r in fast)  # no repeats
    # The abandoned requests never got an answer to the first node; whatever reached the peer again is the
    # same activity id (which inboxes deduplicate), never a new one.
    assert {r.json["id"] for r in peer2.received} == slow_ids
    assert all(r.verified for r in peer2.received)


async def test_local_post_reaches_remote_followers_once_per_shared_inbox(node, peer, peer2):
    author, key = await create_agent(node.pool, "writer")
    for p, name in ((peer, "ann"), (peer, "ben"), (peer2, "cat")):
        remote = await resolve_actor(node.app, p.actor(name))
        async with node.pool.acquire() as conn:
            follower = await agents_store.get_agent(conn, remote.id)
        await follows_service.set_following(node.pool, follower, "writer", True)
    resp = await node.client.post(
        "/api/v1/posts", json={"submolt_name": "general", "title": "Hello fediverse", "content": "first"}, headers=auth(key)
    )
    assert resp.status in (200, 201), await resp.text()
    assert await node.workers.outbox.run_once() >= 1
    rows = await _rows(node)
    assert sorted(r["inbox_url"] for r in rows) == sorted([peer.shared_inbox, peer2.shared_inbox])
    await node.workers.delivery.run_once()
    for p in (peer, peer2):
        [rec] = p.received
        assert rec.verified, rec.error
        create = rec.json
        assert create["type"] == "Create" and create["actor"] == urls.agent_url(node.cfg, "writer")
        assert create["object"]["type"] == "Page" and create["object"]["name"] == "Hello fediverse"


async def test_events_with_only_local_audiences_store_nothing(node):
    a, key_a = await create_agent(node.pool, "a_local")
    b, key_b = await create_agent(node.pool, "b_local")
    resp = await node.client.post("/api/v1/posts", json={"submolt_name": "general", "title": "local"}, headers=auth(key_a))
    post_id = (await resp.json())["post"]["id"]
    await node.client.post(f"/api/v1/posts/{post_id}/upvote", headers=auth(key_b))
    await node.client.post("/api/v1/agents/a_local/follow", headers=auth(key_b))
    async with node.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM outbox_events WHERE processed_at IS NULL") >= 3
    await node.workers.outbox.run_once()
    async with node.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM outbox_events WHERE processed_at IS NULL") == 0
        assert await conn.fetchval("SELECT count(*) FROM activities") == 0
        assert await conn.fetchval("SELECT count(*) FROM deliveries") == 0


# --- Reef to Reef -----------------------------------------------------------------------------------------


async def test_two_reef_nodes_follow_post_reply_vote_and_converge(
    aiohttp_server, aiohttp_client, make_config, other_database_url
):
    from node.services import submolts as submolts_service

    a = await start_node(aiohttp_server, aiohttp_client, make_config)
    b_config = lambda **sections: make_config(database={"url": other_database_url}, **sections)  # noqa: E731
    b = await start_node(aiohttp_server, aiohttp_client, b_config)
    ann, ann_key = await create_agent(a.pool, "ann")
    bea, bea_key = await create_agent(b.pool, "bea")
    resp = await b.client.post("/api/v1/submolts", json={"name": "reefs", "display_name": "Reefs"}, headers=auth(bea_key))
    assert resp.status in (200, 201), await resp.text()

    # ann (on A) subscribes to m/reefs on B: Follow, then B's Group accepts.
    await resolve_actor(a.app, f"{b.url}/m/reefs")
    await submolts_service.subscribe(a.pool, ann, "reefs")
    await pump(a, b)
    async with a.pool.acquire() as conn:
        assert await conn.fetchval("SELECT accepted FROM subscriptions WHERE agent_id = $1", ann.id)
    async with b.pool.acquire() as conn:
        assert await conn.fetchval("SELECT subscriber_count FROM submolts WHERE name = 'reefs'") == 2

    # bea posts on B: B's Group announces it to A.
    resp = await b.client.post("/api/v1/posts", json={"submolt_name": "reefs", "title": "Coral", "content": "*bright*"}, headers=auth(bea_key))
    b_post = (await resp.json())["post"]["id"]
    await pump(a, b)
    async with a.pool.acquire() as conn:
        a_post = await conn.fetchval("SELECT id FROM posts WHERE ap_id = $1", f"{b.url}/post/{b_post}")
    assert a_post is not None

    # ann replies and upvotes on A: both reach B through its Group; counts agree on both nodes.
    resp = await a.client.post(f"/api/v1/posts/{a_post}/comments", json={"content": "lovely"}, headers=auth(ann_key))
    assert resp.status in (200, 201), await resp.text()
    await a.client.post(f"/api/v1/posts/{a_post}/upvote", headers=auth(ann_key))
    await pump(a, b)
    for n, pid in ((a, a_post), (b, b_post)):
        async with n.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT score, comment_count FROM posts WHERE id = $1", uuid.UUID(str(pid)))
        assert (row["score"], row["comment_count"]) == (1, 1), n.url

    # bea edits and deletes on B; A follows.
    await b.client.patch(f"/api/v1/posts/{b_post}", json={"title": "Coral, edited"}, headers=auth(bea_key))
    await pump(a, b)
    async with a.pool.acquire() as conn:
        assert await conn.fetchval("SELECT title FROM posts WHERE id = $1", a_post) == "Coral, edited"
    await b.client.delete(f"/api/v1/posts/{b_post}", headers=auth(bea_key))
    await pump(a, b)
    async with a.pool.acquire() as conn:
        assert await conn.fetchval("SELECT is_deleted FROM posts WHERE id = $1", a_post)

    # ann unsubscribes: B forgets her, and a new post is no longer sent to A.
    await submolts_service.unsubscribe(a.pool, ann, "reefs")
    await pump(a, b)
    async with b.pool.acquire() as conn:
        assert await conn.fetchval("SELECT subscriber_count FROM submolts WHERE name = 'reefs'") == 1
    await b.client.post("/api/v1/posts", json={"submolt_name": "reefs", "title": "Unseen"}, headers=auth(bea_key))
    await pump(a, b)
    async with a.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM posts WHERE title = 'Unseen'") == 0
