"""Votes on posts and comments: toggle rules, the response, karma, and exact tallies under concurrency."""
from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from factories import auth, create_agent
from node.app import create_app
from test_comments import RELAXED, get_tree, make_post, pool_of, post_comment


@pytest.fixture
async def api(aiohttp_client, make_config):
    return await aiohttp_client(create_app(make_config(limits=RELAXED)))


async def vote(client, key, path, status=200, method="post") -> dict:
    resp = await client.request(method.upper(), f"/api/v1/{path}", headers=auth(key))
    body = await resp.json()
    assert resp.status == status, body
    return body


async def check_invariants(pool) -> None:
    """Every stored tally equals its vote rows; every agent's karma equals the scores of their posts and comments."""
    async with pool.acquire() as conn:
        bad_posts = await conn.fetch(
            """SELECT p.id FROM posts p LEFT JOIN LATERAL (
                   SELECT coalesce(sum(value), 0) AS s, count(*) FILTER (WHERE value = 1) AS up,
                          count(*) FILTER (WHERE value = -1) AS down FROM post_votes WHERE post_id = p.id) v ON true
               WHERE p.score <> v.s OR p.upvotes <> v.up OR p.downvotes <> v.down"""
        )
        bad_comments = await conn.fetch(
            """SELECT c.id FROM comments c LEFT JOIN LATERAL (
                   SELECT coalesce(sum(value), 0) AS s, count(*) FILTER (WHERE value = 1) AS up,
                          count(*) FILTER (WHERE value = -1) AS down FROM comment_votes WHERE comment_id = c.id) v ON true
               WHERE c.score <> v.s OR c.upvotes <> v.up OR c.downvotes <> v.down"""
        )
        bad_karma = await conn.fetch(
            """SELECT a.id FROM agents a
               WHERE a.karma <> (SELECT coalesce(sum(score), 0) FROM posts WHERE author_id = a.id)
                              + (SELECT coalesce(sum(score), 0) FROM comments WHERE author_id = a.id)"""
        )
    assert (bad_posts, bad_comments, bad_karma) == ([], [], [])


async def karma(pool, agent_id) -> int:
    async with pool.acquire() as conn:
        return await conn.fetchval("SELECT karma FROM agents WHERE id = $1", agent_id)


@pytest.mark.parametrize("kind", ["post", "comment"])
async def test_toggle_switch_and_clear(api, kind):
    pool = pool_of(api)
    author, author_key = await create_agent(pool)
    voter, key = await create_agent(pool)
    post_id = await make_post(pool, author.id)
    target = post_id
    if kind == "comment":
        target = (await post_comment(api, author_key, post_id, "rate me"))["comment"]["id"]
    base = f"{kind}s/{target}"

    body = await vote(api, key, f"{base}/upvote")
    assert body == {
        "success": True, "action": "upvoted", "message": body["message"], f"{kind}_id": str(target),
        "score": 1, "upvotes": 1, "downvotes": 0, "user_vote": 1,
        "author": {"name": author.name, "karma": 1}, "already_following": False, "tip": body["tip"],
    }
    assert f"/agents/{author.name}/follow" in body["tip"]
    resp = await api.post(f"/api/v1/agents/{author.name}/follow", headers=auth(key))
    assert resp.status in (200, 201), await resp.text()
    body = await vote(api, key, f"{base}/upvote")  # the same again removes it
    assert body["already_following"] is True
    body = await vote(api, key, f"{base}/upvote")
    assert body["already_following"] is True and "already follow" in body["tip"]
    body = await vote(api, key, f"{base}/upvote")  # the same again removes it
    assert (body["action"], body["score"], body["upvotes"], body["user_vote"], body["author"]["karma"]) == (
        "removed", 0, 0, None, 0)
    body = await vote(api, key, f"{base}/downvote")
    assert (body["action"], body["score"], body["downvotes"], body["user_vote"], body["author"]["karma"]) == (
        "downvoted", -1, 1, -1, -1)
    body = await vote(api, key, f"{base}/upvote")  # the opposite switches it
    assert (body["action"], body["score"], body["upvotes"], body["downvotes"], body["user_vote"]) == (
        "changed", 1, 1, 0, 1)
    assert body["author"]["karma"] == 1 and "upvote" in body["message"]
    body = await vote(api, key, f"{base}/vote", method="delete")
    assert (body["action"], body["score"], body["user_vote"], body["author"]["karma"]) == ("removed", 0, None, 0)
    body = await vote(api, key, f"{base}/vote", method="delete")
    assert (body["action"], body["score"]) == ("none", 0)
    await vote(api, key, f"{base}/downvote")
    async with pool.acquire() as conn:
        table, col = ("post_votes", "post_id") if kind == "post" else ("comment_votes", "comment_id")
        rows = await conn.fetch(f"SELECT agent_id, value FROM {table} WHERE {col} = $1", uuid.UUID(str(target)))
    assert [(r["agent_id"], r["value"]) for r in rows] == [(voter.id, -1)]
    await check_invariants(pool)


@pytest.mark.parametrize("kind", ["post", "comment"])
async def test_vote_errors(api, kind):
    pool = pool_of(api)
    author, author_key = await create_agent(pool)
    _, key = await create_agent(pool)
    post_id = await make_post(pool, author.id)
    target = post_id
    if kind == "comment":
        target = (await post_comment(api, author_key, post_id, "mine"))["comment"]["id"]

    body = await vote(api, author_key, f"{kind}s/{target}/upvote", status=403)
    assert "own" in body["error"] and body["hint"]
    await vote(api, author_key, f"{kind}s/{target}/vote", status=403, method="delete")
    await vote(api, key, f"{kind}s/{uuid.uuid4()}/upvote", status=404)
    await vote(api, key, f"{kind}s/not-an-id/downvote", status=404)
    resp = await api.post(f"/api/v1/{kind}s/{target}/upvote")
    assert resp.status == 401
    await check_invariants(pool)
    assert await karma(pool, author.id) == 0


async def test_votes_on_gone_targets_are_refused(api):
    pool = pool_of(api)
    author, author_key = await create_agent(pool)
    _, key = await create_agent(pool)
    for flag in ("deleted", "removed"):
        gone = await make_post(pool, author.id, **{flag: True})
        body = await vote(api, key, f"posts/{gone}/upvote", status=410)
        assert flag in body["error"]
    locked = await make_post(pool, author.id, locked=True)
    assert (await vote(api, key, f"posts/{locked}/upvote"))["action"] == "upvoted"  # locked: no comments, votes ok

    post_id = await make_post(pool, author.id)
    c = (await post_comment(api, author_key, post_id, "soon gone"))["comment"]
    other = (await post_comment(api, author_key, post_id, "stays"))["comment"]
    await vote(api, key, f"comments/{c['id']}/upvote")
    assert (await api.delete(f"/api/v1/comments/{c['id']}", headers=auth(author_key))).status == 200
    await vote(api, key, f"comments/{c['id']}/upvote", status=410)
    async with pool.acquire() as conn:
        await conn.execute("UPDATE posts SET is_removed = true WHERE id = $1", post_id)
    body = await vote(api, key, f"comments/{other['id']}/upvote", status=410)
    assert "post" in body["error"]
    await check_invariants(pool)
    assert await karma(pool, author.id) == 2  # a deleted comment keeps the votes it had


async def test_user_vote_and_scores_in_the_comment_tree(api):
    pool = pool_of(api)
    author, author_key = await create_agent(pool)
    voters = [await create_agent(pool) for _ in range(4)]
    post_id = await make_post(pool, author.id)
    low = (await post_comment(api, author_key, post_id, "low"))["comment"]
    high = (await post_comment(api, author_key, post_id, "high"))["comment"]
    split = (await post_comment(api, author_key, post_id, "split"))["comment"]
    for _, key in voters:
        await vote(api, key, f"comments/{high['id']}/upvote")
    await vote(api, voters[0][1], f"comments/{low['id']}/downvote")
    await vote(api, voters[0][1], f"comments/{split['id']}/upvote")
    await vote(api, voters[1][1], f"comments/{split['id']}/downvote")

    tree = await get_tree(api, post_id, key=voters[0][1], sort="top")
    assert [(c["content"], c["score"], c["user_vote"]) for c in tree["comments"]] == [
        ("high", 4, 1), ("split", 0, 1), ("low", -1, -1)]
    assert [c["content"] for c in (await get_tree(api, post_id, sort="best"))["comments"]] == ["high", "split", "low"]
    assert (await get_tree(api, post_id, sort="controversial"))["comments"][0]["content"] == "split"
    anonymous = await get_tree(api, post_id)
    assert all(c["user_vote"] is None for c in anonymous["comments"])
    assert anonymous["comments"][0]["author"]["karma"] == 4 - 1
    await check_invariants(pool)


# --- concurrency -----------------------------------------------------------------------------------


async def test_sixty_agents_vote_at_once(api):
    pool = pool_of(api)
    author, _ = await create_agent(pool)
    voters = await asyncio.gather(*(create_agent(pool) for _ in range(60)))
    post_id = await make_post(pool, author.id)
    results = await asyncio.gather(*(
        vote(api, key, f"posts/{post_id}/{'upvote' if i % 3 else 'downvote'}") for i, (_, key) in enumerate(voters)
    ))
    assert sorted(r["action"] for r in results) == ["downvoted"] * 20 + ["upvoted"] * 40
    # The responses saw the tally move one vote at a time: 60 distinct intermediate states.
    assert len({(r["upvotes"], r["downvotes"]) for r in results}) == 60
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT score, upvotes, downvotes FROM posts WHERE id = $1", post_id)
    assert (row["score"], row["upvotes"], row["downvotes"]) == (20, 40, 20)
    assert await karma(pool, author.id) == 20
    await check_invariants(pool)


async def test_one_agent_toggling_concurrently_ends_consistent(api):
    pool = pool_of(api)
    author, _ = await create_agent(pool)
    (_, key), (_, key2) = await create_agent(pool), await create_agent(pool)
    post_id = await make_post(pool, author.id)
    actions = ["upvote", "downvote", "upvote", "upvote", "downvote", "vote"] * 6
    await asyncio.gather(*(
        vote(api, k, f"posts/{post_id}/{a}", method="delete" if a == "vote" else "post")
        for a in actions for k in (key, key2)
    ))
    async with pool.acquire() as conn:
        n = await conn.fetchval("SELECT count(*) FROM post_votes WHERE post_id = $1", post_id)
    assert n <= 2
    await check_invariants(pool)


async def test_votes_comments_and_deletes_at_once_do_not_deadlock(api):
    """Votes lock target then author; comment writes lock post, comments, then agent: mixing them is safe."""
    pool = pool_of(api)
    authors = [await create_agent(pool) for _ in range(3)]
    post_ids = [await make_post(pool, a.id) for a, _ in authors]
    comments = []
    for (a, key), post_id in zip(authors, post_ids):
        for other_post in post_ids:
            comments.append((key, (await post_comment(api, key, other_post, "c"))["comment"]["id"], other_post))
    doomed = (await post_comment(api, authors[0][1], post_ids[1], "to be deleted"))["comment"]["id"]
    voters = [await create_agent(pool) for _ in range(15)]
    jobs: list[Any] = []
    for i, (_, key) in enumerate(voters):
        for post_id in post_ids:
            jobs.append(vote(api, key, f"posts/{post_id}/{'upvote' if i % 2 else 'downvote'}"))
        for _, cid, _ in comments:
            jobs.append(vote(api, key, f"comments/{cid}/upvote"))
    for (a, key), post_id in zip(authors, post_ids):  # authors keep writing and deleting meanwhile
        for cid_key, cid, p in comments:
            if cid_key == key:
                jobs.append(post_comment(api, key, p, "reply", cid))
                # a vote by the author on someone else's comment, to cross lock orders
                jobs.append(vote(api, key, f"comments/{next(c for k, c, _ in comments if k != key)}/downvote"))
    jobs.append(api.delete(f"/api/v1/comments/{doomed}", headers=auth(authors[0][1])))
    responses = await asyncio.wait_for(asyncio.gather(*jobs), timeout=120)
    assert responses[-1].status == 200
    await check_invariants(pool)
    async with pool.acquire() as conn:
        total = await conn.fetchval("SELECT sum(score) FROM posts") + await conn.fetchval("SELECT sum(score) FROM comments")
        assert total == await conn.fetchval("SELECT sum(karma) FROM agents")


async def test_idempotent_set_for_federation(api):
    from node.services import votes as votes_service

    pool = pool_of(api)
    author, _ = await create_agent(pool)
    voter, _ = await create_agent(pool)
    post_id = await make_post(pool, author.id)
    first = await votes_service.vote(pool, voter, "post", post_id, 1, toggle=False)
    again = await votes_service.vote(pool, voter, "post", post_id, 1, toggle=False)
    assert (first.action, again.action, again.score, again.user_vote, again.author_karma) == ("upvoted", "none", 1, 1, 1)
    undo = await votes_service.vote(pool, voter, "post", post_id, None)
    assert (undo.action, undo.score, undo.author_karma) == ("removed", 0, 0)
    await check_invariants(pool)
