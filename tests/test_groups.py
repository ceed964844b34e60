"""Group chats: invitations, owner rights, membership checked on send and delivery, history, group_msg on the stream."""
from __future__ import annotations

from node.platform.appkeys import POOL
from tests.factories import auth, create_agent
from tests.test_stream import connect, frame


async def _agents(client, n: int):
    pool = client.server.app[POOL]
    return [await create_agent(pool) for _ in range(n)]


async def _group(client, owner_key: str, members: list[str], name: str = "Reef builders") -> str:
    resp = await client.post("/api/v1/groups", json={"name": name, "members": members}, headers=auth(owner_key))
    assert resp.status == 201, await resp.text()
    return (await resp.json())["group"]["id"]


async def _send(client, key: str, group_id: str, text: str):
    return await client.post(f"/api/v1/groups/{group_id}/messages", json={"content": text}, headers=auth(key))


async def test_invitation_then_join_then_talk(client):
    (owner, ko), (ann, ka), (bob, kb) = await _agents(client, 3)
    ws_ann, _, _ = await connect(client, ka)
    group_id = await _group(client, ko, [ann.name, bob.name])
    invite = await frame(ws_ann, "notification")
    assert invite["kind"] == "group_invite" and invite["group_id"] == group_id and invite["from"] == owner.name

    listed = await (await client.get("/api/v1/groups", headers=auth(ka))).json()
    assert listed["groups"] == [] and [g["id"] for g in listed["invitations"]] == [group_id]
    # Invited is not a member yet: no sending, no history.
    assert (await _send(client, ka, group_id, "hi")).status == 403
    assert (await client.get(f"/api/v1/groups/{group_id}/messages", headers=auth(ka))).status == 403

    resp = await client.post(f"/api/v1/groups/{group_id}/join", headers=auth(ka))
    assert resp.status == 200 and (await resp.json())["group"]["member_count"] == 2
    assert (await client.post(f"/api/v1/groups/{group_id}/join", headers=auth(ka))).status == 409
    detail = await (await client.get(f"/api/v1/groups/{group_id}", headers=auth(ka))).json()
    assert {(m["name"], m["status"]) for m in detail["members"]} == {
        (owner.name, "active"), (ann.name, "active"), (bob.name, "invited")}

    ws_owner, _, _ = await connect(client, ko)
    await ws_owner.send_json({"type": "group_msg", "group_id": group_id, "content": "welcome!", "ref": "g1"})
    ack = await frame(ws_owner, "ack")
    assert ack["ref"] == "g1" and ack["for"] == "group_msg"
    msg = await frame(ws_ann, "group_msg")
    assert (msg["from"], msg["content"], msg["group_id"]) == (owner.name, "welcome!", group_id)
    assert msg["message_id"] == ack["message_id"] and msg["id"] == invite["id"] + 1
    resp = await _send(client, ka, group_id, "thanks")
    assert resp.status == 201
    assert (await frame(ws_owner, "group_msg"))["content"] == "thanks"
    # Bob (only invited) got no group message: his only events are the invitation.
    async with client.server.app[POOL].acquire() as conn:
        kinds = await conn.fetch("SELECT type FROM stream_events WHERE agent_id = $1", bob.id)
    assert [r["type"] for r in kinds] == ["notification"]
    await ws_ann.close()
    await ws_owner.close()


async def test_non_members_and_non_owners_are_refused(client):
    (owner, ko), (ann, ka), (eve, ke) = await _agents(client, 3)
    group_id = await _group(client, ko, [ann.name])
    await client.post(f"/api/v1/groups/{group_id}/join", headers=auth(ka))
    assert (await client.get(f"/api/v1/groups/{group_id}", headers=auth(ke))).status == 404
    assert (await _send(client, ke, group_id, "let me in")).status == 404
    assert (await client.get(f"/api/v1/groups/{group_id}/messages", headers=auth(ke))).status == 404
    ws_eve, _, _ = await connect(client, ke)
    await ws_eve.send_json({"type": "group_msg", "group_id": group_id, "content": "hi", "ref": 1})
    err = await frame(ws_eve, "error")
    assert err["ref"] == 1 and err["status"] == 404
    await ws_eve.send_json({"type": "typing", "group_id": group_id, "ref": 2})
    assert (await frame(ws_eve, "error"))["status"] == 404
    # A member who is not the owner cannot invite or remove.
    resp = await client.post(f"/api/v1/groups/{group_id}/members", json={"name": eve.name}, headers=auth(ka))
    assert resp.status == 403
    resp = await client.delete(f"/api/v1/groups/{group_id}/members/{owner.name}", headers=auth(ka))
    assert resp.status == 403
    resp = await client.post(f"/api/v1/groups/{group_id}/members", json={"name": ann.name}, headers=auth(ko))
    assert resp.status == 409
    resp = await client.post(f"/api/v1/groups/{group_id}/members", json={"name": "ghost_agent"}, headers=auth(ko))
    assert resp.status == 404
    resp = await client.post("/api/v1/groups", json={"members": []}, headers=auth(ko))
    assert resp.status == 400
    resp = await client.post("/api/v1/groups", json={"name": "x", "members": "ann"}, headers=auth(ko))
    assert resp.status == 422
    await ws_eve.close()


async def test_removed_member_gets_nothing_more_not_even_on_replay(client):
    (owner, ko), (ann, ka), (bob, kb) = await _agents(client, 3)
    group_id = await _group(client, ko, [ann.name, bob.name])
    for key in (ka, kb):
        await client.post(f"/api/v1/groups/{group_id}/join", headers=auth(key))
    ws_bob, _, ready = await connect(client, kb)
    await _send(client, ko, group_id, "one")
    first = await frame(ws_bob, "group_msg")
    await ws_bob.close()
    # While bob is away: a message he would have got, then he is removed, then more messages.
    await _send(client, ko, group_id, "two")
    resp = await client.delete(f"/api/v1/groups/{group_id}/members/{bob.name}", headers=auth(ko))
    assert resp.status == 200
    await _send(client, ko, group_id, "three")
    assert (await _send(client, kb, group_id, "am I still here?")).status == 404
    # Replay: "two" was written for him but he is no longer a member, so it is skipped; the removal
    # notice is delivered; "three" was never his.
    ws_bob, replayed, ready = await connect(client, kb, since=first["id"])
    assert [(f["type"], f.get("kind")) for f in replayed] == [("notification", "group_removed")]
    async with client.server.app[POOL].acquire() as conn:
        last = await conn.fetchval("SELECT last_id FROM stream_sequences WHERE agent_id = $1", bob.id)
    assert ready["last_id"] == last == first["id"] + 2
    await ws_bob.close()


async def test_history_pages_back_with_a_cursor(client):
    (owner, ko), (ann, ka) = await _agents(client, 2)
    group_id = await _group(client, ko, [ann.name])
    await client.post(f"/api/v1/groups/{group_id}/join", headers=auth(ka))
    for i in range(1, 6):
        assert (await _send(client, ko if i % 2 else ka, group_id, f"m{i}")).status == 201
    seen, cursor = [], None
    while True:
        url = f"/api/v1/groups/{group_id}/messages?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = await (await client.get(url, headers=auth(ka))).json()
        seen.append([m["content"] for m in page["messages"]])
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        cursor = page["next_cursor"]
    assert seen == [["m5", "m4"], ["m3", "m2"], ["m1"]]
    resp = await client.get(f"/api/v1/groups/{group_id}/messages?cursor=bogus", headers=auth(ka))
    assert resp.status == 400


async def test_leaving_hands_over_ownership_and_the_last_one_out_deletes(client):
    (owner, ko), (ann, ka), (bob, kb) = await _agents(client, 3)
    group_id = await _group(client, ko, [ann.name, bob.name])
    await client.post(f"/api/v1/groups/{group_id}/join", headers=auth(ka))
    # bob declines
    resp = await client.post(f"/api/v1/groups/{group_id}/leave", headers=auth(kb))
    assert resp.status == 200
    assert (await (await client.get("/api/v1/groups", headers=auth(kb))).json())["invitations"] == []
    resp = await client.post(f"/api/v1/groups/{group_id}/leave", headers=auth(ko))
    assert (await resp.json())["deleted"] is False
    detail = await (await client.get(f"/api/v1/groups/{group_id}", headers=auth(ka))).json()
    assert detail["your_role"] == "owner" and detail["group"]["member_count"] == 1
    resp = await client.post(f"/api/v1/groups/{group_id}/members", json={"name": bob.name}, headers=auth(ka))
    assert resp.status == 201
    resp = await client.post(f"/api/v1/groups/{group_id}/leave", headers=auth(ka))
    assert (await resp.json())["deleted"] is True
    assert (await client.get(f"/api/v1/groups/{group_id}", headers=auth(kb))).status == 404


async def test_group_typing_and_presence_reach_co_members(client):
    (owner, ko), (ann, ka) = await _agents(client, 2)
    group_id = await _group(client, ko, [ann.name])
    await client.post(f"/api/v1/groups/{group_id}/join", headers=auth(ka))
    ws_owner, _, _ = await connect(client, ko)
    ws_ann, _, _ = await connect(client, ka)
    online = await frame(ws_owner, "presence")
    assert online["agent"] == ann.name and online["status"] == "online"
    await ws_ann.send_json({"type": "typing", "group_id": group_id})
    typing = await frame(ws_owner, "typing")
    assert typing["from"] == ann.name and typing["group_id"] == group_id
    await ws_ann.close()
    await ws_owner.close()
