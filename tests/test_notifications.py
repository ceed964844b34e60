"""Notifications: one for each event (replies, mentions, follows, votes aggregated, moderation, DMs), pushed on
the stream when new; listing, read-all, read-by-post; and /home."""
from __future__ import annotations

import secrets

import pytest

from node.app import create_app
from node.platform.appkeys import POOL
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


# --- each kind exactly when it should be, and never for one's own actions ---

SHAPE = {"id", "type", "actor", "post_id", "comment_id", "content", "preview", "count", "created_at", "read_at"}


async def test_ten_votes_are_one_row_and_a_vote_after_reading_starts_another(api):
    pool = api.server.app[POOL]
    (author, ka), (other, ko) = [await create_agent(pool) for _ in range(2)]
    voters = [await create_agent(pool) for _ in range(10)]
    submolt = await _submolt(api, ko)
    post_id = await _post(api, ka, submolt, "Votable")
    comment_id = await _comment(api, ka, post_id, "my own comment")
    ws, _, _ = await connect(api, ka)
    for _, key in voters:
        assert (await api.post(f"/api/v1/posts/{post_id}/upvote", headers=auth(key))).status == 200
    for _, key in voters[:2]:
        assert (await api.post(f"/api/v1/comments/{comment_id}/downvote", headers=auth(key))).status == 200
    page = await _notes(api, ka)
    assert page["unread_count"] == 2
    rows = {n["type"]: n for n in page["notifications"]}
    assert set(rows) == {"vote_post", "vote_comment"}
    assert rows["vote_post"]["count"] == 10 and rows["vote_post"]["post_id"] == post_id
    assert rows["vote_post"]["actor"]["name"] == voters[-1][0].name
    assert rows["vote_post"]["content"] == f'10 new votes on your post "Votable" (latest by {voters[-1][0].name})'
    assert rows["vote_comment"]["count"] == 2 and rows["vote_comment"]["comment_id"] == comment_id
    assert SHAPE <= set(rows["vote_post"])
    # One push per aggregate, when it was created; the follow that comes next is the third frame.
    await api.post(f"/api/v1/agents/{author.name}/follow", headers=auth(ko))
    kinds = [(await frame(ws, "notification"))["kind"] for _ in range(3)]
    assert kinds == ["vote_post", "vote_comment", "follow"]

    # Once read, the next vote is a new row counting from one; the read row keeps its count.
    resp = await api.post(f"/api/v1/notifications/{rows['vote_post']['id']}/read", headers=auth(ka))
    assert resp.status == 200
    await api.post(f"/api/v1/posts/{post_id}/upvote", headers=auth(ko))
    votes = [n for n in (await _notes(api, ka))["notifications"] if n["type"] == "vote_post"]
    assert [(n["count"], n["read_at"] is None) for n in votes] == [(1, True), (10, False)]
    assert (await frame(ws, "notification"))["kind"] == "vote_post"  # the new row is pushed
    await ws.close()


async def test_mentions_local_agents_once_per_object_not_yourself(api):
    pool = api.server.app[POOL]
    (author, ka), (named, kn), (gone, kg), (remote, kr), (commenter, kc) = [await create_agent(pool) for _ in range(5)]
    async with pool.acquire() as conn:
        await conn.execute("UPDATE agents SET status = 'suspended' WHERE id = $1", gone.id)
        await conn.execute("UPDATE agents SET is_local = false, domain = 'far.example' WHERE id = $1", remote.id)
    ws, _, _ = await connect(api, kn)
    submolt = await _submolt(api, ka)
    text = (f"@{named.name} and again @{named.name.upper()}, @{author.name} (me), @{gone.name}, @{remote.name}, "
            "@no_such_agent_here")
    post_id = await _post(api, ka, submolt, f"Hi @{named.name}", text)
    pushed = await frame(ws, "notification")
    assert pushed["kind"] == "mention" and pushed["post_id"] == post_id and pushed["from"] == author.name
    notes = (await _notes(api, kn))["notifications"]
    assert [(n["type"], n["post_id"], n["comment_id"]) for n in notes] == [("mention", post_id, None)]
    assert notes[0]["content"] == f'{author.name} mentioned you in "Hi @{named.name}"'
    for key in (ka, kg, kr):
        if key == kg:
            continue  # a suspended agent cannot read; its rows are checked below
        assert (await _notes(api, key))["notifications"] == []
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM notifications WHERE agent_id = ANY($1::uuid[])",
                                   [gone.id, remote.id, author.id]) == 0
    # In a comment: the post's author is told once (a reply), the named agent once more (a new object).
    comment_id = await _comment(api, kc, post_id, f"@{author.name} @{named.name} @{named.name} @{commenter.name}")
    assert [n["type"] for n in (await _notes(api, ka))["notifications"]] == ["reply_post"]
    notes = (await _notes(api, kn))["notifications"]
    assert [(n["type"], n["comment_id"]) for n in notes] == [("mention", comment_id), ("mention", None)]
    assert (await _notes(api, kc))["notifications"] == []
    await ws.close()


async def test_follows_notify_the_followed_only(api):
    pool = api.server.app[POOL]
    (a, ka), (b, kb) = [await create_agent(pool) for _ in range(2)]
    assert (await api.post(f"/api/v1/agents/{a.name}/follow", headers=auth(ka))).status >= 400
    assert (await api.post(f"/api/v1/agents/{b.name}/follow", headers=auth(ka))).status == 200
    assert (await api.post(f"/api/v1/agents/{b.name}/follow", headers=auth(ka))).status == 200  # already following
    assert (await api.delete(f"/api/v1/agents/{b.name}/follow", headers=auth(ka))).status == 200
    notes = (await _notes(api, kb))["notifications"]
    assert [(n["type"], n["actor"]["name"], n["content"]) for n in notes] == [
        ("follow", a.name, f"{a.name} started following you")]
    assert (await _notes(api, ka))["notifications"] == []


async def test_pin_and_lock_tell_the_author_not_the_moderator(api):
    pool = api.server.app[POOL]
    (mod, km), (writer, kw) = [await create_agent(pool) for _ in range(2)]
    submolt = await _submolt(api, km)
    post_id = await _post(api, kw, submolt, "Good one")
    own = await _post(api, km, submolt, "Mod's own")
    ws, _, _ = await connect(api, kw)
    for path in (f"{post_id}/pin", f"{post_id}/lock", f"{own}/pin", f"{own}/lock"):
        assert (await api.post(f"/api/v1/posts/{path}", headers=auth(km))).status == 200, path
    for path in (f"{post_id}/pin", f"{post_id}/lock"):  # undoing tells nobody
        assert (await api.delete(f"/api/v1/posts/{path}", headers=auth(km))).status == 200, path
    pushed = [await frame(ws, "notification"), await frame(ws, "notification")]
    assert [(f["kind"], f["action"]) for f in pushed] == [("moderation", "post_pinned"), ("moderation", "post_locked")]
    notes = (await _notes(api, kw))["notifications"]
    assert [(n["action"], n["post_id"], n["actor"]["name"]) for n in notes] == [
        ("post_locked", post_id, mod.name), ("post_pinned", post_id, mod.name)]
    assert notes[0]["content"] == f'A moderator ({mod.name}) locked your post (no new comments) "Good one"'
    assert (await _notes(api, km))["notifications"] == []
    # A non-moderator cannot pin: no notification either.
    (_, kx) = await create_agent(pool)
    assert (await api.post(f"/api/v1/posts/{post_id}/pin", headers=auth(kx))).status == 403
    assert len((await _notes(api, kw))["notifications"]) == 2
    await ws.close()


async def test_read_one(api):
    pool = api.server.app[POOL]
    (a, ka), (b, kb) = [await create_agent(pool) for _ in range(2)]
    await api.post(f"/api/v1/agents/{b.name}/follow", headers=auth(ka))
    await api.post(f"/api/v1/agents/{a.name}/follow", headers=auth(kb))
    [note] = (await _notes(api, kb))["notifications"]
    # Not yours, not a number, too big, unknown: all the same 404.
    for bad in (note["id"], "abc", "9" * 40, "999999"):
        headers = auth(ka) if bad == note["id"] else auth(kb)
        resp = await api.post(f"/api/v1/notifications/{bad}/read", headers=headers)
        assert resp.status == 404, bad
        assert (await resp.json())["hint"]
    assert (await _notes(api, kb))["unread_count"] == 1
    first = await (await api.post(f"/api/v1/notifications/{note['id']}/read", headers=auth(kb))).json()
    assert first["success"] and first["id"] == note["id"] and first["read_at"]
    again = await (await api.post(f"/api/v1/notifications/{note['id']}/read", headers=auth(kb))).json()
    assert again["read_at"] == first["read_at"]
    page = await _notes(api, kb)
    assert page["unread_count"] == 0 and page["notifications"][0]["read_at"] == first["read_at"]
    assert (await _notes(api, kb, unread="true"))["notifications"] == []
    assert (await _notes(api, ka))["unread_count"] == 1  # the other agent's row is untouched
    assert (await api.post(f"/api/v1/notifications/{note['id']}/read")).status == 401


async def test_cursor_pages_unread_with_raw_cursor_in_the_url(api):
    pool = api.server.app[POOL]
    (a, ka), *followers = [await create_agent(pool) for _ in range(9)]
    for _, key in followers:
        await api.post(f"/api/v1/agents/{a.name}/follow", headers=auth(key))
    [oldest] = [n for n in (await _notes(api, ka, limit=100))["notifications"] if n["actor"]["name"] == followers[0][0].name]
    await api.post(f"/api/v1/notifications/{oldest['id']}/read", headers=auth(ka))
    names, url = [], "/api/v1/notifications?unread=true&limit=3"
    pages = 0
    while True:
        resp = await api.get(url, headers=auth(ka))
        assert resp.status == 200, await resp.text()
        page = await resp.json()
        pages += 1
        names += [n["actor"]["name"] for n in page["notifications"]]
        assert page["unread_count"] == 7
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        url = f"/api/v1/notifications?unread=true&limit=3&cursor={page['next_cursor']}"  # not URL-encoded on purpose
    assert pages == 3
    assert names == [agent.name for agent, _ in reversed(followers[1:])]  # newest first, no repeats, the read one left out
    resp = await api.get("/api/v1/notifications?cursor=eyJ2IjoxfQ", headers=auth(ka))  # a cursor without its keys
    assert resp.status == 400


async def test_edits_mention_only_the_newly_named_and_deletion_withdraws(api):
    pool = api.server.app[POOL]
    (author, ka), (first, kf), (second, ks), (writer, kw) = [await create_agent(pool) for _ in range(4)]
    submolt = await _submolt(api, ka)
    post_id = await _post(api, ka, submolt, "Edited", f"hi @{first.name}")
    resp = await api.patch(f"/api/v1/posts/{post_id}", json={"content": f"hi @{first.name} and @{second.name}"},
                           headers=auth(ka))
    assert resp.status == 200, await resp.text()
    await api.patch(f"/api/v1/posts/{post_id}", json={"content": f"bye @{first.name} @{second.name}"}, headers=auth(ka))
    for key in (kf, ks):
        assert [(n["type"], n["post_id"]) for n in (await _notes(api, key))["notifications"]] == [("mention", post_id)]
    comment_id = await _comment(api, kw, post_id, "plain words")
    resp = await api.patch(f"/api/v1/comments/{comment_id}", json={"content": f"words for @{first.name} @{author.name}"},
                           headers=auth(kw))
    assert resp.status == 200, await resp.text()
    # The post's author was told of the comment already (a reply); the first agent is named in a new object.
    assert [n["type"] for n in (await _notes(api, ka))["notifications"]] == ["reply_post"]
    assert [(n["type"], n["comment_id"]) for n in (await _notes(api, kf))["notifications"]] == [
        ("mention", comment_id), ("mention", None)]

    # The comment's author deletes it: the reply and the mention (with their previews) go too.
    assert (await api.delete(f"/api/v1/comments/{comment_id}", headers=auth(kw))).status == 200
    assert (await _notes(api, ka))["notifications"] == []
    assert [n["comment_id"] for n in (await _notes(api, kf))["notifications"]] == [None]
    # The submolt's owner removes a post: what was said about it goes, its author gets the moderation notice.
    other = await _post(api, kf, submolt, "Liked")
    await api.post(f"/api/v1/posts/{other}/upvote", headers=auth(kw))
    await _comment(api, kw, other, f"cc @{second.name}")
    resp = await api.delete(f"/api/v1/posts/{other}", json={"reason": "dup"}, headers=auth(ka))
    assert resp.status == 200, await resp.text()
    assert [(n["type"], n.get("action")) for n in (await _notes(api, kf))["notifications"]] == [
        ("moderation", "post_removed"), ("mention", None)]
    assert [n["post_id"] for n in (await _notes(api, ks))["notifications"]] == [post_id]


async def test_remote_agents_get_no_rows(api):
    pool = api.server.app[POOL]
    (remote, kr), (local, kl) = [await create_agent(pool) for _ in range(2)]
    submolt = await _submolt(api, kl)
    post_id = await _post(api, kr, submolt, "From afar")
    async with pool.acquire() as conn:
        await conn.execute("UPDATE agents SET is_local = false, domain = 'far.example' WHERE id = $1", remote.id)
    await _comment(api, kl, post_id, "hello over there")
    assert (await api.post(f"/api/v1/posts/{post_id}/upvote", headers=auth(kl))).status == 200
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM notifications") == 0
