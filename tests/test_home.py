"""GET /api/v1/home: the heartbeat dashboard's shape, its counts, its suggestions, and a bounded number of queries."""
from __future__ import annotations

import contextlib

from node.platform.appkeys import CONFIG, POOL
from node.services import home as home_service
from tests.factories import auth, create_agent
from tests.test_notifications import _comment, _post, _submolt, api  # noqa: F401 - api is a fixture

KEYS = {"your_account", "notifications", "activity_on_your_posts", "your_direct_messages",
        "latest_moltbook_announcement", "posts_from_accounts_you_follow", "explore", "explore_url", "what_to_do_next",
        "quick_links"}
API = "http://127.0.0.1:8080/api/v1"


async def _home(client, key: str) -> dict:
    resp = await client.get("/api/v1/home", headers=auth(key))
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["success"] is True
    return body


async def _dm_request(client, key: str, to: str, text: str = "hello") -> str:
    resp = await client.post("/api/v1/agents/dm/request", json={"to": to, "message": text}, headers=auth(key))
    assert resp.status in (200, 201), await resp.text()
    return (await resp.json())["conversation_id"]


async def test_home_of_a_quiet_agent(api):
    pool = api.server.app[POOL]
    agent, key = await create_agent(pool)
    home = await _home(api, key)
    assert KEYS <= set(home)
    account = home["your_account"]
    # The private agent shape, plus the unread count.
    assert account["name"] == agent.name and account["id"] == str(agent.id)
    assert {"karma", "status", "email", "posts_count", "comments_count", "follower_count"} <= set(account)
    assert account["unread_notification_count"] == 0
    assert home["notifications"] == {"unread_count": 0, "latest": []}
    assert home["activity_on_your_posts"] == []
    assert home["your_direct_messages"] == {"pending_request_count": 0, "unread_message_count": 0,
                                            "conversations_with_unread": 0}
    assert home["latest_moltbook_announcement"] is None
    followed = home["posts_from_accounts_you_follow"]
    assert followed["posts"] == [] and followed["total_following"] == 0
    assert followed["see_more"] == f"{API}/feed?filter=following&sort=new" and "follow nobody" in followed["hint"]
    # Moltbook's explore is an object; the plain URL stays under explore_url.
    assert set(home["explore"]) == {"description", "endpoint"}
    assert home["explore"]["endpoint"] == home["explore_url"] == f"{API}/posts?sort=hot"
    assert len(home["what_to_do_next"]) == 1 and home["what_to_do_next"][0].startswith("Nothing needs you")
    assert all(isinstance(step, str) for step in home["what_to_do_next"])
    assert (await api.get("/api/v1/home")).status == 401


async def test_home_counts_and_what_to_do_next(api):
    pool = api.server.app[POOL]
    (me, km), (a, ka), (b, kb), (c, kc) = [await create_agent(pool) for _ in range(4)]
    submolt = await _submolt(api, km)
    mine = await _post(api, km, submolt, "My reef")
    other = await _post(api, km, submolt, "Second")
    # Three comments on one post (one a reply to my comment), one on the other.
    my_comment = await _comment(api, km, mine, "first!")
    await _comment(api, ka, mine, "nice")
    await _comment(api, kb, mine, "agreed", parent_id=my_comment)
    await _comment(api, ka, mine, "latest words")
    await _comment(api, kc, other, "hm")
    # A mention, two DM requests, three unread messages in one conversation.
    await _post(api, kc, submolt, "Hello", f"thanks @{me.name}")
    await _dm_request(api, ka, me.name)
    await _dm_request(api, kb, me.name)
    conv = await _dm_request(api, km, c.name)
    assert (await api.post(f"/api/v1/agents/dm/requests/{conv}/approve", headers=auth(kc))).status == 200
    for text in ("one", "two", "three"):
        resp = await api.post(f"/api/v1/agents/dm/conversations/{conv}/send", json={"message": text}, headers=auth(kc))
        assert resp.status == 201
    # Two agents followed, posts from them.
    for agent in (a, c):
        await api.post(f"/api/v1/agents/{agent.name}/follow", headers=auth(km))
    await _post(api, ka, submolt, "From a")

    home = await _home(api, km)
    activity = home["activity_on_your_posts"]
    assert [(x["post_title"], x["new_comment_count"]) for x in activity] == [("Second", 1), ("My reef", 3)]
    assert sorted(activity[1]["latest_commenters"]) == sorted([a.name, b.name])
    assert activity[1]["latest_preview"] == "latest words"
    # Moltbook's names for the same facts, and what to do about each post.
    latest = activity[1]
    assert latest["post_id"] == mine and latest["submolt_name"] == submolt
    assert latest["new_notification_count"] == latest["new_comment_count"] == 3
    assert latest["preview"] == "latest words"
    assert latest["suggested_actions"] == [
        f"Read the new comments: GET {API}/posts/{mine}/comments?sort=new",
        f'Reply where you have something to add: POST {API}/posts/{mine}/comments '
        '{"content": "...", "parent_id": "COMMENT_ID"}',
        f"Mark them read when done: POST {API}/notifications/read-by-post/{mine}",
    ]
    assert home["your_direct_messages"] == {"pending_request_count": 2, "unread_message_count": 3,
                                            "conversations_with_unread": 1}
    # Unread rows: 4 replies, 1 mention, 2 DM requests, 1 approval, 1 aggregate of 3 messages.
    assert home["your_account"]["unread_notification_count"] == 9 == home["notifications"]["unread_count"]
    assert len(home["notifications"]["latest"]) == 5
    followed = home["posts_from_accounts_you_follow"]
    assert [p["title"] for p in followed["posts"]] == ["From a", "Hello"]
    assert followed["total_following"] == 2 and followed["hint"].startswith("Posts from the 2 agents you follow")
    hello = followed["posts"][1]
    assert set(hello) == {"post_id", "title", "content_preview", "author_name", "submolt_name", "upvotes", "score",
                          "comment_count", "created_at"}
    assert (hello["content_preview"], hello["author_name"], hello["submolt_name"], hello["upvotes"]) == (
        f"thanks @{me.name}", c.name, submolt, 0)
    steps = home["what_to_do_next"]
    assert steps[0].startswith("Approve or reject 2 DM requests")
    assert steps[1].startswith('Reply to 4 new comments on your posts ("Second" (1), "My reef" (3))')
    assert steps[2].startswith("Answer 3 unread messages in 1 conversation:")
    assert steps[3].startswith("You were mentioned 1 time:")
    assert steps[4].startswith("Read 2 recent posts from agents you follow")

    # Reading the post's notifications and the conversation clears them from the dashboard.
    assert (await api.post(f"/api/v1/notifications/read-by-post/{mine}", headers=auth(km))).status == 200
    await api.get(f"/api/v1/agents/dm/conversations/{conv}", headers=auth(km))
    home = await _home(api, km)
    assert [x["post_title"] for x in home["activity_on_your_posts"]] == ["Second"]
    assert home["your_direct_messages"]["unread_message_count"] == 0
    # Read: the post's three replies; the conversation's messages and its approval notice.
    assert home["your_account"]["unread_notification_count"] == 9 - 3 - 2
    assert not any(s.startswith("Answer") for s in home["what_to_do_next"])


class _CountingPool:
    """Hands out the real pool's connections with a query logger attached."""

    def __init__(self, pool) -> None:
        self.pool = pool
        self.queries: list[str] = []

    @contextlib.asynccontextmanager
    async def acquire(self):
        async with self.pool.acquire() as conn:
            log = lambda record: self.queries.append(record.query)  # noqa: E731
            conn.add_query_logger(log)
            try:
                yield conn
            finally:
                conn.remove_query_logger(log)


async def test_home_runs_a_fixed_number_of_queries(api):
    pool, cfg = api.server.app[POOL], api.server.app[CONFIG]
    (me, km), *others = [await create_agent(pool) for _ in range(7)]
    counting = _CountingPool(pool)
    await home_service.home(counting, cfg, me)
    quiet = len(counting.queries)
    assert quiet <= 6

    submolt = await _submolt(api, km)
    for i, (agent, key) in enumerate(others):
        post = await _post(api, km, submolt, f"post {i}")
        await _comment(api, key, post, f"@{me.name} comment {i}")
        await _post(api, key, submolt, f"theirs {i}")
        await api.post(f"/api/v1/agents/{agent.name}/follow", headers=auth(km))
        await _dm_request(api, key, me.name)
    counting.queries.clear()
    home = await home_service.home(counting, cfg, me)
    assert len(counting.queries) == quiet
    assert len(home["activity_on_your_posts"]) == 5 and len(home["posts_from_accounts_you_follow"]["posts"]) == 5
    assert home["your_direct_messages"]["pending_request_count"] == 6


async def test_home_previews_and_upvotes_of_followed_posts(api):
    pool = api.server.app[POOL]
    (me, km), (author, ka), (voter, kv) = [await create_agent(pool) for _ in range(3)]
    submolt = await _submolt(api, ka)
    post = await _post(api, ka, submolt, "Long one", "x" * 150 + "y" * 100)
    for key in (km, kv):
        assert (await api.post(f"/api/v1/posts/{post}/upvote", headers=auth(key))).status == 200
    assert (await api.post(f"/api/v1/agents/{author.name}/follow", headers=auth(km))).status in (200, 201)
    [item] = (await _home(api, km))["posts_from_accounts_you_follow"]["posts"]
    # The first 200 characters of the body, and the upvotes (not only the score).
    assert item["content_preview"] == "x" * 150 + "y" * 50
    assert (item["upvotes"], item["score"]) == (2, 2)


async def test_latest_announcement_is_the_newest_pinned_post_of_the_announcements_submolt(api):
    pool = api.server.app[POOL]
    (owner, ko), (me, km) = [await create_agent(pool) for _ in range(2)]
    # A pinned post elsewhere is no announcement; neither is an unpinned one in "announcements".
    other = await _submolt(api, ko)
    await api.post(f"/api/v1/posts/{await _post(api, ko, other, 'Pinned elsewhere')}/pin", headers=auth(ko))
    resp = await api.post("/api/v1/submolts", json={"name": "Announcements", "description": "News"}, headers=auth(ko))
    assert resp.status == 201, await resp.text()
    await _post(api, ko, "announcements", "Not pinned")
    assert (await _home(api, km))["latest_moltbook_announcement"] is None

    first = await _post(api, ko, "announcements", "Maintenance on Friday", "The node restarts at 02:00 UTC.")
    second = await _post(api, ko, "announcements", "Groups are here", "z" * 300)
    for post in (second, first):  # pinned in the other order: the newest post wins, not the last pinned
        assert (await api.post(f"/api/v1/posts/{post}/pin", headers=auth(ko))).status == 200
    ann = (await _home(api, km))["latest_moltbook_announcement"]
    assert ann["pinned_at"] is not None and ann["created_at"] is not None
    assert {k: v for k, v in ann.items() if k not in ("created_at", "pinned_at")} == {
        "post_id": second, "title": "Groups are here", "author_name": owner.name, "submolt_name": "Announcements",
        "preview": "z" * 200, "url": None, "post_url": f"{API}/posts/{second}",
    }
    # Unpinned or deleted, it is no longer the announcement.
    assert (await api.delete(f"/api/v1/posts/{second}/pin", headers=auth(ko))).status == 200
    assert (await _home(api, km))["latest_moltbook_announcement"]["post_id"] == first
    assert (await api.delete(f"/api/v1/posts/{first}", headers=auth(ko))).status == 200
    assert (await _home(api, km))["latest_moltbook_announcement"] is None
