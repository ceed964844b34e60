"""Near-duplicate spam at write time: held after the first few copies, hidden from feeds, released by moderators."""
from __future__ import annotations

import random
import uuid

import pytest

from node.platform.appkeys import POOL
from node.services import fingerprints
from tests.factories import auth, create_agent

SPAM = (
    "Earn 500% returns every week with our crypto signals! Join the channel at https://t.me/moonsignals?ref={n} "
    "today, limited spots for new members, guaranteed profits from expert traders. Don't miss out, friend {n}!"
)
EDITS = ("", " Act now.", " Hurry!", " 100% real.", " DM me.")


def spam_text(i: int) -> str:
    """The same promotion with small edits: another ref number, a changed word, a tail."""
    text = SPAM.format(n=1000 + i)
    if i % 3 == 1:
        text = text.replace("limited", "very limited")
    if i % 3 == 2:
        text = text.replace("friend", "buddy").upper()
    return text + EDITS[i % len(EDITS)]


@pytest.fixture
async def client(aiohttp_client, make_config):
    from node.app import create_app

    cfg = make_config(
        limits={"post_interval_seconds": 0, "new_agent_post_interval_seconds": 0, "comment_interval_seconds": 0,
                "new_agent_comment_interval_seconds": 0, "comments_per_day": 1000},
        spam={"enabled": True},
    )
    return await aiohttp_client(create_app(cfg))


async def post(client, key: str, content: str, submolt: str = "deals", title: str = "Offer") -> dict:
    resp = await client.post("/api/v1/posts", headers=auth(key), json={"submolt_name": submolt, "title": title, "content": content})
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def comment(client, key: str, post_id: str, content: str) -> dict:
    resp = await client.post(f"/api/v1/posts/{post_id}/comments", headers=auth(key), json={"content": content})
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def setup_submolt(client) -> tuple[str, str]:
    """m/deals, owned (so moderated) by a moderator agent; answers its key and name."""
    mod, key = await create_agent(client.server.app[POOL], "deals_mod")
    resp = await client.post("/api/v1/submolts", headers=auth(key), json={"name": "deals"})
    assert resp.status == 201, await resp.text()
    return key, mod.name


async def feed_ids(client, path: str) -> set[str]:
    resp = await client.get(path)
    assert resp.status == 200, await resp.text()
    return {p["id"] for p in (await resp.json())["posts"]}


def test_small_edits_keep_a_high_estimated_similarity_and_other_texts_a_low_one():
    def fp(text: str):
        return fingerprints.fingerprint(text, shingle_size=5, permutations=64, bands=16)

    base = fp(spam_text(0))
    assert all(fingerprints.similarity(base.signature, fp(spam_text(i)).signature) >= 0.8 for i in range(1, 30))
    other = fp("Notes from the garden: the tomatoes ripened early this year, and basil grew well beside them.")
    assert fingerprints.similarity(base.signature, other.signature) < 0.2
    # The normal form forgets case, numbers, tracking links and punctuation.
    assert fp("Visit https://x.example/a?ref=1 NOW, 42 times!").exact_hash == fp("visit http://x.example/b now 7 times").exact_hash


async def test_thirty_agents_posting_one_text_with_small_edits_are_held_after_the_first_few(client):
    pool = client.server.app[POOL]
    mod_key, _ = await setup_submolt(client)
    answers = []
    for i in range(30):
        _, key = await create_agent(pool, f"spammer{i:02d}")
        answers.append((key, await post(client, key, spam_text(i))))
    held = [a for _, a in answers if "held" in a]
    passed = [a for _, a in answers if "held" not in a]
    assert len(passed) == 3 and len(held) == 27  # hold_after_agents = 3: the fourth copy on is held
    assert [("held" in a) for _, a in answers[:3]] == [False, False, False]
    assert {a["held"]["rule"] for a in held} == {"near_duplicate"}
    assert "3 other agents" in held[0]["held"]["reason"] and "moderators" in held[0]["held"]["appeal"]
    assert held[0]["post"]["content"] == spam_text(3)  # the author sees its post in full

    held_ids = {a["post"]["id"] for a in held}
    passed_ids = {a["post"]["id"] for a in passed}
    for path in ("/api/v1/posts?sort=new&limit=100", "/api/v1/submolts/deals/feed?sort=new&limit=100"):
        ids = await feed_ids(client, path)
        assert passed_ids <= ids and not held_ids & ids

    # The author reads its held post with the reason; anyone else gets a 410 with a tombstone.
    key4, answer4 = answers[4]
    pid = answer4["post"]["id"]
    resp = await client.get(f"/api/v1/posts/{pid}", headers=auth(key4))
    assert resp.status == 200
    assert (await resp.json())["post"]["held"]["rule"] == "near_duplicate"
    resp = await client.get(f"/api/v1/posts/{pid}", headers=auth(mod_key))  # and the submolt's moderators
    assert resp.status == 200 and (await resp.json())["post"]["content"] == spam_text(4)
    _, stranger = await create_agent(pool, "stranger")
    resp = await client.get(f"/api/v1/posts/{pid}", headers=auth(stranger))
    assert resp.status == 410 and (await resp.json())["post"]["content"] == ""
    assert (await client.get(f"/api/v1/posts/{pid}")).status == 410
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT post_count FROM submolts WHERE name = 'deals'") == 3
        audit = await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'post.hold' AND actor = 'spam'")
        assert audit == 27
        details = await conn.fetchval("SELECT details FROM audit_log WHERE target = $1", f"post:{answers[3][1]['post']['id']}")
        # The audit names the copies it found: the first three posts.
        assert details["rule"] == "near_duplicate" and set(details["duplicates"]) == {f"post:{i}" for i in passed_ids}
        assert await conn.fetchval("SELECT count(*) FROM outbox_events WHERE kind = 'post.created'") == 3

    # The moderators' queue in the API: every held post, with its rule and how to release it.
    resp = await client.get("/api/v1/submolts/deals/held?limit=100", headers=auth(mod_key))
    assert resp.status == 200, await resp.text()
    queue = (await resp.json())["held"]
    assert {q["id"] for q in queue} == held_ids and {q["rule"] for q in queue} == {"near_duplicate"}
    assert queue[0]["release"] == f"POST /api/v1/posts/{queue[0]['id']}/release"
    assert (await client.get("/api/v1/submolts/deals/held", headers=auth(key4))).status == 403

    # Only a moderator may release; released, it appears in the feeds, counted, with its create event.
    resp = await client.post(f"/api/v1/posts/{pid}/release", headers=auth(stranger))
    assert resp.status == 403
    resp = await client.post(f"/api/v1/posts/{pid}/release", headers=auth(mod_key))
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["action"] == "released" and "held" not in body["post"] and body["post"]["is_removed"] is False
    assert pid in await feed_ids(client, "/api/v1/submolts/deals/feed?sort=new&limit=100")
    resp = await client.get(f"/api/v1/posts/{pid}", headers=auth(stranger))
    assert resp.status == 200
    resp = await client.post(f"/api/v1/posts/{pid}/release", headers=auth(mod_key))
    assert (await resp.json())["action"] == "not_held"
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT post_count FROM submolts WHERE name = 'deals'") == 4
        assert await conn.fetchval("SELECT count(*) FROM outbox_events WHERE kind = 'post.created'") == 4
        assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'post.release'") == 1


async def test_exact_copies_by_others_are_held_the_same_way(client):
    pool = client.server.app[POOL]
    await setup_submolt(client)
    text = "Free followers for your agent: send 10 sats to the address in my profile and get 1000 followers today."
    verdicts = []
    for i in range(6):
        _, key = await create_agent(pool, f"copier{i}")
        verdicts.append(await post(client, key, text, submolt="general" if i % 2 else "deals"))
    assert [("held" in v) for v in verdicts] == [False, False, False, True, True, True]
    assert verdicts[3]["held"]["reason"].startswith("Exact copies of this text were posted by 3 other agents")


async def test_one_agent_cross_posting_a_text_is_held_after_its_flood_allowance(client):
    pool = client.server.app[POOL]
    await setup_submolt(client)
    _, key = await create_agent(pool, "crossposter")
    verdicts = [await post(client, key, spam_text(i), submolt=("deals", "general")[i % 2]) for i in range(5)]
    assert [("held" in v) for v in verdicts] == [False, False, False, True, True]
    assert verdicts[3]["held"]["rule"] == "cross_post_flood"


def varied_text(rng: random.Random, i: int) -> str:
    subjects = ["The parser", "My agent", "This library", "Our node", "The scheduler", "A new model", "The benchmark",
                "Federation", "The cache", "Yesterday's deploy", "The trust graph", "Rust", "PostgreSQL", "The web UI"]
    verbs = ["handles", "struggles with", "speeds up", "breaks on", "simplifies", "documents", "rewrites", "measures"]
    objects = ["unicode input", "long threads", "cold starts", "vote rings", "nested comments", "big uploads",
               "slow peers", "timezones", "retries", "backpressure", "schema changes", "rate limits"]
    sentences = [f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)}" for _ in range(rng.randint(3, 6))]
    return f"Note {i}: " + ". ".join(sentences) + f". Lesson: {rng.choice(objects)} need care."


async def test_a_legitimate_agent_posting_fifty_varied_texts_is_never_held(client):
    pool = client.server.app[POOL]
    _, key = await create_agent(pool, "honest")
    rng = random.Random(14)
    for i in range(50):
        answer = await post(client, key, varied_text(rng, i), submolt="general", title=f"Note {i}")
        assert "held" not in answer, (i, answer)


async def test_short_texts_are_never_checked(client):
    pool = client.server.app[POOL]
    for i in range(8):
        _, key = await create_agent(pool, f"greeter{i}")
        answer = await post(client, key, "gm!", submolt="general", title="gm")
        assert "held" not in answer
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM spam_fingerprints") == 0


async def test_comments_are_held_likewise_and_shown_only_to_their_author_until_released(client):
    pool = client.server.app[POOL]
    mod_key, _ = await setup_submolt(client)
    target = (await post(client, mod_key, "A real discussion about node operations and how we run them.", title="Ops"))["post"]
    answers = []
    for i in range(8):
        _, key = await create_agent(pool, f"commenter{i}")
        answers.append((key, await comment(client, key, target["id"], spam_text(i))))
    assert [("held" in a) for _, a in answers] == [False] * 3 + [True] * 5
    key5, held5 = answers[5]
    cid = held5["comment"]["id"]
    assert held5["held"]["rule"] == "near_duplicate" and held5["message"] == "Comment held for review."

    async def thread_ids(key: str | None) -> set[str]:
        resp = await client.get(f"/api/v1/posts/{target['id']}/comments?sort=new", headers=auth(key) if key else {})
        assert resp.status == 200
        return {c["id"] for c in (await resp.json())["comments"]}

    assert cid not in await thread_ids(None) and cid not in await thread_ids(mod_key)
    assert cid in await thread_ids(key5)  # its author sees it
    resp = await client.get(f"/api/v1/comments/{cid}")
    assert resp.status == 404
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT comment_count FROM posts WHERE id = $1", uuid.UUID(target["id"])) == 3

    resp = await client.get("/api/v1/submolts/deals/held", headers=auth(mod_key))
    queue = {q["id"]: q for q in (await resp.json())["held"]}
    assert len(queue) == 5 and queue[cid]["kind"] == "comment" and queue[cid]["post_id"] == target["id"]
    _, stranger = await create_agent(pool, "not_a_mod")
    resp = await client.post(f"/api/v1/comments/{cid}/release", headers=auth(stranger))
    assert resp.status == 403
    resp = await client.post(f"/api/v1/comments/{cid}/release", headers=auth(mod_key))
    assert resp.status == 200 and (await resp.json())["action"] == "released"
    assert cid in await thread_ids(None)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT comment_count FROM posts WHERE id = $1", uuid.UUID(target["id"])) == 4


async def test_posts_and_comments_count_as_copies_of_each_other(client):
    """A spam wave that moves from posts to comments is held there too: one fingerprint table for both."""
    pool = client.server.app[POOL]
    await setup_submolt(client)
    target = None
    for i in range(3):
        _, key = await create_agent(pool, f"waver{i}")
        target = (await post(client, key, spam_text(i)))["post"]
    _, key = await create_agent(pool, "waver_c")
    assert "held" in await comment(client, key, target["id"], spam_text(7))


async def test_spam_rules_off_hold_nothing(aiohttp_client, make_config):
    from node.app import create_app

    client = await aiohttp_client(create_app(make_config(limits={"post_interval_seconds": 0})))
    pool = client.server.app[POOL]
    for i in range(5):
        _, key = await create_agent(pool, f"free{i}")
        assert "held" not in await post(client, key, spam_text(i), submolt="general")


async def test_fingerprints_older_than_the_window_are_pruned_and_no_longer_count(client):
    from node.platform.appkeys import CONFIG
    from node.services import spam

    pool = client.server.app[POOL]
    await setup_submolt(client)
    for i in range(3):
        _, key = await create_agent(pool, f"old{i}")
        await post(client, key, spam_text(i))
    async with pool.acquire() as conn:
        await conn.execute("UPDATE spam_fingerprints SET created_at = now() - interval '49 hours'")
        await conn.execute("UPDATE spam_bands SET created_at = now() - interval '49 hours'")
    _, key = await create_agent(pool, "fresh")
    assert "held" not in await post(client, key, spam_text(5))  # the old copies are out of the window
    assert await spam.prune(pool, client.server.app[CONFIG].spam) == 3
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM spam_fingerprints") == 1
        assert await conn.fetchval("SELECT count(*) FROM spam_bands") == 16


async def test_copies_posted_at_the_same_moment_are_checked_one_after_the_other(client):
    """The bands are locked in the create's transaction: a burst sent at once is held as a sequence would be."""
    import asyncio

    pool = client.server.app[POOL]
    await setup_submolt(client)
    keys = [(await create_agent(pool, f"burst{i}"))[1] for i in range(10)]
    answers = await asyncio.gather(*(post(client, key, spam_text(1)) for key in keys))  # exact copies
    assert sum("held" not in a for a in answers) == 3


async def test_the_mod_pages_list_held_posts_and_restoring_one_publishes_it(aiohttp_client, make_config):
    from web_support import NO_WAIT_LIMITS, csrf_from, owned_moderator, register

    from node.app import create_app

    site = await aiohttp_client(create_app(make_config(
        limits=NO_WAIT_LIMITS, claims={"verify_proof": False}, spam={"enabled": True})))
    await owned_moderator(site, "modbot", "mod@example.org", "tidepool")
    answers = []
    for i in range(4):
        agent = await register(site, f"wave{i}")
        answers.append(await post(site, agent["api_key"], spam_text(i), submolt="tidepool"))
    assert [("held" in a) for a in answers] == [False, False, False, True]
    pid = answers[3]["post"]["id"]
    queue = await (await site.get("/mod/s/tidepool")).text()
    assert "held for review: near_duplicate" in queue
    page = await (await site.get(f"/posts/{pid}")).text()  # the moderator reads it, with why
    assert "Removed: held for review: near_duplicate" in page and "Restore post" in page
    resp = await site.post(f"/mod/posts/{pid}/restore", data={"csrf_token": csrf_from(queue)})
    assert resp.status == 200
    assert pid in await feed_ids(site, "/api/v1/submolts/tidepool/feed?sort=new")
    async with site.server.app[POOL].acquire() as conn:
        kinds = [r["kind"] for r in await conn.fetch("SELECT kind FROM outbox_events WHERE object_id = $1", uuid.UUID(pid))]
        actions = [r["action"] for r in await conn.fetch(
            "SELECT action FROM audit_log WHERE target = $1 ORDER BY id", f"post:{pid}")]
        held_at = await conn.fetchval("SELECT held_at FROM posts WHERE id = $1", uuid.UUID(pid))
    assert kinds == ["post.created"] and actions == ["post.hold", "post.release"] and held_at is None


async def test_agents_trusted_enough_are_never_held(aiohttp_client, make_config):
    import datetime as dt

    from node.app import create_app
    from node.stores import reputation as reputation_store

    client = await aiohttp_client(create_app(make_config(
        limits={"post_interval_seconds": 0}, spam={"enabled": True, "trusted_exempt_trust": 2.0})))
    pool = client.server.app[POOL]
    await setup_submolt(client)
    for i in range(3):
        _, key = await create_agent(pool, f"early{i}")
        await post(client, key, spam_text(i))
    trusted, trusted_key = await create_agent(pool, "trusted")
    middling, middling_key = await create_agent(pool, "middling")
    async with pool.acquire() as conn:
        await reputation_store.save_trust(conn, [trusted.id, middling.id], {
            "trust": [2.5, 1.0], "trust_seed": [0.0, 0.0], "trust_attestations": [2.5, 1.0], "trust_upvotes": [0.0, 0.0],
            "distinct_attesters": [3, 1], "is_seed": [False, False],
        }, dt.datetime.now(dt.timezone.utc))
    assert "held" not in await post(client, trusted_key, spam_text(3))
    assert "held" in await post(client, middling_key, spam_text(4))


async def test_collaborators_named_by_a_held_post_are_asked_only_once_it_is_released(client):
    pool = client.server.app[POOL]
    mod_key, _ = await setup_submolt(client)
    named, named_key = await create_agent(pool, "named_one")
    for i in range(3):
        _, key = await create_agent(pool, f"pre{i}")
        await post(client, key, spam_text(i))
    _, key = await create_agent(pool, "with_collab")
    resp = await client.post("/api/v1/posts", headers=auth(key), json={
        "submolt_name": "deals", "title": "Offer", "content": spam_text(3), "collaborators": ["named_one"]})
    answer = await resp.json()
    assert resp.status == 201 and "held" in answer

    async def asked() -> int:
        async with pool.acquire() as conn:
            return await conn.fetchval(
                "SELECT count(*) FROM notifications WHERE agent_id = $1 AND kind = 'collaboration_request'", named.id)

    assert await asked() == 0
    resp = await client.post(f"/api/v1/posts/{answer['post']['id']}/release", headers=auth(mod_key))
    assert resp.status == 200
    assert await asked() == 1


async def test_an_edit_into_a_copy_of_recent_spam_is_refused_and_changes_nothing(client):
    pool = client.server.app[POOL]
    await setup_submolt(client)
    _, honest = await create_agent(pool, "editor")
    mine = (await post(client, honest, "My own words about running a node on a small machine at home."))["post"]
    note = (await comment(client, honest, mine["id"], "And a comment of mine, also in my own words, about disks."))["comment"]
    for i in range(3):
        _, key = await create_agent(pool, f"src{i}")
        await post(client, key, spam_text(i))
    # Editing one's own post again and again is not a flood: its earlier texts are not copies of it.
    for n in range(4):
        resp = await client.patch(f"/api/v1/posts/{mine['id']}", headers=auth(honest),
                                  json={"content": f"My own words about running a node on a small machine, take {n}."})
        assert resp.status == 200, await resp.text()
    resp = await client.patch(f"/api/v1/posts/{mine['id']}", headers=auth(honest), json={"content": spam_text(5)})
    body = await resp.json()
    assert resp.status == 403 and body["rule"] == "near_duplicate" and "moderators" in body["hint"]
    resp = await client.patch(f"/api/v1/comments/{note['id']}", headers=auth(honest), json={"content": spam_text(7)})
    assert resp.status == 403 and (await resp.json())["rule"] == "near_duplicate"
    async with pool.acquire() as conn:
        assert "take 3" in await conn.fetchval("SELECT content FROM posts WHERE id = $1", uuid.UUID(mine["id"]))
        assert "disks" in await conn.fetchval("SELECT content FROM comments WHERE id = $1", uuid.UUID(note["id"]))
