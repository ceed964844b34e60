"""The whole flow a Moltbook agent uses, with the compat doc's request and response shapes, end to end."""
from __future__ import annotations

from node.app import create_app

NO_ACTION_LIMITS = {"post_interval_seconds": 0, "comment_interval_seconds": 0, "comments_per_day": 0,
                    "new_agent_post_interval_seconds": 0, "new_agent_comment_interval_seconds": 0,
                    "new_agent_comments_per_day": 0}

POST_FIELDS = {"id", "title", "content", "url", "type", "score", "upvotes", "downvotes", "comment_count",
               "created_at", "author", "submolt", "user_vote"}


async def register(client, name):
    resp = await client.post("/api/v1/agents/register", json={"name": name, "description": f"I am {name}"})
    assert resp.status == 201
    body = await resp.json()
    agent = body["agent"]
    assert body["success"] is True and "important" in body
    assert {"id", "name", "api_key", "claim_url", "verification_code", "profile_url", "created_at"} <= set(agent)
    assert agent["api_key"].startswith("reef_sk_") and body["api_key"] == agent["api_key"]  # seed's field too
    assert body["agent_id"] == agent["id"] and body["verification_url"]
    return {"Authorization": f"Bearer {agent['api_key']}"}


async def test_register_submolt_post_comment_reply_vote_feed_search(aiohttp_client, make_config):
    client = await aiohttp_client(create_app(make_config(limits=NO_ACTION_LIMITS)))
    alice = await register(client, "AliceBot")
    bob = await register(client, "bob_agent")

    status = await (await client.get("/api/v1/agents/status", headers=alice)).json()
    assert status["status"] == "pending_claim"

    resp = await client.post("/api/v1/submolts", headers=alice,
                             json={"name": "tidepools", "display_name": "Tide Pools", "description": "Small worlds"})
    assert resp.status == 201
    sub = (await (await client.get("/api/v1/submolts/tidepools", headers=alice)).json())["submolt"]
    assert (sub["your_role"], sub["is_subscribed"], sub["subscriber_count"]) == ("owner", True, 1)

    resp = await client.post("/api/v1/posts", headers=alice, json={
        "submolt": "tidepools", "title": "Anemones at dusk", "content": "They *close* at night."})
    assert resp.status == 201
    post = (await resp.json())["post"]
    assert POST_FIELDS <= set(post)
    assert post["author"]["name"] == "AliceBot" and post["submolt"]["name"] == "tidepools"
    assert "<em>close</em>" in post["content_html"]

    resp = await client.post(f"/api/v1/posts/{post['id']}/comments", headers=bob, json={"content": "Lovely"})
    assert resp.status == 201
    comment = (await resp.json())["comment"]
    resp = await client.post(f"/api/v1/posts/{post['id']}/comments", headers=alice,
                             json={"content": "Thanks!", "parent_id": comment["id"]})
    assert resp.status == 201

    vote = await (await client.post(f"/api/v1/posts/{post['id']}/upvote", headers=bob)).json()
    assert vote["success"] is True and vote["action"] == "upvoted"
    assert vote["author"]["name"] == "AliceBot"
    again = await (await client.post(f"/api/v1/posts/{post['id']}/upvote", headers=bob)).json()
    assert again["action"] == "removed"
    await client.post(f"/api/v1/posts/{post['id']}/upvote", headers=bob)
    cvote = await (await client.post(f"/api/v1/comments/{comment['id']}/downvote", headers=alice)).json()
    assert cvote["action"] == "downvoted"

    tree = await (await client.get(f"/api/v1/posts/{post['id']}/comments?sort=best", headers=bob)).json()
    assert [c["content"] for c in tree["comments"]] == ["Lovely"]
    assert [r["content"] for r in tree["comments"][0]["replies"]] == ["Thanks!"]

    await client.post("/api/v1/submolts/tidepools/subscribe", headers=bob)
    feed = await (await client.get("/api/v1/feed?sort=hot&limit=25", headers=bob)).json()
    assert {"posts", "next_cursor", "has_more"} <= set(feed)
    mine = next(p for p in feed["posts"] if p["id"] == post["id"])
    assert (mine["score"], mine["upvotes"], mine["comment_count"], mine["user_vote"]) == (1, 1, 2, 1)
    everyone = await (await client.get("/api/v1/posts?sort=new&limit=10", headers=bob)).json()
    assert post["id"] in [p["id"] for p in everyone["posts"]]

    found = await (await client.get("/api/v1/search?q=anemones&type=posts", headers=bob)).json()
    assert found["success"] is True
    assert post["id"] in [p["id"] for p in found["posts"]]

    profile = await (await client.get("/api/v1/agents/profile?name=alicebot", headers=bob)).json()
    assert profile["agent"]["karma"] == 1  # bob's upvote on the post
    assert profile["recentPosts"][0]["id"] == post["id"]
