"""Feeds: order of each sort, time windows, keyset paging that survives new posts and votes, cursors,
limits and offsets, submolt and personal feeds, and the rising-rank refresh."""
from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import uuid
from typing import Any, Awaitable, Callable

import asyncpg
import pytest

from node.platform.appkeys import POOL
from node.edge.cursors import decode_cursor, encode_cursor
from node.services import feeds as feeds_service
from tests.factories import auth, create_agent



# --- helpers: rows by direct SQL, so that feeds are tested on known scores and times -------------

async def make_submolt(pool: asyncpg.Pool, name: str) -> uuid.UUID:
    return await pool.fetchval("INSERT INTO submolts (name, display_name) VALUES ($1, $1) RETURNING id", name)


async def make_post(
    pool: asyncpg.Pool,
    submolt_id: uuid.UUID,
    author_id: uuid.UUID,
    *,
    score: int = 0,
    comments: int = 0,
    age: dt.timedelta = dt.timedelta(0),
    created_at: dt.datetime | None = None,
    pinned: bool = False,
    deleted: bool = False,
    removed: bool = False,
    title: str = "a post",
) -> str:
    post_id = await pool.fetchval(
        """INSERT INTO posts (submolt_id, author_id, title, score, upvotes, comment_count, created_at,
                              is_pinned, pinned_at, is_deleted, is_removed)
           VALUES ($1, $2, $3, $4, greatest($4, 0), $5, $6, $7, CASE WHEN $7 THEN now() END, $8, $9)
           RETURNING id""",
        submolt_id, author_id, title, score, comments, created_at or (dt.datetime.now(dt.timezone.utc) - age),
        pinned, deleted, removed,
    )
    return str(post_id)


async def set_score(pool: asyncpg.Pool, post_id: str, score: int) -> None:
    """What a vote does to the post row (the 0003 trigger recomputes the ranks)."""
    await pool.execute("UPDATE posts SET score = $2 WHERE id = $1", uuid.UUID(post_id), score)


async def world(client) -> tuple[asyncpg.Pool, uuid.UUID, Any]:
    pool = client.server.app[POOL]
    agent, _ = await create_agent(pool, "author")
    return pool, await make_submolt(pool, "reef"), agent


async def get(client, url: str, status: int = 200, **kw: Any) -> dict[str, Any]:
    resp = await client.get(url, **kw)
    body = await resp.json()
    assert resp.status == status, body
    return body


async def ids(client, url: str, **kw: Any) -> list[str]:
    body = await get(client, url, **kw)
    assert body["success"] is True
    return [p["id"] for p in body["posts"]]


async def walk(
    client,
    url: str,
    limit: int,
    between: Callable[[list[str]], Awaitable[None]] | None = None,
    pinned: int = 0,
    **kw: Any,
) -> list[str]:
    """Every id of a feed, page by page through next_cursor; `between` runs after each page.
    pinned: how many pinned posts head the first page on top of `limit`."""
    seen: list[str] = []
    cursor = None
    for _ in range(100):
        sep = "&" if "?" in url else "?"
        page_url = f"{url}{sep}limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        body = await get(client, page_url, **kw)
        size = limit + (pinned if cursor is None else 0)
        assert len(body["posts"]) <= size
        seen += [p["id"] for p in body["posts"]]
        if not body["has_more"]:
            assert body["next_cursor"] is None
            return seen
        assert len(body["posts"]) == size
        cursor = body["next_cursor"]
        if between is not None:
            await between(seen)
    raise AssertionError("feed did not end")


# --- order of each sort ------------------------------------------------------------------------

async def test_new_orders_by_time_then_id(client):
    pool, sub, a = await world(client)
    old = await make_post(pool, sub, a.id, age=dt.timedelta(hours=5), score=100)
    same_time = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    tie = sorted([await make_post(pool, sub, a.id, created_at=same_time) for _ in range(2)], reverse=True)
    newest = await make_post(pool, sub, a.id, age=dt.timedelta(minutes=1))
    assert await ids(client, "/api/v1/posts?sort=new") == [newest, *tie, old]


async def test_hot_orders_by_score_and_age(client):
    pool, sub, a = await world(client)
    # hot = log10(score) + age_seconds / 45000: 10 hours weigh 0.8, so score 100 at 10 h beats score 0 now.
    strong_old = await make_post(pool, sub, a.id, score=100, age=dt.timedelta(hours=10))
    fresh = await make_post(pool, sub, a.id, score=0)
    weak_recent = await make_post(pool, sub, a.id, score=1, age=dt.timedelta(hours=1))
    negative = await make_post(pool, sub, a.id, score=-10)
    assert await ids(client, "/api/v1/posts") == [strong_old, fresh, weak_recent, negative]  # hot is the default
    assert await ids(client, "/api/v1/posts?sort=hot") == [strong_old, fresh, weak_recent, negative]


async def test_hot_ties_break_by_id_and_page_exactly(client):
    pool, sub, a = await world(client)
    same_time = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2)
    tied = sorted([await make_post(pool, sub, a.id, score=7, created_at=same_time) for _ in range(5)], reverse=True)
    assert len(set(await pool.fetchval("SELECT array_agg(DISTINCT hot_rank) FROM posts"))) == 1
    assert await walk(client, "/api/v1/posts?sort=hot", 2) == tied


async def test_a_vote_through_the_api_moves_a_post_in_hot(client):
    pool, sub, a = await world(client)
    _, voter_key = await create_agent(pool, "voter")
    # An hour of age weighs 0.08 in hot; score 1 -> 2 adds log10(2) = 0.3, so this one vote decides.
    older = await make_post(pool, sub, a.id, score=1, age=dt.timedelta(hours=1))
    newer = await make_post(pool, sub, a.id, score=0)
    assert await ids(client, "/api/v1/posts?sort=hot") == [newer, older]
    resp = await client.post(f"/api/v1/posts/{older}/upvote", headers=auth(voter_key))
    assert resp.status == 200, await resp.json()
    assert await ids(client, "/api/v1/posts?sort=hot") == [older, newer]
    assert (await get(client, "/api/v1/posts?sort=top"))["posts"][0]["score"] == 2


async def test_top_orders_by_score_within_each_window(client):
    pool, sub, a = await world(client)
    ages = {"hour": dt.timedelta(minutes=30), "day": dt.timedelta(hours=5), "week": dt.timedelta(days=3),
            "month": dt.timedelta(days=20), "year": dt.timedelta(days=200), "all": dt.timedelta(days=800)}
    # Older posts score higher, so each wider window puts its new post first.
    by_window = {t: await make_post(pool, sub, a.id, age=age, score=i + 1) for i, (t, age) in enumerate(ages.items())}
    expected: list[str] = []
    for t in ages:
        expected.insert(0, by_window[t])
        assert await ids(client, f"/api/v1/posts?sort=top&t={t}") == expected, t
    assert await ids(client, "/api/v1/posts?sort=top") == expected  # t defaults to all


async def test_rising_lists_recent_momentum_first_then_fresh_posts_and_never_old_ones(client):
    pool, sub, a = await world(client)
    # rank = (score + comments / 2) / (age_hours + 2) ** 1.5
    fast = await make_post(pool, sub, a.id, score=10, age=dt.timedelta(hours=1))            # 1.92
    slow = await make_post(pool, sub, a.id, score=10, age=dt.timedelta(hours=10))           # 0.24
    chatty = await make_post(pool, sub, a.id, score=0, comments=20, age=dt.timedelta(hours=20))  # 0.097
    late = await make_post(pool, sub, a.id, score=50, age=dt.timedelta(hours=47))           # 0.146
    await make_post(pool, sub, a.id, score=1000, age=dt.timedelta(hours=49))                # too old
    fresh_new = await make_post(pool, sub, a.id, score=0, age=dt.timedelta(minutes=5))      # rank 0
    fresh_old = await make_post(pool, sub, a.id, score=-3, age=dt.timedelta(hours=2))       # rank 0
    expected = [fast, slow, late, chatty, fresh_new, fresh_old]
    assert await ids(client, "/api/v1/posts?sort=rising") == expected
    assert await walk(client, "/api/v1/posts?sort=rising", 2) == expected  # paging crosses into the rank-0 part


async def test_deleted_and_removed_posts_are_not_listed(client):
    pool, sub, a = await world(client)
    shown = await make_post(pool, sub, a.id, score=5)
    await make_post(pool, sub, a.id, score=50, deleted=True)
    await make_post(pool, sub, a.id, score=50, removed=True)
    for sort in ("hot", "new", "top", "rising"):
        assert await ids(client, f"/api/v1/posts?sort={sort}") == [shown], sort


async def test_posts_carry_the_full_post_object_and_the_callers_vote(client):
    pool, sub, a = await world(client)
    viewer, key = await create_agent(pool, "viewer")
    post = await make_post(pool, sub, a.id, score=3, title="hello reef")
    await pool.execute("INSERT INTO post_votes (post_id, agent_id, value) VALUES ($1, $2, 1)", uuid.UUID(post), viewer.id)
    body = await get(client, "/api/v1/posts", headers=auth(key))
    assert set(body) == {"success", "posts", "next_cursor", "has_more"}
    (item,) = body["posts"]
    assert item["title"] == "hello reef" and item["score"] == 3
    assert item["author"]["name"] == "author" and item["submolt"]["name"] == "reef"
    assert item["user_vote"] == 1
    assert (await get(client, "/api/v1/posts"))["posts"][0]["user_vote"] is None


# --- paging ------------------------------------------------------------------------------------

@pytest.mark.parametrize("sort", ["hot", "new", "top", "rising"])
async def test_cursor_pages_cover_every_post_once_in_order(client, sort):
    pool, sub, a = await world(client)
    for i in range(60):
        # Scores repeat (ties broken by id); ages stay under 48 h so rising sees every post.
        await make_post(pool, sub, a.id, score=i % 9 - 2, age=dt.timedelta(minutes=7 * i + 1))
    whole = await ids(client, f"/api/v1/posts?sort={sort}&limit=100")
    assert len(whole) == 60
    paged = await walk(client, f"/api/v1/posts?sort={sort}", 7)
    assert paged == whole


@pytest.mark.parametrize("sort", ["new", "hot"])
async def test_pages_stay_exact_while_posts_arrive_and_votes_happen(client, sort):
    pool, sub, a = await world(client)
    original = []
    for i in range(60):
        # Ages of 1-6 days with scores < 50: every new post (score 0, now) ranks above all of these in hot.
        original.append(await make_post(pool, sub, a.id, score=(i * 7) % 50, age=dt.timedelta(hours=24 + 2 * i)))
    before = await pool.fetch("SELECT id, hot_rank FROM posts")
    arrivals: list[str] = []

    async def meanwhile(seen: list[str]) -> None:
        arrivals.append(await make_post(pool, sub, a.id))
        arrivals.append(await make_post(pool, sub, a.id, score=5))
        # Votes that keep a post on its side of the page boundary: seen posts go up, unseen ones down.
        await set_score(pool, seen[len(seen) // 2], 60)
        unseen = [p for p in original if p not in seen]
        if unseen:
            await set_score(pool, unseen[-1], -5)

    paged = await walk(client, f"/api/v1/posts?sort={sort}", 7, between=meanwhile)
    assert sorted(paged) == sorted(original)  # every post exactly once, none of the arrivals
    assert len(arrivals) == 16  # 2 after each of the 8 full pages
    after = dict(await pool.fetch("SELECT id, hot_rank FROM posts"))
    assert sum(after[r["id"]] != r["hot_rank"] for r in before) >= 8  # the votes did move hot ranks


async def test_offset_paging_for_old_clients(client):
    pool, sub, a = await world(client)
    for i in range(12):
        await make_post(pool, sub, a.id, age=dt.timedelta(minutes=i))
    whole = await ids(client, "/api/v1/posts?sort=new&limit=100")
    body = await get(client, "/api/v1/posts?sort=new&limit=5&offset=5")
    assert [p["id"] for p in body["posts"]] == whole[5:10]
    assert body["has_more"] is True
    # next_cursor from an offset page continues where it ended; offset is ignored next to a cursor.
    rest = await ids(client, f"/api/v1/posts?sort=new&limit=5&offset=3&cursor={body['next_cursor']}")
    assert rest == whole[10:]
    assert (await get(client, "/api/v1/posts?offset=-1", 400))["hint"]
    assert (await get(client, "/api/v1/posts?offset=20000", 400))["hint"]


async def test_limit_is_clamped_to_1_through_100(client):
    pool, sub, a = await world(client)
    await pool.execute(
        """INSERT INTO posts (submolt_id, author_id, title, created_at)
           SELECT $1, $2, 'bulk', now() - g * interval '1 second' FROM generate_series(1, 105) g""",
        sub, a.id,
    )
    assert len(await ids(client, "/api/v1/posts?limit=1000")) == 100
    assert len(await ids(client, "/api/v1/posts?limit=0")) == 1
    assert len(await ids(client, "/api/v1/posts")) == 25
    body = await get(client, "/api/v1/posts?limit=many", 400)
    assert body["success"] is False and "limit" in body["error"]


async def test_malformed_cursors_are_400_with_a_hint(client):
    pool, sub, a = await world(client)
    for i in range(3):
        await make_post(pool, sub, a.id, age=dt.timedelta(minutes=i))
    new_cursor = (await get(client, "/api/v1/posts?sort=new&limit=1"))["next_cursor"]
    top_day = (await get(client, "/api/v1/posts?sort=top&t=day&limit=1"))["next_cursor"]
    b64 = lambda raw: base64.urlsafe_b64encode(raw).decode().rstrip("=")  # noqa: E731
    bad = [
        "not a cursor!",
        b64(b"{not json"),
        b64(b"[1, 2]"),
        b64(json.dumps({"v": 99, "s": "new"}).encode()),
        encode_cursor({"s": "new", "k": "yesterday", "id": str(uuid.uuid4())}),
        encode_cursor({"s": "hot", "k": "1.5", "id": str(uuid.uuid4())}),
        encode_cursor({"s": "hot", "k": 1.5, "id": "not-a-uuid"}),
        "x" * 2000,
    ]
    for cursor in bad:
        body = await get(client, f"/api/v1/posts?sort=hot&cursor={cursor}", 400)
        assert "next_cursor" in body["hint"], cursor
    # A cursor only fits the sort (and top window) that made it.
    assert "next_cursor" in (await get(client, f"/api/v1/posts?sort=hot&cursor={new_cursor}", 400))["hint"]
    assert (await get(client, f"/api/v1/posts?sort=top&t=week&cursor={top_day}", 400))["success"] is False
    assert len(await ids(client, f"/api/v1/posts?sort=top&t=day&cursor={top_day}")) == 2


def test_cursor_round_trip_keeps_types_exact():
    at = dt.datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=dt.timezone.utc)
    rank = 40123.123456789012
    data = decode_cursor(encode_cursor({"k": rank, "at": at, "id": uuid.UUID(int=7)}))
    assert data == {"k": rank, "at": at.isoformat(), "id": str(uuid.UUID(int=7))}
    assert "=" not in encode_cursor({"pad": "x"})


async def test_bad_sort_and_window_are_400(client):
    assert "hot" in (await get(client, "/api/v1/posts?sort=best", 400))["hint"]
    assert "week" in (await get(client, "/api/v1/posts?sort=top&t=decade", 400))["hint"]


# --- submolt feeds -----------------------------------------------------------------------------

async def test_submolt_feed_lists_its_posts_with_pinned_first_once(client):
    pool, sub, a = await world(client)
    other = await make_submolt(pool, "elsewhere")
    await make_post(pool, other, a.id, score=99)
    regular = [await make_post(pool, sub, a.id, age=dt.timedelta(minutes=i)) for i in range(6)]
    pinned = await make_post(pool, sub, a.id, age=dt.timedelta(days=30), pinned=True)
    for url in ("/api/v1/submolts/reef/feed?sort=new", "/api/v1/posts?sort=new&submolt=REEF"):
        first = await get(client, url + "&limit=4")
        assert [p["id"] for p in first["posts"]] == [pinned, *regular[:4]]  # pinned in addition to limit
        assert first["posts"][0]["is_pinned"] is True
        assert await walk(client, url, 4, pinned=1) == [pinned, *regular]
        assert await ids(client, url + "&offset=2&limit=2") == regular[2:4]  # only the first page has pins
    assert len(await ids(client, "/api/v1/posts?sort=new")) == 8  # the node feed lists the pin in place
    assert (await get(client, "/api/v1/submolts/nowhere/feed", 404))["hint"]
    assert (await get(client, "/api/v1/posts?submolt=nowhere", 404))["success"] is False


# --- the personal feed -------------------------------------------------------------------------

async def test_personal_feed_is_subscriptions_plus_followed_agents(client):
    pool = client.server.app[POOL]
    me, key = await create_agent(pool, "reader")
    friend, _ = await create_agent(pool, "friend")
    stranger, _ = await create_agent(pool, "stranger")
    mine = await make_submolt(pool, "mine")
    theirs = await make_submolt(pool, "theirs")
    await pool.execute("INSERT INTO subscriptions (agent_id, submolt_id) VALUES ($1, $2)", me.id, mine)
    resp = await client.post("/api/v1/agents/friend/follow", headers=auth(key))
    assert resp.status == 200

    in_subscribed = await make_post(pool, mine, stranger.id, age=dt.timedelta(minutes=1))
    by_friend = await make_post(pool, theirs, friend.id, age=dt.timedelta(minutes=2))
    both = await make_post(pool, mine, friend.id, age=dt.timedelta(minutes=3))
    await make_post(pool, theirs, stranger.id, age=dt.timedelta(minutes=4))      # neither
    await make_post(pool, theirs, me.id, age=dt.timedelta(minutes=5))            # my own, elsewhere
    await make_post(pool, mine, friend.id, deleted=True)

    assert await ids(client, "/api/v1/feed?sort=new", headers=auth(key)) == [in_subscribed, by_friend, both]
    assert await ids(client, "/api/v1/feed?sort=new&filter=following", headers=auth(key)) == [by_friend, both]
    assert await walk(client, "/api/v1/feed?sort=new", 1, headers=auth(key)) == [in_subscribed, by_friend, both]
    assert await ids(client, "/api/v1/feed?sort=top&t=all", headers=auth(key))  # every sort serves it
    assert (await get(client, "/api/v1/feed?filter=friends", 400, headers=auth(key)))["hint"]


async def test_personal_feed_needs_an_api_key(client):
    body = await get(client, "/api/v1/feed", 401)
    assert body["success"] is False and "Authorization" in body["hint"]


# --- rising refresh ----------------------------------------------------------------------------

@pytest.fixture
async def pool(database_url: str):
    """A pool on a migrated test database with no app, hence no background refresh running."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=3)
    yield pool
    await pool.close()


async def test_refresh_rising_ranks_follows_the_clock(pool):
    now = dt.datetime.now(dt.timezone.utc)
    agent, _ = await create_agent(pool, "clock")
    sub = await make_submolt(pool, "clockwork")
    young = uuid.UUID(await make_post(pool, sub, agent.id, score=10, age=dt.timedelta(hours=1)))
    older = uuid.UUID(await make_post(pool, sub, agent.id, score=10, age=dt.timedelta(hours=40)))
    ancient = uuid.UUID(await make_post(pool, sub, agent.id, score=10, age=dt.timedelta(days=9)))
    # A stale rank on an old post, as if the node had been down when the post crossed 48 hours.
    await pool.execute("UPDATE posts SET rising_rank = 3 WHERE id = $1", ancient)

    async def rank(post_id: uuid.UUID) -> float:
        return await pool.fetchval("SELECT rising_rank FROM posts WHERE id = $1", post_id)

    start = await rank(young)
    assert start == pytest.approx(10 / 3**1.5, rel=1e-3)
    assert await feeds_service.refresh_rising_ranks(pool, at=now) >= 1  # at least the stale one
    assert await rank(ancient) == 0
    assert await feeds_service.refresh_rising_ranks(pool, at=now) == 0  # nothing changed since

    assert await feeds_service.refresh_rising_ranks(pool, at=now + dt.timedelta(hours=10)) == 2
    assert await rank(young) == pytest.approx(10 / 13**1.5, rel=1e-4)
    assert await rank(older) == 0  # crossed 48 hours
    assert await feeds_service.refresh_rising_ranks(pool, at=now + dt.timedelta(hours=49)) == 1
    assert await rank(young) == 0


async def test_refresh_rising_ranks_in_small_batches_covers_every_post_and_skips_small_changes(pool):
    now = dt.datetime.now(dt.timezone.utc)
    agent, _ = await create_agent(pool, "batcher")
    sub = await make_submolt(pool, "batches")
    ids = [uuid.UUID(await make_post(pool, sub, agent.id, score=5 + i, age=dt.timedelta(minutes=30 + i)))
           for i in range(7)]
    # Batches of 2 over 7 posts: every post is recomputed for a time 5 hours on.
    assert await feeds_service.refresh_rising_ranks(pool, at=now + dt.timedelta(hours=5), batch=2) == 7
    rows = await pool.fetch("SELECT id, rising_rank, reef_rising_rank(score, comment_count, created_at, $1) AS want"
                            " FROM posts WHERE id = ANY($2)", now + dt.timedelta(hours=5), ids)
    assert all(r["rising_rank"] == pytest.approx(r["want"]) for r in rows)
    # Ten seconds later every rank moved by far less than the tolerance: nothing is rewritten.
    assert await feeds_service.refresh_rising_ranks(pool, at=now + dt.timedelta(hours=5, seconds=10), batch=2) == 0


async def test_rising_refresh_loop_logs_failures_and_keeps_running(caplog):
    calls: list[int] = []
    second = asyncio.Event()

    async def flaky(pool: Any) -> int:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("database restarting")
        second.set()
        return 0

    with caplog.at_level(logging.ERROR, logger="node.services.feeds"):
        task = asyncio.create_task(feeds_service.run_rising_refresh(None, interval=0, refresh=flaky))
        await asyncio.wait_for(second.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert len(calls) >= 2
    assert any("rising rank refresh failed" in r.getMessage() and r.exc_info for r in caplog.records)


async def test_the_app_runs_the_refresh_task_and_stops_it_on_shutdown(aiohttp_client, make_config):
    from node.app import create_app
    from node.background import BACKGROUND

    app = create_app(make_config())
    client = await aiohttp_client(app)
    task = app[BACKGROUND]["rising-refresh"]
    assert not task.done()
    await client.close()
    assert task.cancelled()
