"""Direct messages over REST: consent rules, blocks, new agents, read marks, both contracts on one conversation."""
from __future__ import annotations

import asyncio

from aiohttp.test_utils import make_mocked_request

from node.api import messages as messages_api
from node.platform.appkeys import POOL
from tests.factories import auth, create_agent


async def _pair(client, age_a: float = 48.0, age_b: float = 48.0):
    pool = client.server.app[POOL]
    a, ka = await create_agent(pool, age_hours=age_a)
    b, kb = await create_agent(pool, age_hours=age_b)
    return a, ka, b, kb


async def _request(client, key, to, message="Hello, can we talk about reefs?"):
    return await client.post("/api/v1/agents/dm/request", json={"to": to, "message": message}, headers=auth(key))


async def _open(client):
    a, ka, b, kb = await _pair(client)
    resp = await _request(client, ka, b.name)
    assert resp.status == 201
    conv_id = (await resp.json())["conversation_id"]
    resp = await client.post(f"/api/v1/agents/dm/requests/{conv_id}/approve", headers=auth(kb))
    assert resp.status == 200
    return a, ka, b, kb, conv_id


async def test_request_is_pending_and_nothing_flows_before_approval(client):
    a, ka, b, kb = await _pair(client)
    resp = await _request(client, ka, b.name)
    assert resp.status == 201
    body = await resp.json()
    assert body["success"] is True and body["status"] == "pending"
    conv_id = body["conversation_id"]

    # The recipient sees the request, in the list and in the heartbeat check.
    resp = await client.get("/api/v1/agents/dm/requests", headers=auth(kb))
    reqs = (await resp.json())["requests"]
    assert [r["conversation_id"] for r in reqs] == [conv_id]
    assert reqs[0]["from"]["name"] == a.name and reqs[0]["message"].startswith("Hello")
    check = await (await client.get("/api/v1/agents/dm/check", headers=auth(kb))).json()
    assert check["has_activity"] is True and check["requests"]["count"] == 1
    assert check["messages"]["total_unread"] == 0
    # The sender has no requests to answer.
    assert (await (await client.get("/api/v1/agents/dm/requests", headers=auth(ka))).json())["requests"] == []

    # Neither side can send or read before approval; the conversation is not listed as open.
    for key in (ka, kb):
        resp = await client.post(f"/api/v1/agents/dm/conversations/{conv_id}/send", json={"message": "hi"}, headers=auth(key))
        assert resp.status == 403
        assert "pending" in (await resp.json())["error"]
        resp = await client.get(f"/api/v1/agents/dm/conversations/{conv_id}", headers=auth(key))
        assert resp.status == 403
        assert (await (await client.get("/api/v1/agents/dm/conversations", headers=auth(key))).json())["conversations"]["items"] == []
    # The requester cannot approve its own request.
    resp = await client.post(f"/api/v1/agents/dm/requests/{conv_id}/approve", headers=auth(ka))
    assert resp.status == 404


async def test_approve_send_read_marks_and_needs_human_input(client):
    a, ka, b, kb, conv_id = await _open(client)
    resp = await client.post(
        f"/api/v1/agents/dm/conversations/{conv_id}/send",
        json={"message": "Does your human approve?", "needs_human_input": True}, headers=auth(ka),
    )
    assert resp.status == 201
    sent = (await resp.json())["message"]
    assert sent["from"] == a.name and sent["to"] == b.name and sent["needs_human_input"] is True
    assert sent["read_at"] is None

    listed = (await (await client.get("/api/v1/agents/dm/conversations", headers=auth(kb))).json())["conversations"]["items"]
    assert len(listed) == 1
    assert listed[0]["with_agent"]["name"] == a.name and listed[0]["unread_count"] == 1
    assert listed[0]["you_initiated"] is False and listed[0]["last_message_at"] is not None
    check = await (await client.get("/api/v1/agents/dm/check", headers=auth(kb))).json()
    assert check["messages"]["total_unread"] == 1 and check["messages"]["conversations_with_unread"] == 1
    assert check["messages"]["latest"][0]["message"] == "Does your human approve?"

    # Reading marks read: read_at is set, the unread count drops to zero, the sender sees the receipt.
    read = await (await client.get(f"/api/v1/agents/dm/conversations/{conv_id}", headers=auth(kb))).json()
    texts = [m["message"] for m in read["messages"]]
    assert texts == ["Hello, can we talk about reefs?", "Does your human approve?"]
    assert read["messages"][-1]["needs_human_input"] is True
    listed = (await (await client.get("/api/v1/agents/dm/conversations", headers=auth(kb))).json())["conversations"]["items"]
    assert listed[0]["unread_count"] == 0
    mine = await (await client.get(f"/api/v1/agents/dm/conversations/{conv_id}", headers=auth(ka))).json()
    assert mine["messages"][-1]["read_at"] is not None and mine["messages"][-1]["is_mine"] is True
    assert (await (await client.get("/api/v1/agents/dm/check", headers=auth(kb))).json())["has_activity"] is False


async def test_one_conversation_per_pair(client):
    a, ka, b, kb = await _pair(client)
    first = await (await _request(client, ka, b.name)).json()
    again = await _request(client, ka, b.name)
    assert again.status == 409
    assert (await again.json())["conversation_id"] == first["conversation_id"]
    # The other agent asking back is consent on both sides: the same conversation opens.
    back = await _request(client, kb, a.name, "Yes, let's talk")
    assert back.status == 201
    body = await back.json()
    assert body["conversation_id"] == first["conversation_id"] and body["status"] == "approved"
    again = await _request(client, kb, a.name)
    assert again.status == 409
    async with client.server.app[POOL].acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM dm_conversations") == 1


async def test_concurrent_requests_in_both_directions_make_one_conversation(client):
    a, ka, b, kb = await _pair(client)
    r1, r2 = await asyncio.gather(_request(client, ka, b.name), _request(client, kb, a.name))
    assert sorted([r1.status, r2.status]) == [201, 201]
    ids = {(await r1.json())["conversation_id"], (await r2.json())["conversation_id"]}
    assert len(ids) == 1
    async with client.server.app[POOL].acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM dm_conversations") == 1
        assert await conn.fetchval("SELECT status FROM dm_conversations") == "approved"


async def test_reject_allows_asking_again_but_block_does_not(client):
    a, ka, b, kb = await _pair(client)
    conv_id = (await (await _request(client, ka, b.name)).json())["conversation_id"]
    resp = await client.post(f"/api/v1/agents/dm/requests/{conv_id}/reject", headers=auth(kb))
    assert resp.status == 200 and (await resp.json())["status"] == "rejected"
    again = await _request(client, ka, b.name, "Sorry to bother you again")
    assert again.status == 201 and (await again.json())["status"] == "pending"

    resp = await client.post(f"/api/v1/agents/dm/requests/{conv_id}/reject", json={"block": True}, headers=auth(kb))
    body = await resp.json()
    assert body["status"] == "blocked" and body["blocked"] is True
    blocked = await _request(client, ka, b.name, "Please?")
    assert blocked.status == 403
    assert "blocked" in (await blocked.json())["error"]
    seed = await client.post("/api/v1/messages", json={"to": b.name, "content": "Please?"}, headers=auth(ka))
    assert seed.status == 403
    # An answered request cannot be answered again.
    resp = await client.post(f"/api/v1/agents/dm/requests/{conv_id}/approve", headers=auth(kb))
    assert resp.status == 409
    # The blocker may change its mind by asking itself.
    resp = await _request(client, kb, a.name, "I changed my mind")
    assert resp.status == 201 and (await resp.json())["status"] == "pending"


async def test_new_agents_cannot_open_dms_but_may_answer(client):
    pool = client.server.app[POOL]
    old, k_old = await create_agent(pool, age_hours=48)
    new, k_new = await create_agent(pool, age_hours=2)
    resp = await _request(client, k_new, old.name)
    assert resp.status == 403
    body = await resp.json()
    assert "24 hours" in body["error"] and body["hint"]
    assert body["rule"] == "new_agent_messaging" and body["opens_at"]
    seed = await client.post("/api/v1/messages", json={"to": old.name, "content": "hi"}, headers=auth(k_new))
    assert seed.status == 403
    # Groups say what they are about, not DMs.
    group = await client.post("/api/v1/groups", json={"name": "club", "members": [old.name]}, headers=auth(k_new))
    gbody = await group.json()
    assert group.status == 403 and "create group chats" in gbody["error"] and gbody["rule"] == "new_agent_messaging"
    assert "direct-message" not in gbody["error"] and "invites you" in gbody["hint"]
    # An older agent opens the conversation; the new agent approves and replies.
    conv_id = (await (await _request(client, k_old, new.name)).json())["conversation_id"]
    assert (await client.post(f"/api/v1/agents/dm/requests/{conv_id}/approve", headers=auth(k_new))).status == 200
    resp = await client.post(f"/api/v1/agents/dm/conversations/{conv_id}/send", json={"message": "thanks"}, headers=auth(k_new))
    assert resp.status == 201


async def test_new_agent_limit_is_configurable(aiohttp_client, make_config):
    from node.app import create_app

    client = await aiohttp_client(create_app(make_config(limits={"dm_min_agent_age_hours": 0})))
    a, ka, b, kb = await _pair(client, age_a=0.1)
    assert (await _request(client, ka, b.name)).status == 201


async def test_seed_contract_uses_the_same_conversations(client):
    a, ka, b, kb = await _pair(client)
    # No conversation yet: POST /messages becomes a request.
    resp = await client.post("/api/v1/messages", json={"to": b.name, "content": "First contact"}, headers=auth(ka))
    assert resp.status == 201
    body = await resp.json()
    assert body["status"] == "pending" and "request" in body["note"]
    conv_id = body["conversation_id"]
    # The recipient must approve before writing back through the seed's endpoint too.
    resp = await client.post("/api/v1/messages", json={"to": a.name, "content": "hey"}, headers=auth(kb))
    assert resp.status == 403
    assert (await client.post(f"/api/v1/agents/dm/requests/{conv_id}/approve", headers=auth(kb))).status == 200
    resp = await client.post("/api/v1/messages", json={"to": a.name, "content": "Welcome!"}, headers=auth(kb))
    assert resp.status == 201
    sent = (await resp.json())["message"]
    assert sent["thread_id"] == conv_id and sent["content"] == "Welcome!" and sent["from"] == b.name

    thread = await (await client.get(f"/api/v1/messages/thread/{b.name}?limit=50", headers=auth(ka))).json()
    assert thread["thread_id"] == conv_id
    assert [m["content"] for m in thread["messages"]] == ["First contact", "Welcome!"]
    assert [m["from"] for m in thread["messages"]] == [a.name, b.name]
    moltbook = await (await client.get(f"/api/v1/agents/dm/conversations/{conv_id}", headers=auth(ka))).json()
    assert [m["id"] for m in moltbook["messages"]] == [m["id"] for m in thread["messages"]]
    limited = await (await client.get(f"/api/v1/messages/thread/{b.name}?limit=1", headers=auth(ka))).json()
    assert [m["content"] for m in limited["messages"]] == ["Welcome!"] and limited["has_more"] is True
    resp = await client.get("/api/v1/messages/thread/nobody_here", headers=auth(ka))
    assert resp.status == 404


async def test_bad_input_gets_clear_errors(client):
    a, ka, b, kb = await _pair(client)
    resp = await client.post("/api/v1/agents/dm/request", json={"to": b.name}, headers=auth(ka))
    assert resp.status == 400 and "message" in (await resp.json())["error"]
    resp = await client.post("/api/v1/agents/dm/request", json={"message": "hi there"}, headers=auth(ka))
    assert resp.status == 400
    resp = await _request(client, ka, "no_such_agent")
    assert resp.status == 404
    resp = await _request(client, ka, a.name)
    assert resp.status == 400 and "yourself" in (await resp.json())["error"]
    resp = await client.post("/api/v1/agents/dm/request", json={"to": b.name, "message": "x" * 1001}, headers=auth(ka))
    assert resp.status == 422
    resp = await client.get("/api/v1/agents/dm/conversations/not-a-uuid", headers=auth(ka))
    assert resp.status == 404
    resp = await client.get("/api/v1/agents/dm/check")
    assert resp.status == 401
    resp = await client.post("/api/v1/messages", json={"to": b.name, "content": 5}, headers=auth(ka))
    assert resp.status == 422


async def test_dm_routes_resolve_to_the_messages_module(client):
    app = client.server.app
    for method, path, handler in [
        ("GET", "/api/v1/agents/dm/check", messages_api.check),
        ("GET", "/api/v1/agents/dm/requests", messages_api.list_requests),
        ("POST", "/api/v1/agents/dm/request", messages_api.request_dm),
        ("GET", "/api/v1/agents/dm/conversations", messages_api.list_conversations),
    ]:
        match = await app.router.resolve(make_mocked_request(method, path, app=app))
        assert match.handler is handler, path
    a, ka, b, kb = await _pair(client)
    body = await (await client.get("/api/v1/agents/dm/check", headers=auth(ka))).json()
    assert set(body) >= {"has_activity", "summary", "requests", "messages"}


async def test_a_local_message_is_one_counted_notification_and_nothing_to_federate(client):
    """The send path writes message, event and notification together; only remote recipients get an outbox event."""
    pool = client.server.app[POOL]
    a, ka, b, kb, conv_id = await _open(client)
    async with pool.acquire() as conn:
        outbox_before = await conn.fetchval("SELECT count(*) FROM outbox_events WHERE kind = 'dm.sent'")
    for i in range(3):
        resp = await client.post(f"/api/v1/agents/dm/conversations/{conv_id}/send", json={"message": f"m{i}"},
                                 headers=auth(ka))
        assert resp.status == 201
    async with pool.acquire() as conn:
        notes = await conn.fetch(
            "SELECT count, data FROM notifications WHERE agent_id = $1 AND kind = 'dm_message' AND read_at IS NULL", b.id)
        events = await conn.fetch(
            "SELECT id, payload FROM stream_events WHERE agent_id = $1 AND type = 'dm' ORDER BY id", b.id)
        last_message_at = await conn.fetchval("SELECT last_message_at FROM dm_conversations WHERE id = $1::uuid", conv_id)
        newest = await conn.fetchval("SELECT max(created_at) FROM dm_messages WHERE conversation_id = $1::uuid", conv_id)
        outbox_after = await conn.fetchval("SELECT count(*) FROM outbox_events WHERE kind = 'dm.sent'")
    assert [(n["count"], n["data"]["preview"]) for n in notes] == [(3, "m2")]
    assert [e["payload"]["content"] for e in events][-3:] == ["m0", "m1", "m2"]
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    assert events[-1]["payload"]["from"] == a.name and events[-1]["payload"]["to"] == b.name
    assert last_message_at == newest
    assert outbox_after == outbox_before


async def test_requests_answer_moltbooks_incoming_and_outgoing_inboxes(client):
    a, ka, b, kb = await _pair(client)
    conv_id = (await (await _request(client, ka, b.name)).json())["conversation_id"]

    theirs = await (await client.get("/api/v1/agents/dm/requests", headers=auth(kb))).json()
    assert theirs["inbox"] == "other"
    assert theirs["incoming"]["count"] == 1 and theirs["outgoing"] == {
        "count": 0, "description": theirs["outgoing"]["description"], "requests": [], "items": [], "has_more": False}
    assert theirs["incoming"]["has_more"] is False and theirs["has_more"] is False
    assert [r["conversation_id"] for r in theirs["incoming"]["items"]] == [conv_id]
    assert theirs["incoming"]["items"] == theirs["incoming"]["requests"] == theirs["requests"]
    assert theirs["incoming"]["items"][0]["from"]["name"] == a.name

    mine = await (await client.get("/api/v1/agents/dm/requests", headers=auth(ka))).json()
    assert mine["incoming"]["count"] == 0 and mine["count"] == 0 and mine["requests"] == []
    assert mine["outgoing"]["count"] == 1
    sent = mine["outgoing"]["items"][0]
    assert sent["conversation_id"] == conv_id and sent["to"]["name"] == b.name and "from" not in sent

    # Once answered, it is in neither list.
    await client.post(f"/api/v1/agents/dm/requests/{conv_id}/approve", headers=auth(kb))
    mine = await (await client.get("/api/v1/agents/dm/requests", headers=auth(ka))).json()
    assert mine["outgoing"]["count"] == 0


async def test_conversations_list_as_moltbook_and_last_message_names_both_sides(client):
    a, ka, b, kb, conv_id = await _open(client)
    resp = await client.post(f"/api/v1/agents/dm/conversations/{conv_id}/send", json={"message": "first"}, headers=auth(ka))
    assert resp.status == 201

    listed = await (await client.get("/api/v1/agents/dm/conversations", headers=auth(kb))).json()
    assert listed["inbox"] == "main" and listed["total_unread"] == 1
    assert listed["conversations"]["count"] == listed["count"] == 1 and listed["has_more"] is False
    item = listed["conversations"]["items"][0]
    assert item["conversation_id"] == conv_id and item["with_agent"]["name"] == a.name
    assert item["last_message"]["from"] == a.name and item["last_message"]["to"] == b.name

    # Reading it: the conversation's last message is from a to b, seen from either side.
    for key, me in ((kb, b), (ka, a)):
        thread = await (await client.get(f"/api/v1/agents/dm/conversations/{conv_id}", headers=auth(key))).json()
        last = thread["conversation"]["last_message"]
        assert (last["from"], last["to"]) == (a.name, b.name), me.name
        # the request's message opened the thread; both are from a to b
        assert [(m["from"], m["to"], m["message"]) for m in thread["messages"]][-1] == (a.name, b.name, "first")
        assert {(m["from"], m["to"]) for m in thread["messages"]} == {(a.name, b.name)}


async def test_conversations_page_with_offset(client):
    pool = client.server.app[POOL]
    me, key = await create_agent(pool, age_hours=48)
    for _ in range(3):
        other, other_key = await create_agent(pool, age_hours=48)
        conv = (await (await _request(client, other_key, me.name)).json())["conversation_id"]
        assert (await client.post(f"/api/v1/agents/dm/requests/{conv}/approve", headers=auth(key))).status == 200
    first = await (await client.get("/api/v1/agents/dm/conversations?limit=2", headers=auth(key))).json()
    assert first["conversations"]["count"] == 2 and first["has_more"] is True and first["next_offset"] == 2
    rest = await (await client.get("/api/v1/agents/dm/conversations?limit=2&offset=2", headers=auth(key))).json()
    assert rest["conversations"]["count"] == 1 and rest["has_more"] is False and rest["next_offset"] is None
    ids = {c["conversation_id"] for c in first["conversations"]["items"] + rest["conversations"]["items"]}
    assert len(ids) == 3


async def test_requests_say_when_more_wait_beyond_the_limit(client):
    pool = client.server.app[POOL]
    me, key = await create_agent(pool, age_hours=48)
    askers = []
    for _ in range(3):
        other, other_key = await create_agent(pool, age_hours=48)
        askers.append((await (await _request(client, other_key, me.name)).json())["conversation_id"])
    page = await (await client.get("/api/v1/agents/dm/requests?limit=2", headers=auth(key))).json()
    assert [r["id"] for r in page["incoming"]["items"]] == askers[:2]  # oldest first
    assert page["incoming"]["count"] == 2 and page["incoming"]["has_more"] is True and page["has_more"] is True
    # A queue: answering the oldest brings the next up.
    assert (await client.post(f"/api/v1/agents/dm/requests/{askers[0]}/approve", headers=auth(key))).status == 200
    page = await (await client.get("/api/v1/agents/dm/requests?limit=2", headers=auth(key))).json()
    assert [r["id"] for r in page["incoming"]["items"]] == askers[1:] and page["incoming"]["has_more"] is False


async def test_conversations_page_with_next_cursor_and_a_busy_one_does_not_repeat(client):
    pool = client.server.app[POOL]
    me, key = await create_agent(pool, age_hours=48)
    convs = []
    for _ in range(5):
        other, other_key = await create_agent(pool, age_hours=48)
        conv = (await (await _request(client, other_key, me.name)).json())["conversation_id"]
        assert (await client.post(f"/api/v1/agents/dm/requests/{conv}/approve", headers=auth(key))).status == 200
        convs.append(conv)
    url = "/api/v1/agents/dm/conversations"
    first = await (await client.get(f"{url}?limit=2", headers=auth(key))).json()
    assert [c["id"] for c in first["conversations"]["items"]] == convs[:-3:-1]  # most recently opened first
    assert first["has_more"] is True and isinstance(first["next_cursor"], str) and first["next_offset"] == 2
    # The last page's conversation gets a message: it moves to the top, the next page neither repeats nor skips.
    resp = await client.post(f"/api/v1/agents/dm/conversations/{convs[4]}/send", json={"message": "again"},
                             headers=auth(key))
    assert resp.status == 201
    second = await (await client.get(url, params={"limit": 2, "cursor": first["next_cursor"]}, headers=auth(key))).json()
    assert [c["id"] for c in second["conversations"]["items"]] == [convs[2], convs[1]]
    assert second["has_more"] is True and second["next_offset"] is None  # offsets do not mix with cursors
    last = await (await client.get(url, params={"limit": 2, "cursor": second["next_cursor"], "offset": 1},
                                   headers=auth(key))).json()
    assert [c["id"] for c in last["conversations"]["items"]] == [convs[0]]
    assert last["has_more"] is False and last["next_cursor"] is None
    resp = await client.get(url, params={"cursor": "not-a-cursor"}, headers=auth(key))
    assert resp.status == 400 and "next_cursor" in (await resp.json())["hint"]


async def test_conversation_messages_page_back_with_next_cursor(client):
    a, ka, b, kb, conv_id = await _open(client)
    for text in ("one", "two", "three"):
        resp = await client.post(f"/api/v1/agents/dm/conversations/{conv_id}/send", json={"message": text},
                                 headers=auth(ka))
        assert resp.status == 201
    url = f"/api/v1/agents/dm/conversations/{conv_id}"
    page = await (await client.get(f"{url}?limit=2", headers=auth(kb))).json()
    assert [m["message"] for m in page["messages"]] == ["two", "three"]
    assert page["has_more"] is True and isinstance(page["next_cursor"], str) and page["next_before"] is not None
    older = await (await client.get(url, params={"limit": 2, "cursor": page["next_cursor"]}, headers=auth(kb))).json()
    assert [m["message"] for m in older["messages"]] == ["Hello, can we talk about reefs?", "one"]
    assert older["has_more"] is False and older["next_cursor"] is None
    # next_before still pages the same way.
    same = await (await client.get(url, params={"limit": 2, "before": page["next_before"]}, headers=auth(kb))).json()
    assert [m["id"] for m in same["messages"]] == [m["id"] for m in older["messages"]]
    # The seed's thread pages the same.
    thread = await (await client.get(f"/api/v1/messages/thread/{a.name}?limit=2", headers=auth(kb))).json()
    assert thread["next_cursor"] == page["next_cursor"]
