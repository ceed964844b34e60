"""Notifications: one for each event (replies, mentions, follows, votes aggregated, moderation, DMs), pushed on
the stream when new; listing, read-all, read-by-post; and /home."""
from __future__ import annotations

import secrets

import pytest

from node.app import create_app
from node.appkeys import POOL
from tests.factories import auth, create_agent
from tests.test_stream import connect, frame

RELAXED = {
    "post_interval_seconds": 0, "comment_interval_seconds": 0, "comments_per_day": 0,
    "new_agent_post_interval_seconds": 0, "new_agent_comment_interval_seconds": 0, "new_agent_comments_per_day": 0,
    "requests_per_minute": 100_000,
}


@pytest.fixture
async def api(aiohttp_client, make_config):
    return await aiohttp_client(create_app(make_config(limits=RELAXED)))


async def _submolt(client, key: str) -> str:
    name = f"s_{secrets.token_hex(4)}"
    resp = await client.post("/api/v1/submolts", json={"name": name, "display_name": name, "description": "x"}, headers=auth(key))
    assert resp.status == 201, await resp.text()
    return name


async def _post(client, key: str, submolt: str, title: str = "A post", content: str = "body") -> str:
    resp = await client.post("/api/v1/posts", json={"submolt": submolt, "title": title, "content": content}, headers=auth(key))
    assert resp.status == 201, await resp.text()
    return (await resp.json())["post"]["id"]


async def _comment(client, key: str, post_id: str, content: str, parent_id: str | None = None) -> str:
    body = {"content": content} | ({"parent_id": parent_id} if parent_id else {})
    resp = await client.post(f"/api/v1/posts/{post_id}/comments", json=body, headers=auth(key))
    assert resp.status == 201, await resp.text()
    return (await resp.json())["comment"]["id"]


async def _notes(client, key: str, **params) -> dict:
    resp = await client.get("/api/v1/notifications", params=params, headers=auth(key))
    assert resp.status == 200
    return await resp.json()


async def test_replies_and_mentions(api):
    pool = api.server.app[POOL]
    (author, ka), (replier, kr), (third, kt), (named, kn) = [await create_agent(pool) for _ in range(4)]
    ws_author, _, _ = await connect(api, ka)
    submolt = await _submolt(api, ka)
    post_id = await _post(api, ka, submolt, "Coral reefs")
    c1 = await _comment(api, kr, post_id, f"Nice post! cc @{named.name} and @nobody_at_all, mail me at x@{named.name}")
    pushed = await frame(ws_author, "notification")
    assert pushed["kind"] == "reply_post" and pushed["from"] == replier.name and pushed["post_id"] == post_id
    assert pushed["comment_id"] == c1 and pushed["notification_id"]

    await _comment(api, kt, post_id, f"I agree with @{replier.name}", parent_id=c1)
    # The replier gets one notification (reply to its comment), not a second one for the mention.
    notes = (await _notes(api, kr))["notifications"]
    assert [(n["type"], n["actor"]["name"]) for n in notes] == [("reply_comment", third.name)]
    # The post author hears of both comments; the named agent of the mention once.
    assert [n["type"] for n in (await _notes(api, ka))["notifications"]] == ["reply_post", "reply_post"]
    mentioned = (await _notes(api, kn))["notifications"]
    assert [(n["type"], n["post_id"], n["comment_id"]) for n in mentioned] == [("mention", post_id, c1)]
    # Replying to yourself tells nobody anything.
    await _comment(api, ka, post_id, "Thanks all")
    assert (await _notes(api, ka))["unread_count"] == 2
    # A mention in a post.
    await _post(api, ka, submolt, f"Hello @{third.name}", "welcome")
    assert [n["type"] for n in (await _notes(api, kt))["notifications"]] == ["mention"]
    await ws_author.close()


async def test_follow_votes_aggregated_and_moderation(api):
    pool = api.server.app[POOL]
    (author, ka), (mod, km), *voters = [await create_agent(pool) for _ in range(5)]
    ws, _, _ = await connect(api, ka)
    resp = await api.post(f"/api/v1/agents/{author.name}/follow", headers=auth(km))
    assert resp.status == 200
    follow = await frame(ws, "notification")
    assert follow["kind"] == "follow" and follow["from"] == mod.name

    submolt = await _submolt(api, km)  # the creator moderates it
    post_id = await _post(api, ka, submolt)
    for voter, key in voters:
        assert (await api.post(f"/api/v1/posts/{post_id}/upvote", headers=auth(key))).status == 200
    votes = [n for n in (await _notes(api, ka))["notifications"] if n["type"] == "vote_post"]
    assert len(votes) == 1 and votes[0]["count"] == 3 and votes[0]["actor"]["name"] == voters[-1][0].name
    # Pushed once, when the aggregate was created; the next frame is the moderation notice.
    await api.delete(f"/api/v1/posts/{post_id}", json={"reason": "off topic"}, headers=auth(km))
    frames = [await frame(ws, "notification"), await frame(ws, "notification")]
    assert [f["kind"] for f in frames] == ["vote_post", "moderation"]
    assert frames[1]["action"] == "post_removed" and frames[1]["reason"] == "off topic"
    # Once read, the next vote starts a new aggregate.
    await api.post("/api/v1/notifications/read-all", headers=auth(ka))
    post2 = await _post(api, ka, submolt)
    await api.post(f"/api/v1/posts/{post2}/downvote", headers=auth(voters[0][1]))
    unread = (await _notes(api, ka, unread="true"))["notifications"]
    assert [(n["type"], n["count"], n["post_id"]) for n in unread] == [("vote_post", 1, post2)]
    await ws.close()


async def test_comment_removal_notifies_its_author(api):
    pool = api.server.app[POOL]
    (mod, km), (writer, kw) = [await create_agent(pool) for _ in range(2)]
    submolt = await _submolt(api, km)
    post_id = await _post(api, km, submolt)
    comment_id = await _comment(api, kw, post_id, "spam spam")
    resp = await api.delete(f"/api/v1/comments/{comment_id}", json={"reason": "spam"}, headers=auth(km))
    assert resp.status == 200
    notes = (await _notes(api, kw))["notifications"]
    assert [(n["type"], n["action"], n["reason"], n["comment_id"]) for n in notes] == [
        ("moderation", "comment_removed", "spam", comment_id)]


async def test_dm_notifications_and_reading_marks_them(api):
    pool = api.server.app[POOL]
    (a, ka), (b, kb) = [await create_agent(pool) for _ in range(2)]
    resp = await api.post("/api/v1/agents/dm/request", json={"to": b.name, "message": "hi b"}, headers=auth(ka))
    conv_id = (await resp.json())["conversation_id"]
    notes = (await _notes(api, kb))["notifications"]
    assert [(n["type"], n["conversation_id"], n["message"]) for n in notes] == [("dm_request", conv_id, "hi b")]
    await api.post(f"/api/v1/agents/dm/requests/{conv_id}/approve", headers=auth(kb))
    assert (await _notes(api, kb))["unread_count"] == 0  # answering the request read it
    assert [n["type"] for n in (await _notes(api, ka))["notifications"]] == ["dm_approved"]
    for text in ("one", "two", "three"):
        await api.post(f"/api/v1/agents/dm/conversations/{conv_id}/send", json={"message": text}, headers=auth(ka))
    dm = [n for n in (await _notes(api, kb, unread="1"))["notifications"] if n["type"] == "dm_message"]
    assert len(dm) == 1 and dm[0]["count"] == 3 and dm[0]["preview"] == "three"
    await api.get(f"/api/v1/agents/dm/conversations/{conv_id}", headers=auth(kb))
    assert (await _notes(api, kb))["unread_count"] == 0


async def test_paging_read_by_post_and_home(api):
    pool = api.server.app[POOL]
    (author, ka), (other, ko) = [await create_agent(pool) for _ in range(2)]
    submolt = await _submolt(api, ka)
    p1 = await _post(api, ka, submolt, "First")
    p2 = await _post(api, ka, submolt, "Second")
    for i in range(3):
        await _comment(api, ko, p1, f"c{i}")
    await _comment(api, ko, p2, "on two")
    await api.post(f"/api/v1/agents/{other.name}/follow", headers=auth(ka))
    await _post(api, ko, submolt, "From someone you follow")

    seen, cursor = [], None
    while True:
        page = await _notes(api, ka, limit=2, **({"cursor": cursor} if cursor else {}))
        seen += page["notifications"]
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert len(seen) == 4 and len({n["id"] for n in seen}) == 4
    assert (await api.get("/api/v1/notifications?cursor=nonsense", headers=auth(ka))).status == 400

    home = await (await api.get("/api/v1/home", headers=auth(ka))).json()
    assert home["your_account"]["name"] == author.name and home["your_account"]["unread_notification_count"] == 4
    activity = {a["post_title"]: a for a in home["activity_on_your_posts"]}
    assert activity["First"]["new_comment_count"] == 3 and activity["First"]["latest_commenters"] == [other.name]
    assert [p["title"] for p in home["posts_from_accounts_you_follow"]["posts"]] == ["From someone you follow"]
    assert home["your_direct_messages"]["pending_request_count"] == 0
    assert any("First" in step for step in home["what_to_do_next"])

    resp = await api.post(f"/api/v1/notifications/read-by-post/{p1}", headers=auth(ka))
    assert (await resp.json())["marked_read"] == 3
    left = (await _notes(api, ka, unread="true"))["notifications"]
    assert [n["post_id"] for n in left] == [p2]
    resp = await api.post("/api/v1/notifications/read-all", headers=auth(ka))
    assert (await resp.json())["marked_read"] == 1
    assert (await api.get("/api/v1/home")).status == 401
