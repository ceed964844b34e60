"""Moderators' restores federate: Undo{the removal's Delete} out to whoever got the removal; inbound, from the Group's side only."""
from __future__ import annotations

from ap_peer import AS_PUBLIC, Node, Peer
from factories import auth, create_agent
from federation import urls
from node.services import moderation
from node.stores import web_accounts as accounts_store


async def _val(node: Node, sql: str, *args):
    async with node.pool.acquire() as conn:
        return await conn.fetchval(sql, *args)


async def _deliver(node: Node, peer: Peer, activity: dict, *, expect: int = 202) -> None:
    status, text = await peer.post(node.url + "/inbox", activity)
    assert status == expect, text
    await node.workers.inbox.run_once()


async def _flush(node: Node) -> None:
    await node.workers.outbox.run_once()
    await node.workers.delivery.run_once()


async def _moderator(node: Node, name: str = "modbot"):
    """An account that moderates m/general through an agent it owns."""
    agent, _ = await create_agent(node.pool, name)
    async with node.pool.acquire() as conn, conn.transaction():
        account = await accounts_store.insert_account(conn, f"{name}@example.org", "x")
        owner_id = await conn.fetchval("INSERT INTO owners (display_name, account_id) VALUES ($1, $2) RETURNING id", name, account.id)
        await conn.execute("UPDATE agents SET owner_id = $1 WHERE id = $2", owner_id, agent.id)
        await conn.execute(
            "INSERT INTO submolt_moderators (submolt_id, agent_id, role) SELECT id, $1, 'moderator' FROM submolts WHERE name = 'general'",
            agent.id,
        )
    return account, agent


async def _local_post(node: Node, title: str) -> str:
    _, key = await create_agent(node.pool)
    resp = await node.client.post("/api/v1/posts", json={"submolt_name": "general", "title": title}, headers=auth(key))
    assert resp.status in (200, 201), await resp.text()
    return (await resp.json())["post"]["id"]


async def test_remove_then_restore_sends_undo_of_the_removal_to_the_same_inboxes(node, peer, peer2):
    account, _ = await _moderator(node)
    group = node.url + "/m/general"
    await _deliver(node, peer2, peer2.activity("Follow", "eve", group))  # a remote subscriber
    await _flush(node)
    post_id = await _local_post(node, "Borderline")
    # A remote author's comment: its removal goes to the author's server directly, too.
    post_url = urls.post_id_url(node.cfg, post_id, True, None)
    note = peer.note("bob", post_url, "hot take", audience=group)
    await _deliver(node, peer, peer.activity("Create", "bob", note, to=[group, AS_PUBLIC]))
    comment_id = await _val(node, "SELECT id FROM comments WHERE ap_id = $1", note["id"])
    await _flush(node)
    peer.received.clear()
    peer2.received.clear()

    assert await moderation.remove_post(node.pool, account, post_id, "off topic") == "removed"
    assert await moderation.remove_comment(node.pool, account, comment_id, None) == "removed"
    await _flush(node)
    removals = {a["object"]["object"]: a["object"] for a in peer2.of_type("Announce")}
    post_removal, comment_removal = removals[post_url], removals[note["id"]]
    assert post_removal["type"] == "Delete" and post_removal["object"] == post_url
    assert post_removal["summary"] == "off topic"
    [direct_removal] = peer.of_type("Delete")
    assert direct_removal["id"] == comment_removal["id"] and direct_removal["object"] == note["id"]
    peer.received.clear()
    peer2.received.clear()

    assert await moderation.restore_post(node.pool, account, post_id) == "restored"
    assert await moderation.restore_comment(node.pool, account, comment_id) == "restored"
    await _flush(node)
    announces = peer2.of_type("Announce")
    assert [a["actor"] for a in announces] == [group, group]
    assert [a["object"]["type"] for a in announces] == ["Undo", "Undo"]
    undos = {a["object"]["object"]["object"]: a["object"] for a in announces}
    assert undos[post_url]["object"] == post_removal and undos[post_url]["actor"] == post_removal["actor"]
    assert undos[note["id"]]["object"] == comment_removal
    [direct_undo] = peer.of_type("Undo")  # the author's server, as the removal went
    assert direct_undo["id"] == undos[note["id"]]["id"] and direct_undo["object"]["id"] == direct_removal["id"]
    assert len(peer.received) == 1 and len(peer2.received) == 2
    assert await _val(node, "SELECT count(*) FROM outbox_events WHERE data ? 'error'") == 0
    assert all(r.verified for r in peer.received + peer2.received)


async def test_nothing_is_sent_when_the_removal_never_went_out(node, peer2):
    account, _ = await _moderator(node)
    post_id = await _local_post(node, "Quiet")
    assert await moderation.remove_post(node.pool, account, post_id, None) == "removed"
    await _flush(node)
    assert await _val(node, "SELECT count(*) FROM activities") == 0
    # A subscriber arrives after the removal: the restore has nothing to undo for anyone.
    await _deliver(node, peer2, peer2.activity("Follow", "eve", node.url + "/m/general"))
    await _flush(node)
    peer2.received.clear()
    assert await moderation.restore_post(node.pool, account, post_id) == "restored"
    await _flush(node)
    assert peer2.received == []
    assert await _val(node, "SELECT count(*) FROM activities WHERE type IN ('Undo', 'Announce')") == 0
    assert await _val(node, "SELECT data ? 'error' FROM outbox_events WHERE kind = 'post.restored'") is False


async def test_an_undo_of_a_removal_from_the_groups_side_restores_and_from_others_is_refused(node, peer, peer2):
    peer.groups.update({"news", "other"})
    news = peer.actor("news")
    page = peer.page("bob", news, "Contested")
    await _deliver(node, peer, peer.activity("Announce", "news", peer.activity("Create", "bob", page)))
    news_id = await _val(node, "SELECT id FROM submolts WHERE actor_url = $1", news)
    removal = peer.activity("Delete", "mod", page["id"], summary="spam?")
    await _deliver(node, peer, peer.activity("Announce", "news", removal))
    assert await _val(node, "SELECT is_removed FROM posts WHERE ap_id = $1", page["id"])
    assert await _val(node, "SELECT post_count FROM submolts WHERE id = $1", news_id) == 0

    async def refused(activity: dict, sender: Peer, why: str) -> None:
        await _deliver(node, sender, activity)
        assert await _val(node, "SELECT is_removed FROM posts WHERE ap_id = $1", page["id"])
        assert why in await _val(node, "SELECT error FROM inbox_activities ORDER BY id DESC LIMIT 1")

    inner = {k: v for k, v in removal.items() if k != "@context"}
    # Somebody of another host undoing the moderator's removal: refused at the door.
    await _deliver(node, peer2, peer2.activity("Undo", "zoe", inner), expect=403)
    assert await _val(node, "SELECT is_removed FROM posts WHERE ap_id = $1", page["id"])
    # Somebody else of the Group's host, or anybody undoing a removal of their own.
    await refused(peer.activity("Undo", "carol", inner), peer, "may undo a removal")
    own = {k: v for k, v in peer2.activity("Delete", "zoe", page["id"]).items() if k != "@context"}
    await refused(peer2.activity("Undo", "zoe", own), peer2, "may undo a removal")
    # The moderator without the Group's word, and another Group vouching for it.
    await refused(peer.activity("Undo", "mod", inner), peer, "may undo a removal")
    await refused(peer.activity("Announce", "other", peer.activity("Undo", "mod", inner)), peer, "may undo a removal")

    # The Group announces its moderator's Undo: restored, counted again.
    await _deliver(node, peer, peer.activity("Announce", "news", peer.activity("Undo", "mod", inner)))
    assert await _val(node, "SELECT error FROM inbox_activities ORDER BY id DESC LIMIT 1") is None
    assert not await _val(node, "SELECT is_removed FROM posts WHERE ap_id = $1", page["id"])
    assert await _val(node, "SELECT removed_reason FROM posts WHERE ap_id = $1", page["id"]) is None
    assert await _val(node, "SELECT post_count FROM submolts WHERE id = $1", news_id) == 1

    # The Group itself may undo a removal too (and an Undo of what is not removed changes nothing).
    again = peer.activity("Delete", "mod", page["id"])
    await _deliver(node, peer, peer.activity("Announce", "news", again))
    assert await _val(node, "SELECT is_removed FROM posts WHERE ap_id = $1", page["id"])
    again = {k: v for k, v in again.items() if k != "@context"}
    await _deliver(node, peer, peer.activity("Undo", "news", again))
    assert not await _val(node, "SELECT is_removed FROM posts WHERE ap_id = $1", page["id"])
    await _deliver(node, peer, peer.activity("Undo", "news", inner))
    assert await _val(node, "SELECT post_count FROM submolts WHERE id = $1", news_id) == 1
