"""The WebSocket stream: auth, every frame type, replay with since, slow consumers, malformed frames."""
from __future__ import annotations

import asyncio
import json
import time
import uuid

import aiohttp
import pytest
from aiohttp import WSMsgType

from node.platform.appkeys import POOL
from node.realtime.state import REALTIME
from node.realtime.tokens import issue_token
from tests.factories import auth, create_agent

STREAM = "/api/v1/stream"


async def frame(ws, *types: str, timeout: float = 5.0) -> dict:
    """The next frame (of one of `types`, skipping others)."""
    while True:
        msg = await ws.receive(timeout=timeout)
        assert msg.type == WSMsgType.TEXT, f"expected a text frame, got {msg.type} {msg.data!r} {msg.extra!r}"
        data = json.loads(msg.data)
        if not types or data["type"] in types:
            return data


async def connect(client, key: str, since: int | None = None):
    """A stream that has finished its replay (ready received); returns (ws, frames before ready, ready)."""
    url = STREAM if since is None else f"{STREAM}?since={since}"
    ws = await client.ws_connect(url, headers=auth(key))
    before = []
    while True:
        f = await frame(ws)
        if f["type"] == "ready":
            return ws, before, f
        before.append(f)


async def open_conversation(client, ka: str, kb: str, b_name: str) -> str:
    resp = await client.post("/api/v1/agents/dm/request", json={"to": b_name, "message": "hello there"}, headers=auth(ka))
    conv_id = (await resp.json())["conversation_id"]
    assert (await client.post(f"/api/v1/agents/dm/requests/{conv_id}/approve", headers=auth(kb))).status == 200
    return conv_id


async def send(client, key: str, conv_id: str, text: str) -> dict:
    resp = await client.post(f"/api/v1/agents/dm/conversations/{conv_id}/send", json={"message": text}, headers=auth(key))
    assert resp.status == 201, await resp.text()
    return (await resp.json())["message"]


# --- auth ---


async def test_socket_auth_failures(client):
    pool = client.server.app[POOL]
    agent, key = await create_agent(pool)
    secret = client.server.app[REALTIME].secret
    expired = issue_token(secret, agent.id, 60, now=time.time() - 3600).token
    forged = issue_token(b"not the node secret", agent.id, 60).token
    for url, headers in [
        (STREAM, {}),
        (STREAM, auth("reef_sk_not_a_real_key")),
        (f"{STREAM}?token={expired}", {}),
        (f"{STREAM}?token={forged}", {}),
        (f"{STREAM}?token=garbage", {}),
    ]:
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await client.ws_connect(url, headers=headers)
        assert err.value.status == 401, url
    # The token endpoint itself needs the key.
    assert (await client.post("/api/v1/stream/token")).status == 401
    # Plain HTTP on the stream's URL is a clear 400, not a hang.
    resp = await client.get(STREAM, headers=auth(key))
    assert resp.status == 400 and "WebSocket" in (await resp.json())["error"]
    resp = await client.get(f"{STREAM}?since=abc", headers=auth(key))
    assert resp.status == 400


async def test_token_opens_the_stream(client):
    agent, key = await create_agent(client.server.app[POOL])
    resp = await client.post("/api/v1/stream/token", headers=auth(key))
    assert resp.status == 201
    body = await resp.json()
    assert body["expires_in"] > 0 and body["url"].startswith("ws://")
    ws = await client.ws_connect(f"{STREAM}?token={body['token']}")
    ready = await frame(ws, "ready")
    assert ready["agent"] == agent.name and ready["last_id"] == 0
    await ws.close()


# --- message types ---


async def test_dm_arrives_after_commit_with_an_id(client):
    pool = client.server.app[POOL]
    a, ka = await create_agent(pool)
    b, kb = await create_agent(pool)
    ws_b, _, ready = await connect(client, kb)
    # The request is a notification to b.
    resp = await client.post("/api/v1/agents/dm/request", json={"to": b.name, "message": "hello there"}, headers=auth(ka))
    conv_id = (await resp.json())["conversation_id"]
    note = await frame(ws_b, "notification")
    assert note["kind"] == "dm_request" and note["from"] == a.name and note["conversation_id"] == conv_id
    assert note["id"] == ready["last_id"] + 1
    ws_a, _, _ = await connect(client, ka)
    assert (await client.post(f"/api/v1/agents/dm/requests/{conv_id}/approve", headers=auth(kb))).status == 200
    approved = await frame(ws_a, "notification")
    assert approved["kind"] == "dm_approved" and approved["from"] == b.name

    sent = await send(client, ka, conv_id, "committed first")
    dm = await frame(ws_b, "dm")
    assert dm["id"] == note["id"] + 1
    assert (dm["from"], dm["to"], dm["content"]) == (a.name, b.name, "committed first")
    assert dm["message_id"] == sent["id"] and dm["conversation_id"] == conv_id and dm["timestamp"]
    # Told only after the commit: the row is there when the frame arrives.
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT content FROM dm_messages WHERE id = $1", uuid.UUID(dm["message_id"])) == "committed first"
    await ws_a.close()
    await ws_b.close()


async def test_dm_sent_over_the_socket_is_acked_and_delivered(client):
    pool = client.server.app[POOL]
    a, ka = await create_agent(pool)
    b, kb = await create_agent(pool)
    c, kc = await create_agent(pool)
    conv_id = await open_conversation(client, ka, kb, b.name)
    ws_a, _, _ = await connect(client, ka)
    ws_b, _, _ = await connect(client, kb)
    await ws_a.send_json({"type": "dm", "to": b.name, "content": "over the socket", "ref": "r1", "needs_human_input": True})
    ack = await frame(ws_a, "ack")
    assert ack["ref"] == "r1" and ack["status"] == "sent" and ack["conversation_id"] == conv_id
    dm = await frame(ws_b, "dm")
    assert dm["content"] == "over the socket" and dm["message_id"] == ack["message_id"] and dm["needs_human_input"] is True
    await ws_b.send_json({"type": "dm", "conversation_id": conv_id, "content": "and back", "ref": 7})
    assert (await frame(ws_b, "ack"))["ref"] == 7
    assert (await frame(ws_a, "dm"))["content"] == "and back"
    # No conversation with c yet: the dm becomes a request, acked as pending.
    await ws_a.send_json({"type": "dm", "to": c.name, "content": "may I?", "ref": "r2"})
    ack = await frame(ws_a, "ack")
    assert ack["ref"] == "r2" and ack["status"] == "pending" and ack["message_id"] is None
    # Consent rules hold on the socket too: c may not write into a pending request.
    ws_c, _, _ = await connect(client, kc)
    await ws_c.send_json({"type": "dm", "to": a.name, "content": "hi", "ref": "r3"})
    err = await frame(ws_c, "error")
    assert err["ref"] == "r3" and err["status"] == 403
    for ws in (ws_a, ws_b, ws_c):
        await ws.close()


async def test_typing_goes_to_the_other_party_only(client):
    pool = client.server.app[POOL]
    a, ka = await create_agent(pool)
    b, kb = await create_agent(pool)
    c, kc = await create_agent(pool)
    conv_id = await open_conversation(client, ka, kb, b.name)
    ws_a, _, _ = await connect(client, ka)
    ws_b, _, _ = await connect(client, kb)
    ws_c, _, _ = await connect(client, kc)
    await ws_a.send_json({"type": "typing", "to": b.name})
    typing = await frame(ws_b, "typing")
    assert typing["from"] == a.name and typing["conversation_id"] == conv_id and typing["typing"] is True
    # c shares no conversation with a: its next frame is the one sent to it after the typing, not the typing.
    await ws_a.send_json({"type": "dm", "to": c.name, "content": "a request", "ref": 1})
    assert (await frame(ws_c, "typing", "notification"))["type"] == "notification"
    # Typing into a conversation that is not open is refused.
    await ws_a.send_json({"type": "typing", "to": c.name, "ref": "t"})
    err = await frame(ws_a, "error")
    assert err["ref"] == "t" and err["status"] == 403
    for ws in (ws_a, ws_b, ws_c):
        await ws.close()


async def test_presence_online_offline_for_contacts_only(client):
    pool = client.server.app[POOL]
    a, ka = await create_agent(pool)
    b, kb = await create_agent(pool)
    c, kc = await create_agent(pool)
    await open_conversation(client, ka, kb, b.name)
    ws_a, _, _ = await connect(client, ka)
    ws_c, _, _ = await connect(client, kc)
    ws_b = await client.ws_connect(STREAM, headers=auth(kb))
    online = await frame(ws_a, "presence")
    assert online["agent"] == b.name and online["status"] == "online"
    # b is told its contact a is online (a snapshot right after ready).
    snap = await frame(ws_b, "presence")
    assert snap["agent"] == a.name and snap["status"] == "online"
    await ws_b.close()
    offline = await frame(ws_a, "presence")
    assert offline["agent"] == b.name and offline["status"] == "offline" and offline["last_active"]
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT last_active FROM agents WHERE id = $1", b.id) is not None
    # c (no conversation, no follows) heard nothing of b: its next frame is the one sent after.
    await client.post("/api/v1/agents/dm/request", json={"to": c.name, "message": "hi c"}, headers=auth(ka))
    assert (await frame(ws_c, "presence", "notification"))["type"] == "notification"
    await ws_a.close()
    await ws_c.close()


async def test_read_receipts_and_acks(client):
    pool = client.server.app[POOL]
    a, ka = await create_agent(pool)
    b, kb = await create_agent(pool)
    conv_id = await open_conversation(client, ka, kb, b.name)
    ws_a, _, _ = await connect(client, ka)
    ws_b, _, _ = await connect(client, kb)
    m1 = await send(client, ka, conv_id, "one")
    m2 = await send(client, ka, conv_id, "two")
    await frame(ws_b, "dm")
    last = await frame(ws_b, "dm")
    await ws_b.send_json({"type": "ack", "id": last["id"], "conversation_id": conv_id})
    receipt = await frame(ws_a, "read")
    assert receipt["by"] == b.name and receipt["conversation_id"] == conv_id
    assert receipt["message_ids"] == [m1["id"], m2["id"]] and receipt["read_at"] and receipt["id"] >= 1
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT acked_id FROM stream_sequences WHERE agent_id = $1", b.id) == last["id"]
        assert await conn.fetchval("SELECT count(*) FROM dm_messages WHERE read_at IS NULL") == 0
    await ws_a.close()
    await ws_b.close()


async def test_ping_pong_and_malformed_frames_keep_the_connection(client):
    agent, key = await create_agent(client.server.app[POOL])
    ws, _, _ = await connect(client, key)
    bad = [
        ("not json at all", "not JSON"),
        ("[1, 2]", "object"),
        ('{"type": "shout"}', "Unknown frame type"),
        ('{"no_type": true}', "Unknown frame type"),
        ('{"type": "dm", "to": "someone"}', "content"),
        ('{"type": "ack"}', "ack"),
        ('{"type": "ack", "id": "seven"}', "integer"),
        ('{"type": "typing", "conversation_id": "nope"}', "UUID"),
    ]
    for text, words in bad:
        await ws.send_str(text)
        err = await frame(ws)
        assert err["type"] == "error" and words in err["error"], (text, err)
        assert err["hint"]
    await ws.send_bytes(b"\x00\x01")
    assert (await frame(ws))["type"] == "error"
    await ws.send_json({"type": "ping", "ref": "p"})
    pong = await frame(ws)
    assert pong == {"type": "pong", "ref": "p", "timestamp": pong["timestamp"]}
    assert not ws.closed
    await ws.close()


# --- replay ---


async def test_reconnect_with_since_replays_in_order_without_duplicates(client):
    pool = client.server.app[POOL]
    a, ka = await create_agent(pool)
    b, kb = await create_agent(pool)
    conv_id = await open_conversation(client, ka, kb, b.name)
    ws_b, _, ready = await connect(client, kb)
    base = ready["last_id"]
    await send(client, ka, conv_id, "m1")
    await send(client, ka, conv_id, "m2")
    got = [await frame(ws_b, "dm"), await frame(ws_b, "dm")]
    await ws_b.close()
    for i in range(3, 6):
        await send(client, ka, conv_id, f"m{i}")
    # Reconnect while more messages are being sent: the replay and the live tail must meet exactly.
    live = asyncio.gather(*(send(client, ka, conv_id, f"m{i}") for i in range(6, 12)))
    ws_b, replayed, ready = await connect(client, kb, since=got[-1]["id"])
    await live
    received = got + [f for f in replayed if f["type"] == "dm"]
    while len(received) < 11:
        received.append(await frame(ws_b, "dm"))
    ids = [f["id"] for f in received]
    assert ids == list(range(base + 1, base + 12)), ids
    assert sorted(f["content"] for f in received[5:]) == sorted(f"m{i}" for i in range(6, 12))
    assert [f["content"] for f in received[:5]] == ["m1", "m2", "m3", "m4", "m5"]
    # Nothing more (no duplicate): the next frame is a pong.
    await ws_b.send_json({"type": "ping"})
    assert (await frame(ws_b))["type"] == "pong"
    # since=0 replays everything kept; a since past the newest id is clamped, not trusted.
    await ws_b.close()
    ws_b, replayed, ready = await connect(client, kb, since=0)
    assert [f["id"] for f in replayed] == list(range(1, ready["last_id"] + 1))
    await ws_b.close()
    ws_b, replayed, ready2 = await connect(client, kb, since=10_000)
    assert replayed == [] and ready2["last_id"] == ready["last_id"]
    await send(client, ka, conv_id, "after clamp")
    assert (await frame(ws_b, "dm"))["id"] == ready["last_id"] + 1
    await ws_b.close()


async def test_a_lost_publish_is_repaired_by_the_next_event_or_the_sweep(client):
    """The bus may lose a message (Redis down); the per-recipient ids have no gaps, so the hole is seen."""
    pool = client.server.app[POOL]
    rt = client.server.app[REALTIME]
    a, ka = await create_agent(pool)
    b, kb = await create_agent(pool)
    conv_id = await open_conversation(client, ka, kb, b.name)
    ws_b, _, _ = await connect(client, kb)
    real = rt.bus.publish_events
    rt.bus.publish_events = lambda *args: asyncio.sleep(0)  # type: ignore[method-assign]  # the bus drops it
    await send(client, ka, conv_id, "lost on the bus")
    rt.bus.publish_events = real  # type: ignore[method-assign]
    await send(client, ka, conv_id, "next")
    assert [(await frame(ws_b, "dm"))["content"] for _ in range(2)] == ["lost on the bus", "next"]
    # And when nothing follows, the sweep finds the session behind.
    rt.bus.publish_events = lambda *args: asyncio.sleep(0)  # type: ignore[method-assign]
    await send(client, ka, conv_id, "last one")
    rt.bus.publish_events = real  # type: ignore[method-assign]
    assert await rt.hub.check_all() == 1
    assert (await frame(ws_b, "dm"))["content"] == "last one"
    await ws_b.close()


async def test_events_announced_while_the_listen_connection_was_away_arrive_once_it_is_back(aiohttp_client, make_config):
    """pg_notify reaches only connected listeners: after reconnecting, every open stream re-reads its events.
    The sweep is set to an hour, so only the reconnection can explain the delivery."""
    from node.app import create_app
    from node.platform.appkeys import LISTENER
    from node.stores import stream as stream_store

    client = await aiohttp_client(create_app(make_config(limits={"stream_resync_seconds": 3600})))
    pool = client.server.app[POOL]
    listener = client.server.app[LISTENER]
    b, kb = await create_agent(pool)
    ws_b, _, _ = await connect(client, kb)
    # Committed while nobody heard of it (as if announced while the connection was down).
    async with pool.acquire() as conn:
        await stream_store.insert_events(conn, [b.id], "notification", {"kind": "follow", "from": "someone"})
    pid = listener.conn.get_server_pid()
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
    got = await frame(ws_b, "notification", timeout=10)
    assert got["kind"] == "follow" and got["from"] == "someone"
    assert listener.is_connected and listener.conn.get_server_pid() != pid
    await ws_b.close()


# --- slow consumers ---


async def test_slow_consumer_is_closed_without_stalling_others(aiohttp_client, make_config):
    from node.app import create_app

    client = await aiohttp_client(create_app(make_config(limits={"stream_queue_size": 2})))
    pool = client.server.app[POOL]
    rt = client.server.app[REALTIME]
    slow, k_slow = await create_agent(pool)
    fast, k_fast = await create_agent(pool)
    ws_slow, _, _ = await connect(client, k_slow)
    ws_fast, _, _ = await connect(client, k_fast)
    session = next(iter(rt.hub.sessions[slow.id]))
    received: list[int] = []

    async def read_fast() -> None:
        while True:
            received.append((await frame(ws_fast, "notification"))["id"])

    reader = asyncio.create_task(read_fast())
    blob = "x" * 1_000_000
    sent_fast = 0
    for i in range(1, 200):
        # The slow client never reads: its socket buffers fill, then its queue, then it is closed.
        await rt.bus.publish_events([(slow.id, i)], "notification", {"kind": "test", "blob": blob})
        await rt.bus.publish_events([(fast.id, i)], "notification", {"kind": "test"})
        sent_fast = i
        await asyncio.sleep(0)  # let the writers run
        if session.done.is_set():
            break
    await asyncio.wait_for(session.done.wait(), 10)
    assert session.close_code == 4008
    # The fast client got every frame meanwhile.
    while len(received) < sent_fast:
        await asyncio.sleep(0.01)
    reader.cancel()
    assert received == list(range(1, sent_fast + 1))
    # The slow client, reading at last, finds the close frame with the code and a reason.
    while True:
        msg = await ws_slow.receive(timeout=10)
        if msg.type != WSMsgType.TEXT:
            break
    assert msg.type == WSMsgType.CLOSE
    assert msg.data == 4008 and "slow consumer" in msg.extra
    assert slow.id not in rt.hub.sessions or session not in rt.hub.sessions[slow.id]
    await ws_fast.close()
