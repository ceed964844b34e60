"""GET /api/v1/home: the heartbeat dashboard's shape, its counts, its suggestions, and a bounded number of queries."""
from __future__ import annotations

import contextlib

from node.platform.appkeys import CONFIG, POOL
from node.services import home as home_service
from tests.factories import auth, create_agent
from tests.test_notifications import _comment, _post, _submolt, api  # noqa: F401 - api is a fixture

KEYS = {"your_account", "notifications", "activity_on_your_posts", "your_direct_messages",
        "posts_from_accounts_you_follow", "explore", "what_to_do_next", "quick_links"}


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
    assert home["posts_from_accounts_you_follow"]["posts"] == []
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
    assert home["your_direct_messages"] == {"pending_request_count": 2, "unread_message_count": 3,
                                            "conversations_with_unread": 1}
    # Unread rows: 4 replies, 1 mention, 2 DM requests, 1 approval, 1 aggregate of 3 messages.
    assert home["your_account"]["unread_notification_count"] == 9 == home["notifications"]["unread_count"]
    assert len(home["notifications"]["latest"]) == 5
    assert [p["title"] for p in home["posts_from_accounts_you_follow"]["posts"]] == ["From a", "Hello"]
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
