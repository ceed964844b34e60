"""Faults and refusals between real nodes: a peer that goes away mid-delivery gets everything exactly once when it
comes back; a redelivered activity is applied once; a blocked node is refused both ways; actor URLs on private
addresses are not fetched unless the admin allows it.

Retries after 500/429/timeouts, their backoff, and the refusal of forged signatures, tampered bodies, stale dates,
actor/key mismatches and objects on another host are covered against a scripted peer in
tests/test_federation_delivery.py and tests/test_federation_inbox.py; they are not repeated here."""
from __future__ import annotations

import asyncio
from typing import Any

from conftest import ReefNode, eventually


async def fast_forward_retries(node: ReefNode) -> int:
    """Make the node's backed-off deliveries due now and wake its delivery worker.

    The backoff schedule itself (30 s doubling, hosts marked down and probed) is tested with a scripted
    peer; here we only need the retry to happen, so we move the clock of the queue instead of waiting."""
    rows = await node.fetch(
        """WITH due AS (UPDATE deliveries SET next_attempt_at = now()
                        WHERE delivered_at IS NULL AND failed_at IS NULL RETURNING id)
           SELECT count(*) AS n FROM due"""
    )
    await node.fetch("UPDATE peer_hosts SET next_probe_at = now() WHERE status = 'down'")
    await node.fetch("SELECT pg_notify('reef_delivery', '')")
    return rows[0]["n"]


async def test_a_node_stopped_mid_delivery_gets_everything_exactly_once_after_it_restarts(reef_nodes):
    a, b = await reef_nodes(2)
    ann, amy = await a.register("ann"), await a.register("amy")
    bob = await b.register("bob")
    await b.call("POST", f"/api/v1/agents/ann@{a.domain}/follow", bob)
    await b.call("POST", f"/api/v1/submolts/general@{a.domain}/subscribe", bob)
    await eventually(b.follows_accepted, what="A to accept bob's follow and subscription")
    first = (await a.call("POST", "/api/v1/posts", ann, json_body={"submolt_name": "general", "title": "post 0"}))["post"]
    first_ap = f"{a.url}/post/{first['id']}"
    await eventually(lambda: b.fetchval("SELECT count(*) FROM posts WHERE ap_id = $1", first_ap), what="post 0 on B")

    # B is stopped while A is sending: a burst of posts races the SIGTERM, more come while B is down
    async def burst(start: int, n: int) -> list[str]:
        made = []
        for i in range(start, start + n):
            body = {"submolt_name": "general", "title": f"post {i}", "content": f"number {i}"}
            made.append((await a.call("POST", "/api/v1/posts", ann, json_body=body))["post"]["id"])
        return made
    racing = asyncio.create_task(burst(1, 6))
    await eventually(lambda: b.fetchval("SELECT count(*) FROM posts WHERE NOT is_local AND title <> 'post 0'"),
                     interval=0.01, what="the burst to start reaching B")
    code = await asyncio.to_thread(b.stop)
    assert code == 0, b.log_tail()
    made = await racing
    made += await burst(7, 4)
    await a.call("POST", f"/api/v1/posts/{first['id']}/comments", amy, json_body={"content": "while you were away"})
    await a.call("POST", f"/api/v1/posts/{first['id']}/upvote", amy)
    await a.call("PATCH", f"/api/v1/posts/{first['id']}", ann, json_body={"content": "edited while B was down"})

    async def tried_and_failed() -> Any:
        # Each pending row was tried and failed, or (after 10 failures in a row) waits for B's host to be probed.
        rows = await a.fetch("SELECT attempts, last_error FROM deliveries WHERE delivered_at IS NULL AND failed_at IS NULL")
        down = await a.fetchval("SELECT status = 'down' FROM peer_hosts WHERE host = $1", b.domain)
        assert rows, "A has no pending deliveries"
        assert down or all(r["attempts"] >= 1 for r in rows), [dict(r) for r in rows]
        return rows
    pending = await eventually(tried_and_failed, what="A to try B and fail")
    tried = [r for r in pending if r["attempts"]]
    # Refused while B is down, or reset when B went away in the middle of a request of the racing burst.
    assert tried and all(any(word in (r["last_error"] or "").lower() for word in ("connect", "reset"))
                         for r in tried), [dict(r) for r in pending]
    assert await a.fetchval("SELECT count(*) FROM deliveries WHERE failed_at IS NOT NULL") == 0  # kept, not dropped

    # B comes back on the same port and database; A retries (its schedule moved forward, see above)
    await b.restart()
    assert await fast_forward_retries(a) >= len(pending)
    expected = [first_ap] + [f"{a.url}/post/{p}" for p in made]

    async def all_arrived() -> bool:
        titles = await b.fetch("SELECT title, content FROM posts WHERE ap_id = ANY($1::text[])", expected)
        assert len(titles) == len(expected), sorted(r["title"] for r in titles)
        [post0] = await b.fetch("SELECT comment_count, score, content FROM posts WHERE ap_id = $1", first_ap)
        assert (post0["comment_count"], post0["score"], post0["content"]) == (1, 1, "edited while B was down"), dict(post0)
        return True
    await eventually(all_arrived, timeout=60, what="everything A sent to reach B")
    await eventually(a.deliveries_settled, what="A's deliveries to finish")
    await eventually(b.deliveries_settled, what="B to process what it received")

    # Exactly once: one row per post, one comment, one vote; every delivery sent to completion once
    per_post = await b.fetch("SELECT ap_id, count(*) AS n FROM posts WHERE ap_id = ANY($1::text[]) GROUP BY ap_id", expected)
    assert sorted(r["ap_id"] for r in per_post) == sorted(expected) and all(r["n"] == 1 for r in per_post)
    assert await b.fetchval("SELECT count(*) FROM comments") == 1
    assert await b.fetchval("SELECT count(*) FROM post_votes") == 1
    assert await a.fetchval("SELECT count(*) FROM deliveries WHERE delivered_at IS NULL") == 0
    errors = await b.fetch("SELECT type, error FROM inbox_activities WHERE error IS NOT NULL")
    assert errors == [], [dict(r) for r in errors]

    # A duplicate delivery (A sends one activity again, freshly signed) is answered 202 and changes nothing
    before = await b.fetchval("SELECT count(*) FROM inbox_activities")
    again = await a.fetchval(
        """UPDATE deliveries d SET delivered_at = NULL, next_attempt_at = now() FROM activities x
           WHERE x.id = d.activity_id AND x.body->'object'->'object'->>'id' = $1 AND x.type = 'Announce'
           RETURNING d.id""",
        f"{a.url}/post/{made[0]}",
    )
    assert again is not None
    await a.fetch("SELECT pg_notify('reef_delivery', '')")
    async def resent() -> bool:
        row = await a.fetch("SELECT delivered_at, last_status, attempts FROM deliveries WHERE id = $1", again)
        return row[0]["delivered_at"] is not None and row[0]["last_status"] == 202
    await eventually(resent, what="the duplicate to be delivered")
    assert await b.fetchval("SELECT count(*) FROM inbox_activities") == before
    assert await b.fetchval("SELECT count(*) FROM posts WHERE ap_id = $1", f"{a.url}/post/{made[0]}") == 1


# --- security ---------------------------------------------------------------------------------------------


async def test_a_blocked_node_is_refused_both_ways(reef_nodes):
    a, b = await reef_nodes(2)
    ann = await a.register("ann")
    bob = await b.register("bob")
    await b.call("POST", f"/api/v1/agents/ann@{a.domain}/follow", bob)
    await eventually(b.follows_accepted, what="A to accept bob's follow")
    post = (await a.call("POST", "/api/v1/posts", ann, json_body={"submolt_name": "general", "title": "before the block"}))["post"]
    await eventually(lambda: b.fetchval("SELECT count(*) FROM posts WHERE NOT is_local"), what="the post on B")

    # A's admin blocks B
    a.stop()
    a.extra_env["REEF_FEDERATION__BLOCK"] = b.domain
    await a.restart()
    deliveries_before = await a.fetchval("SELECT count(*) FROM deliveries")
    received_before = await a.fetchval("SELECT count(*) FROM inbox_activities")

    # B -> A: bob's comment and vote on ann's post are refused with 403 and change nothing on A
    on_b = await b.fetchval("SELECT id::text FROM posts WHERE NOT is_local")
    await b.call("POST", f"/api/v1/posts/{on_b}/comments", bob, json_body={"content": "hello?"})
    await b.call("POST", f"/api/v1/posts/{on_b}/upvote", bob)
    async def refused() -> list[Any]:
        rows = await b.fetch("SELECT last_status, failed_at FROM deliveries WHERE host = $1 AND delivered_at IS NULL", a.domain)
        return len(rows) == 2 and all(r["last_status"] == 403 and r["failed_at"] is not None for r in rows) and rows
    await eventually(refused, what="B's deliveries to A to fail with 403")
    assert await a.fetchval("SELECT count(*) FROM inbox_activities") == received_before
    assert await a.fetchval("SELECT count(*) FROM comments") == 0
    assert (await a.call("GET", f"/api/v1/posts/{post['id']}"))["post"]["score"] == 0
    # and B's signed fetches are refused too: a name B has not cached makes it ask A's WebFinger, which
    # answers B's signature with 403 (B's API says 502, "could not read"); unblocked it would be a 404
    status = await b.status_of("GET", "/api/v1/agents/profile", params={"name": f"amy@{a.domain}"})
    assert status in (403, 502), status

    # A -> B: a new post, an edit: A records no delivery to B at all
    await a.call("POST", "/api/v1/posts", ann, json_body={"submolt_name": "general", "title": "after the block"})
    await a.call("PATCH", f"/api/v1/posts/{post['id']}", ann, json_body={"content": "edited"})
    await eventually(a.deliveries_settled, what="A's outbox to process the new events")
    assert await a.fetchval("SELECT count(*) FROM deliveries") == deliveries_before
    assert await a.fetchval("SELECT count(*) FROM deliveries WHERE host = $1 AND created_at > now() - interval '1 minute' "
                            "AND delivered_at IS NULL", b.domain) == 0
    assert await b.fetchval("SELECT count(*) FROM posts WHERE NOT is_local") == 1


async def test_actor_urls_on_private_addresses_are_refused_unless_allowed(reef_nodes):
    strict, open_ = await reef_nodes(2, env_for={0: {"REEF_FEDERATION__ALLOW_PRIVATE_ADDRESSES": "false"}})
    await open_.register("alice")
    who = await strict.register("who")
    resp = await strict.call("GET", "/api/v1/agents/profile", params={"name": f"alice@{open_.domain}"}, expect=(403,))
    assert "not a public address" in resp["error"]
    resp = await strict.call("POST", f"/api/v1/agents/alice@{open_.domain}/follow", who, expect=(403,))
    assert resp["success"] is False
    assert await strict.fetchval("SELECT count(*) FROM agents WHERE NOT is_local") == 0
    assert await strict.fetchval("SELECT count(*) FROM deliveries") == 0
    # the node that allows private addresses (as tests and closed networks do) resolves the same kind of name
    await strict.register("carol")
    found = await open_.call("GET", "/api/v1/agents/profile", params={"name": f"carol@{strict.domain}"})
    assert found["agent"]["is_local"] is False
