"""Received activities applied through the node's services: follows, votes, actor updates, Group announces; dispatch."""
from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

from node.platform import appkeys
from node.platform.errors import ReefError
from node.services import follows as follows_service
from node.services import submolts as submolts_service
from node.services import votes as votes_service

from . import actor_store, outbox, urls
from . import attestations
from . import content_store as cs
from .content_handlers import handle_create, handle_delete, handle_undo_removal, ensure_content
from .content_handlers import handle_update as handle_content_update
from .fetch import FetchError
from .inbound import (
    Inbound, Permanent, Tx, announce_if_local_group, fetch_document, fetch_errors_to_kinds, find_content,
    find_content_by_id, load_agent, remote_actor, remote_agent, require_vouched, strip_context,
)
from .jsonld import first_id, get_type, has_type
from .resolve import AGENT_TYPES, GROUP_TYPES, resolve_actor, store_actor

log = logging.getLogger(__name__)


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
                followed = await follows_service.change_following(tx.conn, agent, ref.key, True)
                await cs.set_follow_state(tx.conn, agent.id, followed.target.id, accepted=True, ap_id=activity["id"])
                target = urls.agent_url(ctx.cfg, followed.target.name)
            else:
                submolt, _, _ = await submolts_service.change_subscription(tx.conn, agent, ref.key, True)
                await cs.set_subscription_state(tx.conn, agent.id, submolt.id, accepted=True, ap_id=activity["id"])
                target = urls.submolt_url(ctx.cfg, submolt.name)
        except ReefError as exc:
            raise Permanent(f"Follow refused: {exc.error}") from None
        accept = outbox.new_activity(ctx.cfg, "Accept", target, strip_context(activity), to=[follower.actor_url])
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
            await submolts_service.end_subscription(tx.conn, found.target_id, found.follower_id)
        else:
            await follows_service.end_follow(tx.conn, found.follower_id, found.target_id)


async def handle_undo(ctx: Inbound, activity: dict[str, Any]) -> None:
    inner = activity.get("object")
    actor_url = first_id(activity.get("actor"))
    if get_type(inner) in ("Delete", "Remove"):  # a restore: its own rules of who may (the Group may, too)
        await handle_undo_removal(ctx, activity)
        return
    if isinstance(inner, dict) and first_id(inner.get("actor")) not in (None, actor_url):
        raise Permanent("an Undo may only undo its own actor's activity")
    inner_type = get_type(inner)
    if inner_type == "Create" and isinstance(inner, dict) and attestations.is_attestation(inner.get("object")):
        await attestations.handle_withdrawal(ctx, activity, inner)
        return
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
                    await follows_service.change_following(tx.conn, agent, ref.key, False)
                else:
                    await submolts_service.change_subscription(tx.conn, agent, ref.key, False)
            except ReefError as exc:
                raise Permanent(f"Undo(Follow) refused: {exc.error}") from None
    elif inner_type in ("Like", "Dislike") or (inner_type is None and isinstance(inner, str)):
        await _undo_vote(ctx, activity, inner)
    elif inner_type in ("Announce", "Block", "Add", "Lock", "Flag"):
        log.info("ignoring Undo(%s) from %s", inner_type, actor_url)
    else:
        raise Permanent(f"Undo of {inner_type!r} is not supported")


async def _undo_vote(ctx: Inbound, activity: dict[str, Any], inner: Any) -> None:
    voter = await remote_agent(ctx, first_id(activity.get("actor")))
    async with ctx.transaction() as tx:
        agent = await load_agent(tx.conn, voter)
        vote = await cs.find_vote_by_ap_id(tx.conn, first_id(inner) or "")
        if vote is not None and vote.agent_id == agent.id:
            kind, target_id = vote.kind, vote.target_id
        else:
            content = await find_content(tx.conn, ctx.cfg, first_id(inner.get("object")) if isinstance(inner, dict) else None)
            if content is None:
                return  # a vote on something we never had: nothing to undo
            kind, target_id = content.kind, content.id
        content = await find_content_by_id(tx.conn, kind, target_id)
        if content is not None:
            await require_vouched(tx.conn, ctx, content, voter.actor_url)
        try:
            await votes_service.cast_vote(tx.conn, agent, kind, target_id, None, toggle=False)  # type: ignore[arg-type]
        except ReefError as exc:
            raise Permanent(f"Undo of the vote refused: {exc.error}") from None
        if content is not None:
            await announce_if_local_group(ctx, tx, content.submolt_id, activity, voter.domain or "")


# --- votes ----------------------------------------------------------------------------------------------


async def handle_vote(ctx: Inbound, activity: dict[str, Any]) -> None:
    """Like = upvote, Dislike = downvote, set idempotently; the vote keeps the activity id for its Undo."""
    voter = await remote_agent(ctx, first_id(activity.get("actor")))
    object_url = first_id(activity.get("object"))
    content = await ensure_content(ctx, object_url)
    value = 1 if get_type(activity) == "Like" else -1
    async with ctx.transaction() as tx:
        await require_vouched(tx.conn, ctx, content, voter.actor_url)
        agent = await load_agent(tx.conn, voter)
        try:
            await votes_service.cast_vote(tx.conn, agent, content.kind, content.id, value, toggle=False)  # type: ignore[arg-type]
        except ReefError as exc:
            raise Permanent(f"vote refused: {exc.error}") from None
        await cs.set_vote_ap_id(tx.conn, content.kind, content.id, agent.id, activity["id"])
        await announce_if_local_group(ctx, tx, content.submolt_id, activity, voter.domain or "")


# --- Update of an actor ----------------------------------------------------------------------------------

ACTOR_TYPES = tuple(sorted(AGENT_TYPES | GROUP_TYPES))


async def handle_update(ctx: Inbound, activity: dict[str, Any]) -> None:
    """An Update of an actor (its profile) or of a post or comment."""
    obj = activity.get("object")
    if (isinstance(obj, dict) and has_type(obj, *ACTOR_TYPES)) or (
        isinstance(obj, str) and obj == first_id(activity.get("actor"))
    ):
        await handle_actor_update(ctx, activity, obj)
    else:
        await handle_content_update(ctx, activity)


async def handle_actor_update(ctx: Inbound, activity: dict[str, Any], obj: dict[str, Any] | str) -> None:
    """A remote actor's new profile refreshes its stored agents or submolts row (name, summary, icon, key...).

    The document as sent is taken only from the actor itself: the inbox checked that the actor signed and that
    the object is on its host (or, announced, that the Group's own host vouches for both). Lemmy sends a
    Group's Update by a moderator: that copy is not the Group's word, so the Group is read from its origin.
    Anyone else's Update of an actor is refused. Actors never stored here are not stored for an Update."""
    actor_url = first_id(activity.get("actor"))
    object_url = first_id(obj)
    if not actor_url or not object_url:
        raise Permanent("Update of an actor without ids")
    async with ctx.app[appkeys.POOL].acquire() as conn:
        stored = await actor_store.find_actor_by_url(conn, object_url)
    if stored is None:
        log.info("ignoring an Update of %s, an actor this node does not hold", object_url)
        return
    if isinstance(obj, dict) and stored.kind != ("submolt" if has_type(obj, *GROUP_TYPES) else "agent"):
        what = "a submolt" if stored.kind == "submolt" else "an agent"
        raise Permanent(f"{object_url} is {what} here; an Update does not change what an actor is")
    if object_url == actor_url:
        if isinstance(obj, dict):
            try:
                await store_actor(ctx.app, obj)
                return
            except FetchError as exc:  # not a whole actor document (some send only what changed)
                log.info("reading %s from its origin: its Update did not carry a usable document (%s)", object_url, exc)
    elif stored.kind != "submolt" or urls.host_of(actor_url) != urls.host_of(object_url):
        raise Permanent("an actor may only update itself")
    try:
        await resolve_actor(ctx.app, object_url, refresh=True)
    except FetchError as exc:
        raise fetch_errors_to_kinds(exc) from None


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
