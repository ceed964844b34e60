"""Received posts, comments and DMs: Create, Update and Delete applied through the node's services."""
from __future__ import annotations

import logging
from typing import Any

from node.platform import appkeys
from node.platform.errors import ReefError
from node.services.markdown import render_markdown
from node.services import comments as comments_service
from node.services.events import Outbox
from node.services import messages as messages_service
from node.services import posts as posts_service
from node.services import removals
from node.stores import submolts as submolts_store

from . import attestations, verifications
from . import content_store as cs
from . import urls
from .inbound import (
    Content, Inbound, Permanent, Tx, announce_if_local_group, fetch_document, find_content, find_submolt, link_of,
    load_agent, markdown_of, published_of, remote_agent, require_vouched,
)
from .jsonld import first_id, get_str, get_type, has_type, ids

log = logging.getLogger(__name__)

POST_TYPES = ("Page", "Article", "Video", "Event", "Question")
MAX_TITLE = posts_service.MAX_TITLE
MAX_FETCH_DEPTH = 8  # replies whose parents we fetch, at most this far up a thread


async def handle_create(ctx: Inbound, activity: dict[str, Any]) -> None:
    obj = activity.get("object")
    if isinstance(obj, str):
        obj = await fetch_document(ctx, obj)
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
        raise Permanent("Create without an object")
    author_url = first_id(obj.get("attributedTo")) or first_id(activity.get("actor"))
    if author_url != first_id(activity.get("actor")):
        raise Permanent("the object of a Create must be attributed to its actor")
    if attestations.is_attestation(obj):
        await attestations.handle_attestation(ctx, activity, obj)
        return
    if verifications.is_verification(obj):
        await verifications.handle_verification(ctx, activity, obj)
        return
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
    announced = submolt is not None
    if submolt is None:
        # A microblog post (Mastodon's or bovine's Note to Public and followers) names no Group. It came
        # because agents here follow its author: it goes to this node's general submolt, announced to nobody.
        async with ctx.app[appkeys.POOL].acquire() as conn:
            if await cs.has_local_followers(conn, author.id):
                submolt = await cs.get_submolt_row_by_name(conn, "general")
    if submolt is None:
        raise Permanent(f"post {obj['id']} is not addressed to any submolt")
    content = markdown_of(obj)[: posts_service.MAX_CONTENT]
    title = (get_str(obj, "name") or posts_service.derive_title(content) or "(untitled)").strip()[:MAX_TITLE]
    link = link_of(obj)
    kind = "image" if link and has_type(obj.get("image"), "Image") else ("link" if link else "text")
    html = render_markdown(content)
    async with ctx.transaction() as tx:
        existing = await cs.find_post_by_ap_id(tx.conn, obj["id"])
        if existing is not None:
            return Content("post", existing, None)
        agent = await load_agent(tx.conn, author)
        row = await submolts_store.get_submolt(tx.conn, submolt.id)
        assert row is not None
        try:  # the Agent API's rules, in the same function (bans, moderators-only, counters, the event)
            post = await posts_service.add_post(tx.conn, agent, row, posts_service.NewPost(
                type=kind, title=title, content=content, content_html=html, url=link,
            ), received=True)
        except ReefError as exc:
            raise Permanent(f"post refused: {exc.error}") from None
        await cs.mark_post_remote(tx.conn, post.id, obj["id"], published_of(obj))
        if activity is not None and announced:
            await announce_if_local_group(ctx, tx, submolt.id, activity, author.domain or "")
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
            view = await comments_service.add_comment(
                tx.conn, agent, post_id, text, parent_id, max_depth=ctx.cfg.limits.max_comment_depth,
            )
        except ReefError as exc:
            raise Permanent(f"reply refused: {exc.error}") from None
        await cs.mark_comment_remote(tx.conn, view.comment.id, obj["id"], published_of(obj))
        if activity is not None:
            await announce_if_local_group(ctx, tx, parent.submolt_id, activity, author.domain or "")
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
    """An edit of a post or comment (Updates of actors are handlers.handle_actor_update's)."""
    obj = activity.get("object")
    actor_url = first_id(activity.get("actor"))
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
        raise Permanent("Update without an object")
    if attestations.is_attestation(obj):
        await attestations.handle_attestation(ctx, activity, obj)
        return
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
                await posts_service.change_post(tx.conn, agent, content.id, body)
            else:
                await comments_service.change_comment(tx.conn, agent, content.id, text[: comments_service.MAX_CONTENT] or "(empty)")
        except ReefError as exc:
            raise Permanent(f"edit refused: {exc.error}") from None
        await announce_if_local_group(ctx, tx, content.submolt_id, activity, author.domain or "")


async def handle_delete(ctx: Inbound, activity: dict[str, Any]) -> None:
    """The author's delete (a soft delete, as locally); in a remote submolt, one by another actor announced by
    its Group is a moderator's removal. Local submolts are moderated here, through the services' rules."""
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
        await require_vouched(tx.conn, ctx, content, actor_url)
        agent = await load_agent(tx.conn, actor)
        if agent.id != content.author_id and ctx.announced_by is not None:
            group = await cs.get_submolt_row(tx.conn, content.submolt_id)
            if group is not None and not group.is_local and group.actor_url == ctx.announced_by:
                await _remove_for_remote_group(tx, content, agent.id, reason)  # its moderators' decision
                return
        try:
            if content.kind == "post":
                await posts_service.remove_post(tx.conn, agent, content.id, reason)
            else:
                await comments_service.remove_comment(tx.conn, agent, content.id, reason)
        except ReefError as exc:
            raise Permanent(f"delete refused: {exc.error}") from None
        await announce_if_local_group(ctx, tx, content.submolt_id, activity, actor.domain or "")


async def _remove_for_remote_group(tx: Tx, content: Content, moderator_id: Any, reason: str | None) -> None:
    """A removal in a remote submolt, announced by its Group: Lemmy's moderators are that Group's, not ours,
    so the services' local-moderator check cannot apply; the removal's rules and counters are removals'."""
    if content.kind == "post":
        await removals.take_down_post(tx.conn, content.id, removed_by=moderator_id, reason=reason)
    else:
        await removals.take_down_comment(tx.conn, content.id, removed_by=moderator_id, reason=reason)


async def handle_undo_removal(ctx: Inbound, activity: dict[str, Any]) -> None:
    """Undo{Delete or Remove by a moderator}: the removal is lifted. Taken on the word of the remote submolt's
    Group, as the removal is (handle_delete): announced by the Group with the actor of the removal undoing it
    (Lemmy's moderators), or sent by the Group itself. Refused from anybody else, and for local submolts, whose
    moderators are this node's; an author's own delete stays final, as locally."""
    inner = activity.get("object")
    actor_url = first_id(activity.get("actor"))
    if not isinstance(inner, dict):
        raise Permanent("an Undo of a removal must carry the removal")
    remover_url = first_id(inner.get("actor"))
    async with ctx.app[appkeys.POOL].acquire() as conn:
        content = await find_content(conn, ctx.cfg, first_id(inner.get("object")))
        if content is None:
            return  # never had it
        group = await cs.get_submolt_row(conn, content.submolt_id)
        author = await cs.get_agent_row(conn, content.author_id)
    if group is None or group.is_local:
        raise Permanent("removals in local submolts are undone by this node's moderators")
    by_group = actor_url == group.actor_url
    announced = ctx.announced_by == group.actor_url and remover_url == actor_url
    if not (by_group or announced):
        raise Permanent(f"only m/{group.name}'s Group or its moderators, announced by it, may undo a removal there")
    if author is not None and remover_url is not None and remover_url == author.actor_url:
        log.info("ignoring the author's Undo(%s) of %s: deletes are final", get_type(inner), inner.get("object"))
        return
    async with ctx.transaction() as tx:
        await _restore_for_remote_group(tx, content)


async def _restore_for_remote_group(tx: Tx, content: Content) -> None:
    """The removal lifted (an author's delete stays); counters move back as removals moves them."""
    if content.kind == "post":
        await removals.bring_back_post(tx.conn, content.id)
    else:
        await removals.bring_back_comment(tx.conn, content.id)


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
                out = Outbox()
                await messages_service.deliver_to(tx.conn, out, ctx.dm_config, agent, name, text)
                await out.publish(tx.bus)  # held by the inbox's bus until its transaction commits
            except ReefError as exc:
                raise Permanent(f"message to {name} refused: {exc.error}") from None
