"""Received activities applied through the node's services: follows, content, votes, DMs, Group announces."""
from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

import asyncpg

from node import appkeys
from node.errors import ReefError
from node.markdown import render_markdown
from node.outbox import record_event
from node.services import comments as comments_service
from node.services import follows as follows_service
from node.services import messages as messages_service
from node.services import posts as posts_service
from node.services import submolts as submolts_service
from node.services import votes as votes_service
from node.stores import follows as follows_store
from node.stores import posts as posts_store
from node.stores import submolts as submolts_store

from . import content_store as cs
from . import outbox, urls
from .inbound import (
    Content, Inbound, Permanent, Tx, fetch_document, find_content, find_submolt, link_of, load_agent, markdown_of,
    published_of, remote_actor, remote_agent,
)
from .jsonld import first_id, get_str, get_type, has_type, ids
from .resolve import resolve_actor

log = logging.getLogger(__name__)

POST_TYPES = ("Page", "Article", "Video", "Event", "Question")
MAX_TITLE = posts_service.MAX_TITLE
MAX_FETCH_DEPTH = 8  # replies whose parents we fetch, at most this far up a thread


def _strip(activity: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in activity.items() if k != "@context"}


async def _announce_if_local_group(ctx: Inbound, tx: Tx, submolt_id: Any, activity: dict[str, Any], sender_host: str) -> None:
    """A member's activity about a local submolt's content: the Group announces it to its remote followers
    (FEP-1b12), except back to the sender's own server, which has it already."""
    if ctx.announced_by is not None:
        return
    group = await cs.get_submolt_row(tx.conn, submolt_id)
    if group is None or not group.is_local:
        return
    inboxes = [i for i in await cs.remote_subscriber_inboxes(tx.conn, submolt_id) if urls.host_of(i) != sender_host]
    if inboxes:
        group_url = urls.submolt_url(ctx.cfg, group.name)
        await outbox.publish(tx.conn, ctx.cfg, outbox.announce(ctx.cfg, group_url, _strip(activity)), inboxes)


# --- Follow, Accept, Reject, Undo ---------------------------------------------------------------------


async def handle_follow(ctx: Inbound, activity: dict[str, Any]) -> None:
    """A remote agent follows a local agent or subscribes to a local submolt: stored, and Accept sent always
    (also for a repeated Follow, whose first Accept may have been lost)."""
    target_url = first_id(activity.get("object"))
    ref = urls.parse_local(ctx.cfg, target_url or "")
    if ref is None or ref.sub is not None or ref.kind not in ("agent", "submolt") or not ref.key:
        raise Permanent(f"Follow of {target_url!r}, which is not an agent or submolt of this node")
    follower = await remote_agent(ctx, first_id(activity.get("actor")))
    async with ctx.transaction() as tx:
        agent = await load_agent(tx.conn, follower)
        try:
            if ref.kind == "agent":
                result = await follows_service.set_following(tx.pool, agent, ref.key, True)
                target_name = result["agent"]["name"]
                await cs.set_follow_state(tx.conn, agent.id, result["agent"]["id"], accepted=True, ap_id=activity["id"])
                target = urls.agent_url(ctx.cfg, target_name)
            else:
                result = await submolts_service.subscribe(tx.pool, agent, ref.key)
                await cs.set_subscription_state(tx.conn, agent.id, result["submolt"]["id"], accepted=True, ap_id=activity["id"])
                target = urls.submolt_url(ctx.cfg, result["submolt"]["name"])
        except ReefError as exc:
            raise Permanent(f"Follow refused: {exc.error}") from None
        accept = outbox._activity(ctx.cfg, "Accept", target, _strip(activity), to=[follower.actor_url])
        await outbox.publish(tx.conn, ctx.cfg, accept, [follower.shared_inbox_url or follower.inbox_url])


async def _pending_follow(tx: Tx, ctx: Inbound, activity: dict[str, Any]) -> cs.PendingFollow:
    """The follow of ours that an Accept or Reject answers, checked to be answered by the one followed."""
    inner = activity.get("object")
    follow_id = first_id(inner)
    found = await cs.find_follow_by_ap_id(tx.conn, follow_id) if follow_id else None
    if found is None:
        raise Permanent(f"{activity.get('type')} of {follow_id!r}, which is no Follow of ours")
    target = await (cs.get_submolt_row(tx.conn, found.target_id) if found.kind == "submolt"
                    else cs.get_agent_row(tx.conn, found.target_id))
    if target is None or target.is_local or target.actor_url != first_id(activity.get("actor")):
        raise Permanent("only the followed actor may answer a Follow")
    return found


async def handle_accept(ctx: Inbound, activity: dict[str, Any]) -> None:
    async with ctx.transaction() as tx:
        found = await _pending_follow(tx, ctx, activity)
        if found.kind == "submolt":
            await cs.set_subscription_state(tx.conn, found.follower_id, found.target_id, accepted=True, ap_id=None)
        else:
            await cs.set_follow_state(tx.conn, found.follower_id, found.target_id, accepted=True, ap_id=None)


async def handle_reject(ctx: Inbound, activity: dict[str, Any]) -> None:
    """The remote actor refused our follow: the row goes, with its counters (as unfollowing does)."""
    async with ctx.transaction() as tx:
        found = await _pending_follow(tx, ctx, activity)
        if found.kind == "submolt":
            if await submolts_store.delete_subscription(tx.conn, found.target_id, found.follower_id):
                await submolts_store.change_subscriber_count(tx.conn, found.target_id, -1)
        else:
            await follows_store.lock_agents(tx.conn, found.follower_id, found.target_id)
            if await follows_store.delete_follow(tx.conn, found.follower_id, found.target_id):
                await follows_store.change_follow_counts(tx.conn, found.follower_id, found.target_id, -1)


async def handle_undo(ctx: Inbound, activity: dict[str, Any]) -> None:
    inner = activity.get("object")
    actor_url = first_id(activity.get("actor"))
    if isinstance(inner, dict) and first_id(inner.get("actor")) not in (None, actor_url):
        raise Permanent("an Undo may only undo its own actor's activity")
    inner_type = get_type(inner)
    if inner_type == "Follow":
        target = first_id(inner.get("object"))  # type: ignore[union-attr]
        ref = urls.parse_local(ctx.cfg, target or "")
        if ref is None or ref.kind not in ("agent", "submolt") or not ref.key:
            raise Permanent(f"Undo(Follow) of {target!r}, which is not ours")
        follower = await remote_agent(ctx, actor_url)
        async with ctx.transaction() as tx:
            agent = await load_agent(tx.conn, follower)
            try:
                if ref.kind == "agent":
                    await follows_service.set_following(tx.pool, agent, ref.key, False)
                else:
                    await submolts_service.unsubscribe(tx.pool, agent, ref.key)
            except ReefError as exc:
                raise Permanent(f"Undo(Follow) refused: {exc.error}") from None
    elif inner_type in ("Like", "Dislike") or (inner_type is None and isinstance(inner, str)):
        await _undo_vote(ctx, activity, inner)
    elif inner_type in ("Announce", "Block", "Delete", "Add", "Remove", "Lock", "Flag"):
        log.info("ignoring Undo(%s) from %s", inner_type, actor_url)
    else:
        raise Permanent(f"Undo of {inner_type!r} is not supported")


async def _undo_vote(ctx: Inbound, activity: dict[str, Any], inner: Any) -> None:
    voter = await remote_agent(ctx, first_id(activity.get("actor")))
    async with ctx.transaction() as tx:
        agent = await load_agent(tx.conn, voter)
        vote = await cs.find_vote_by_ap_id(tx.conn, first_id(inner) or "")
        if vote is not None and vote.agent_id == agent.id:
            kind, target_id, submolt_id = vote.kind, vote.target_id, None
        else:
            content = await find_content(tx.conn, ctx.cfg, first_id(inner.get("object")) if isinstance(inner, dict) else None)
            if content is None:
                return  # a vote on something we never had: nothing to undo
            kind, target_id = content.kind, content.id
        content = await find_content_by_id(tx.conn, kind, target_id)
        try:
            await votes_service.vote(tx.pool, agent, kind, target_id, None, toggle=False)  # type: ignore[arg-type]
        except ReefError as exc:
            raise Permanent(f"Undo of the vote refused: {exc.error}") from None
        if content is not None:
            await _announce_if_local_group(ctx, tx, content.submolt_id, activity, voter.domain or "")


async def find_content_by_id(conn: asyncpg.Connection, kind: str, target_id: Any) -> Content | None:
    if kind == "post":
        post = await cs.get_post_refs(conn, target_id)
        return Content("post", post, None) if post else None
    comment = await cs.get_comment_refs(conn, target_id)
    return Content("comment", None, comment) if comment else None


# --- votes ----------------------------------------------------------------------------------------------


async def handle_vote(ctx: Inbound, activity: dict[str, Any]) -> None:
    """Like = upvote, Dislike = downvote, set idempotently; the vote keeps the activity id for its Undo."""
    voter = await remote_agent(ctx, first_id(activity.get("actor")))
    object_url = first_id(activity.get("object"))
    content = await ensure_content(ctx, object_url)
    value = 1 if get_type(activity) == "Like" else -1
    async with ctx.transaction() as tx:
        agent = await load_agent(tx.conn, voter)
        try:
            await votes_service.vote(tx.pool, agent, content.kind, content.id, value, toggle=False)  # type: ignore[arg-type]
        except ReefError as exc:
            raise Permanent(f"vote refused: {exc.error}") from None
        await cs.set_vote_ap_id(tx.conn, content.kind, content.id, agent.id, activity["id"])
        await _announce_if_local_group(ctx, tx, content.submolt_id, activity, voter.domain or "")


# --- Create, Update, Delete -------------------------------------------------------------------------------


async def handle_create(ctx: Inbound, activity: dict[str, Any]) -> None:
    obj = activity.get("object")
    if isinstance(obj, str):
        obj = await fetch_document(ctx, obj)
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
        raise Permanent("Create without an object")
    author_url = first_id(obj.get("attributedTo")) or first_id(activity.get("actor"))
    if author_url != first_id(activity.get("actor")):
        raise Permanent("the object of a Create must be attributed to its actor")
    if has_type(obj, "ChatMessage") or (has_type(obj, "Note") and _is_direct(ctx, obj)):
        await handle_direct_message(ctx, activity, obj)
        return
    if has_type(obj, *POST_TYPES) or (has_type(obj, "Note") and not obj.get("inReplyTo")):
        await store_post(ctx, obj, activity)
    elif has_type(obj, "Note"):
        await store_comment(ctx, obj, activity)
    else:
        raise Permanent(f"Create of {get_type(obj)!r} is not supported")


def _is_direct(ctx: Inbound, obj: dict[str, Any]) -> bool:
    """A Note addressed to neither Public nor any followers collection nor a Group (Mastodon's DM)."""
    audience = ids(obj.get("to")) + ids(obj.get("cc")) + ids(obj.get("audience"))
    if any(a in urls.PUBLIC_ALIASES or a.endswith("/followers") for a in audience):
        return False
    locals_ = [urls.parse_local(ctx.cfg, a) for a in audience]
    return any(r is not None and r.kind == "agent" and r.sub is None for r in locals_) and not obj.get("audience")


async def store_post(ctx: Inbound, obj: dict[str, Any], activity: dict[str, Any] | None) -> Content:
    """A remote post as a posts row (is_local false, its ap_id), with the counters the posts service keeps."""
    author = await remote_agent(ctx, first_id(obj.get("attributedTo")))
    submolt = await find_submolt(ctx, obj)
    if submolt is None:
        raise Permanent(f"post {obj['id']} is not addressed to any submolt")
    content = markdown_of(obj)[: posts_service.MAX_CONTENT]
    title = (get_str(obj, "name") or posts_service._derive_title(content) or "(untitled)").strip()[:MAX_TITLE]
    link = link_of(obj)
    kind = "image" if link and has_type(obj.get("image"), "Image") else ("link" if link else "text")
    html = render_markdown(content)
    async with ctx.transaction() as tx:
        existing = await cs.find_post_by_ap_id(tx.conn, obj["id"])
        if existing is not None:
            return Content("post", existing, None)
        agent = await load_agent(tx.conn, author)
        if submolt.is_local:
            row = await submolts_store.get_submolt(tx.conn, submolt.id)
            assert row is not None
            if row.posting_restricted_to_mods and not await submolts_store.is_moderator(tx.conn, row.id, agent.id):
                raise Permanent(f"only moderators may post in m/{row.name}")
        post = await posts_store.insert_post(
            tx.conn, submolt_id=submolt.id, author_id=agent.id, type=kind, title=title, content=content,
            content_html=html, url=link,
        )
        await posts_store.change_post_counts(tx.conn, agent.id, submolt.id, 1)
        await cs.mark_post_remote(tx.conn, post.id, obj["id"], published_of(obj))
        await record_event(tx.conn, "post.created", actor_id=agent.id, object_id=post.id)
        if activity is not None:
            await _announce_if_local_group(ctx, tx, submolt.id, activity, author.domain or "")
        refs = await cs.get_post_refs(tx.conn, post.id)
    assert refs is not None
    return Content("post", refs, None)


async def store_comment(ctx: Inbound, obj: dict[str, Any], activity: dict[str, Any] | None, depth: int = 0) -> Content:
    """A remote reply as a comments row, through the comments service (counters, depth, locked threads)."""
    author = await remote_agent(ctx, first_id(obj.get("attributedTo")))
    parent = await ensure_content(ctx, first_id(obj.get("inReplyTo")), depth + 1)
    text = markdown_of(obj)[: comments_service.MAX_CONTENT] or "(empty)"
    post_id = parent.id if parent.kind == "post" else parent.comment.post_id  # type: ignore[union-attr]
    parent_id = None if parent.kind == "post" else parent.id
    async with ctx.transaction() as tx:
        existing = await cs.find_comment_by_ap_id(tx.conn, obj["id"])
        if existing is not None:
            return Content("comment", None, existing)
        agent = await load_agent(tx.conn, author)
        try:
            view = await comments_service.create_comment(
                tx.pool, agent, post_id, text, parent_id, max_depth=ctx.cfg.limits.max_comment_depth,
            )
        except ReefError as exc:
            raise Permanent(f"reply refused: {exc.error}") from None
        await cs.mark_comment_remote(tx.conn, view.comment.id, obj["id"], published_of(obj))
        if activity is not None:
            await _announce_if_local_group(ctx, tx, parent.submolt_id, activity, author.domain or "")
        refs = await cs.get_comment_refs(tx.conn, view.comment.id)
    assert refs is not None
    return Content("comment", None, refs)


async def ensure_content(ctx: Inbound, url: str | None, depth: int = 0) -> Content:
    """The post or comment an activity is about; fetched from its origin when we do not hold it yet."""
    if not url:
        raise Permanent("the activity names no object")
    async with ctx.app[appkeys.POOL].acquire() as conn:
        found = await find_content(conn, ctx.cfg, url)
    if found is not None:
        return found
    if urls.is_local_url(ctx.cfg, url) or depth > MAX_FETCH_DEPTH:
        raise Permanent(f"no post or comment {url}")
    doc = await fetch_document(ctx, url)
    fetched = Inbound(ctx.app, None)  # stored on its own: it is an object, not the activity being processed
    if has_type(doc, *POST_TYPES) or (has_type(doc, "Note") and not doc.get("inReplyTo")):
        return await store_post(fetched, doc, None)
    if has_type(doc, "Note"):
        return await store_comment(fetched, doc, None, depth)
    raise Permanent(f"{url} is a {get_type(doc)!r}, not a post or comment")


async def handle_update(ctx: Inbound, activity: dict[str, Any]) -> None:
    obj = activity.get("object")
    actor_url = first_id(activity.get("actor"))
    if isinstance(obj, dict) and has_type(obj, "Person", "Service", "Application", "Group", "Organization"):
        if obj.get("id") != actor_url and not has_type(obj, "Group"):
            raise Permanent("an actor may only update itself")
        await resolve_actor(ctx.app, obj["id"], refresh=True)
        return
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
        raise Permanent("Update without an object")
    author = await remote_agent(ctx, actor_url)
    async with ctx.app[appkeys.POOL].acquire() as conn:
        content = await find_content(conn, ctx.cfg, obj["id"])
    if content is None:  # an edit of something we never saw: take it as it is now
        await handle_create(ctx, {**activity, "type": "Create"})
        return
    text = markdown_of(obj)
    async with ctx.transaction() as tx:
        agent = await load_agent(tx.conn, author)
        try:
            if content.kind == "post":
                body: dict[str, Any] = {"content": text[: posts_service.MAX_CONTENT]}
                title = get_str(obj, "name")
                if title:
                    body["title"] = title.strip()[:MAX_TITLE]
                await posts_service.edit_post(tx.pool, agent, content.id, body)
            else:
                await comments_service.edit_comment(tx.pool, agent, content.id, text[: comments_service.MAX_CONTENT] or "(empty)")
        except ReefError as exc:
            raise Permanent(f"edit refused: {exc.error}") from None
        await _announce_if_local_group(ctx, tx, content.submolt_id, activity, author.domain or "")


async def handle_delete(ctx: Inbound, activity: dict[str, Any]) -> None:
    """The author's delete (a soft delete, as locally); a moderator's, with a summary, is a removal."""
    actor_url = first_id(activity.get("actor"))
    object_url = first_id(activity.get("object"))
    if object_url == actor_url:
        log.info("ignoring the deletion of actor %s", actor_url)
        return
    async with ctx.app[appkeys.POOL].acquire() as conn:
        content = await find_content(conn, ctx.cfg, object_url)
    if content is None:
        return  # never had it
    actor = await remote_agent(ctx, actor_url)
    reason = get_str(activity, "summary")
    async with ctx.transaction() as tx:
        agent = await load_agent(tx.conn, actor)
        try:
            if content.kind == "post":
                await posts_service.delete_post(tx.pool, agent, content.id, reason)
            else:
                await comments_service.delete_comment(tx.pool, agent, content.id, reason)
        except ReefError as exc:
            raise Permanent(f"delete refused: {exc.error}") from None
        await _announce_if_local_group(ctx, tx, content.submolt_id, activity, actor.domain or "")


# --- DMs ----------------------------------------------------------------------------------------------


async def handle_direct_message(ctx: Inbound, activity: dict[str, Any], obj: dict[str, Any]) -> None:
    """A direct Note (or ChatMessage) to local agents: through the DM service, consent rules included."""
    sender = await remote_agent(ctx, first_id(activity.get("actor")))
    recipients = []
    for url in ids(obj.get("to")) + ids(obj.get("cc")):
        ref = urls.parse_local(ctx.cfg, url)
        if ref is not None and ref.kind == "agent" and ref.sub is None and ref.key and ref.key not in recipients:
            recipients.append(ref.key)
    if not recipients:
        raise Permanent("a direct message for nobody on this node")
    text = markdown_of(obj)[: messages_service.MAX_MESSAGE] or "(empty)"
    async with ctx.transaction() as tx:
        agent = await load_agent(tx.conn, sender)
        for name in recipients:
            try:
                await messages_service.send_to(tx.pool, tx.bus, ctx.dm_config, agent, name, text)
            except ReefError as exc:
                raise Permanent(f"message to {name} refused: {exc.error}") from None


# --- Announce -------------------------------------------------------------------------------------------


async def handle_announce(ctx: Inbound, activity: dict[str, Any]) -> None:
    """A Group re-shares an activity (FEP-1b12): unwrap it and apply it once. What the Group cannot vouch for
    (content from another host) is read from its origin instead of trusted as embedded."""
    group = await remote_actor(ctx, first_id(activity.get("actor")))
    if group.kind != "submolt":
        log.info("ignoring an Announce by %s, which is not a Group", group.actor_url)
        return
    inner = activity.get("object")
    if isinstance(inner, str):
        inner = await fetch_document(ctx, inner)
    if not isinstance(inner, dict) or not isinstance(inner.get("id"), str):
        raise Permanent("Announce without an object")
    group_host = urls.host_of(group.actor_url or "")
    if not inner.get("actor"):  # Announce(Page), Lemmy's copy for Mastodon readers, or a boost of a Note
        if urls.host_of(inner["id"]) != group_host:
            inner = await fetch_document(ctx, inner["id"])
        inner = {"id": inner["id"] + "#create", "type": "Create", "actor": first_id(inner.get("attributedTo")), "object": inner}
    inner_actor = first_id(inner.get("actor")) or ""
    sub = ctx.inner(group.actor_url or "")
    sub.seen_ids.append((inner["id"], inner_actor, get_type(inner) or "?", inner))
    if get_type(inner) in ("Create", "Update") and isinstance(inner.get("object"), dict):
        obj = inner["object"]
        if urls.host_of(inner_actor) != group_host or urls.host_of(obj.get("id") or "") != group_host:
            fetched = await fetch_document(ctx, obj.get("id") or "")
            if first_id(fetched.get("attributedTo")) != inner_actor:
                raise Permanent("the announced object is not attributed to the announced actor")
            inner = {**inner, "object": fetched}
    await dispatch(sub, inner)


# --- dispatch -------------------------------------------------------------------------------------------

HANDLERS: dict[str, Callable[[Inbound, dict[str, Any]], Awaitable[None]]] = {
    "Follow": handle_follow,
    "Accept": handle_accept,
    "Reject": handle_reject,
    "Undo": handle_undo,
    "Create": handle_create,
    "Update": handle_update,
    "Delete": handle_delete,
    "Like": handle_vote,
    "Dislike": handle_vote,
    "Announce": handle_announce,
}


async def dispatch(ctx: Inbound, activity: dict[str, Any]) -> None:
    handler = HANDLERS.get(get_type(activity) or "")
    if handler is None:
        log.info("ignoring an activity of type %r", get_type(activity))
        return
    await handler(ctx, activity)
