"""Domain events become activities and one delivery row per target inbox, in one transaction (run by
federation.outbox_worker); the building blocks here also serve the inbox handlers (Accept, Announce)."""
from __future__ import annotations

import html
import logging
import uuid
from typing import Any, Awaitable, Callable, Iterable

import asyncpg

from node.platform.config import Config

from . import content_store as cs
from . import actors, object_store, policy, activity_store, urls
from .content_store import ActorRow
from .jsonld import CONTEXT
from .verification_objects import CONTEXT as VERIFICATION_CONTEXT, verification_object
from .objects import ATTESTATION_CONTEXT, attestation_object, comment_to_ap, iso, post_to_ap

log = logging.getLogger(__name__)


# --- building blocks (also used by the inbox handlers: Accept, Announce) ----------------------------


def new_activity_id(cfg: Config) -> str:
    return urls.activity_url(cfg, uuid.uuid4())


def actor_url(cfg: Config, row: ActorRow) -> str:
    if row.kind == "submolt":
        return urls.submolt_actor(cfg, row.name, row.is_local, row.actor_url)
    return urls.agent_actor(cfg, row.name, row.is_local, row.actor_url)


def announce(cfg: Config, group_url: str, activity: dict[str, Any]) -> dict[str, Any]:
    """FEP-1b12 as Lemmy shapes it: the Group re-shares a member's activity to its followers."""
    inner = {k: v for k, v in activity.items() if k != "@context"}
    return {
        "@context": CONTEXT,
        "id": new_activity_id(cfg),
        "type": "Announce",
        "actor": group_url,
        "to": [urls.PUBLIC],
        "cc": [urls.followers_url(group_url)],
        "audience": group_url,
        "object": inner,
    }


async def publish(
    conn: asyncpg.Connection, cfg: Config, activity: dict[str, Any], inboxes: Iterable[str | None], *, public: bool = True
) -> int:
    """Store an activity of a local actor and one delivery per remote inbox, in the caller's transaction.

    Inboxes on this node or on hosts the admin refuses are left out; with none left nothing is stored
    (events for local audiences cost nothing more). Returns the number of deliveries."""
    targets = {
        i for i in inboxes
        if i and not urls.is_local_url(cfg, i) and policy.federates_with(cfg, urls.host_of(i))
    }
    if not targets:
        return 0
    activity_id = await activity_store.insert_activity(conn, activity["id"], activity["actor"], activity["type"], activity, public)
    return await activity_store.insert_deliveries(conn, activity_id, targets)


def new_activity(cfg: Config, type_: str, actor: str, obj: Any, **fields: Any) -> dict[str, Any]:
    """An activity of a local actor with a fresh id (addressing and extra fields as keywords)."""
    return {"@context": CONTEXT, "id": new_activity_id(cfg), "type": type_, "actor": actor, "object": obj, **fields}


# --- events -> activities ---------------------------------------------------------------------------


class _Build:
    """The context one event is turned into activities with."""

    def __init__(self, conn: asyncpg.Connection, cfg: Config) -> None:
        self.conn = conn
        self.cfg = cfg

    async def local_agent(self, agent_id: uuid.UUID | None) -> ActorRow | None:
        if agent_id is None:
            return None
        row = await cs.get_agent_row(self.conn, agent_id)
        return row if row is not None and row.is_local else None

    async def target(
        self, kind: str, object_id: uuid.UUID
    ) -> tuple[str, uuid.UUID, uuid.UUID, uuid.UUID] | None:
        """A post's or comment's (kind) AP id, author, submolt and thread post; None if it is gone."""
        if kind == "post":
            refs = await cs.get_post_refs(self.conn, object_id)
            if refs is None:
                return None
            return urls.post_id_url(self.cfg, refs.id, refs.is_local, refs.ap_id), refs.author_id, refs.submolt_id, refs.id
        crefs = await cs.get_comment_refs(self.conn, object_id)
        if crefs is None:
            return None
        url = urls.comment_id_url(self.cfg, crefs.id, crefs.is_local, crefs.ap_id)
        return url, crefs.author_id, crefs.submolt_id, crefs.post_id

    async def agent_inbox(self, agent_id: uuid.UUID) -> str | None:
        row = await cs.get_agent_row(self.conn, agent_id)
        return None if row is None or row.is_local else row.delivery_inbox

    async def to_submolt(
        self, submolt_id: uuid.UUID, activity: dict[str, Any], direct: set[str | None],
        thread_post_id: uuid.UUID | None = None,
    ) -> int:
        """Route a member's activity about content of a submolt: a remote Group gets it in its inbox (and
        announces it); a local Group announces it to its remote followers, who then need no direct copy.
        The node of the thread's post holds the thread subscribed or not, so it hears of it too."""
        group = await cs.get_submolt_row(self.conn, submolt_id)
        assert group is not None
        if not group.is_local:
            return await publish(self.conn, self.cfg, activity, direct | {group.delivery_inbox})
        followers = set(await cs.remote_subscriber_inboxes(self.conn, submolt_id))
        post = await cs.get_post_refs(self.conn, thread_post_id) if thread_post_id is not None else None
        origin = await self.agent_inbox(post.author_id) if post is not None else None
        if origin:
            followers.add(origin)
        sent = 0
        if followers:
            sent += await publish(self.conn, self.cfg, announce(self.cfg, actor_url(self.cfg, group), activity), followers)
        return sent + await publish(self.conn, self.cfg, activity, direct - followers)


async def _post_event(b: _Build, ev: activity_store.OutboxEvent) -> int:
    actor = await b.local_agent(ev.actor_id)
    refs = await cs.get_post_refs(b.conn, ev.object_id) if ev.object_id else None
    if actor is None or refs is None:
        return 0
    obj = await object_store.get_post_object(b.conn, refs.id)
    assert obj is not None
    actor_id = actor_url(b.cfg, actor)
    page = post_to_ap(b.cfg, obj, context=False)
    group = urls.submolt_actor(b.cfg, obj.submolt_name, obj.submolt_is_local, obj.submolt_actor_url)
    addressing = {"to": [urls.PUBLIC], "cc": [group, urls.followers_url(actor_id)], "audience": group}
    direct: set[str | None] = set()
    if ev.kind in ("post.created", "post.updated"):
        activity = new_activity(b.cfg, "Create" if ev.kind == "post.created" else "Update", actor_id, page, **addressing)
        direct |= set(await cs.remote_follower_inboxes(b.conn, actor.id))
    elif ev.kind == "post.deleted":
        activity = new_activity(b.cfg, "Delete", actor_id, page["id"], **addressing)
        direct |= set(await cs.remote_follower_inboxes(b.conn, actor.id))
    else:  # post.removed by a moderator: Lemmy's Delete with a summary, sent to the author as well
        activity = new_activity(b.cfg, "Delete", actor_id, page["id"], **addressing)
        if (ev.data or {}).get("reason"):
            activity["summary"] = ev.data["reason"]
        direct.add(await b.agent_inbox(refs.author_id))
    return await b.to_submolt(refs.submolt_id, activity, direct)


async def _comment_event(b: _Build, ev: activity_store.OutboxEvent) -> int:
    actor = await b.local_agent(ev.actor_id)
    refs = await cs.get_comment_refs(b.conn, ev.object_id) if ev.object_id else None
    if actor is None or refs is None:
        return 0
    obj = await object_store.get_comment_object(b.conn, refs.id)
    assert obj is not None
    actor_id = actor_url(b.cfg, actor)
    note = comment_to_ap(b.cfg, obj, context=False)
    group = urls.submolt_actor(b.cfg, obj.submolt_name, obj.submolt_is_local, obj.submolt_actor_url)
    addressing = {"to": [urls.PUBLIC], "cc": [group], "audience": group}
    # The author answered is told directly (Lemmy: replies reach the parent's author even unsubscribed).
    direct: set[str | None] = {await b.agent_inbox(refs.replied_author_id)}
    if ev.kind in ("comment.created", "comment.updated"):
        activity = new_activity(b.cfg, "Create" if ev.kind == "comment.created" else "Update", actor_id, note, **addressing)
        direct |= set(await cs.remote_follower_inboxes(b.conn, actor.id))
    else:
        activity = new_activity(b.cfg, "Delete", actor_id, note["id"], **addressing)
        if ev.kind == "comment.removed":
            direct.add(await b.agent_inbox(refs.author_id))
            if (ev.data or {}).get("reason"):
                activity["summary"] = ev.data["reason"]
    return await b.to_submolt(refs.submolt_id, activity, direct, refs.post_id)


async def _restore_event(b: _Build, ev: activity_store.OutboxEvent) -> int:
    """A moderator's restore, as Lemmy federates it: Undo{the removal's Delete exactly as it was sent}, by the
    Delete's actor (whoever restores: receivers accept an Undo only from the actor of what it undoes), to the
    inboxes the removal reached, each copy as that one went: the Delete's inboxes get the Undo, and where the
    Group announced the Delete it announces the Undo. A removal that never went out is undone silently."""
    remover_id = (ev.data or {}).get("removed_by")
    remover = await b.local_agent(uuid.UUID(remover_id)) if remover_id else None
    if remover is None or ev.object_id is None:
        return 0
    target = await b.target("post" if ev.kind == "post.restored" else "comment", ev.object_id)
    if target is None:
        return 0
    object_url, author_id, submolt_id, post_id = target
    group_row = await cs.get_submolt_row(b.conn, submolt_id)
    assert group_row is not None
    group, remover_url = actor_url(b.cfg, group_row), actor_url(b.cfg, remover)
    sent = await activity_store.sent_removal(b.conn, remover_url, group, object_url)
    if sent is None:
        return 0
    delete, copies = sent
    inner = {k: v for k, v in delete.items() if k != "@context"}
    addressing = {k: delete[k] for k in ("to", "cc", "audience") if k in delete}
    undo = new_activity(b.cfg, "Undo", remover_url, inner, **addressing)
    if not any(c.inboxes for c in copies):  # the deliveries were pruned: route it as the removal was routed
        return await b.to_submolt(submolt_id, undo, {await b.agent_inbox(author_id)}, post_id)
    direct = {i for c in copies if c.type != "Announce" for i in c.inboxes}
    announced = {i for c in copies if c.type == "Announce" for i in c.inboxes}
    sent_count = 0
    if announced:
        sent_count += await publish(b.conn, b.cfg, announce(b.cfg, group, undo), announced)
    if direct:
        public = all(c.public for c in copies if c.type != "Announce")
        sent_count += await publish(b.conn, b.cfg, undo, direct, public=public)
    return sent_count


async def _vote_event(b: _Build, ev: activity_store.OutboxEvent) -> int:
    actor = await b.local_agent(ev.actor_id)
    data = ev.data or {}
    if actor is None or ev.object_id is None or data.get("target") not in ("post", "comment"):
        return 0
    target = await b.target(data["target"], ev.object_id)
    if target is None:
        return 0
    object_url, author_id, submolt_id, post_id = target
    group_row = await cs.get_submolt_row(b.conn, submolt_id)
    assert group_row is not None
    group = actor_url(b.cfg, group_row)
    actor_id = actor_url(b.cfg, actor)
    vote_type = "Like" if data.get("value") == 1 else "Dislike"
    if ev.kind == "vote.cast":
        activity = new_activity(b.cfg, vote_type, actor_id, object_url, audience=group)
    else:
        # Undo the vote as it was sent; if it never was (no remote audience then), rebuild it.
        original = await activity_store.latest_activity(b.conn, actor_id, ("Like", "Dislike"), object_url)
        inner = {k: v for k, v in original.items() if k != "@context"} if original else {
            "id": new_activity_id(b.cfg), "type": vote_type, "actor": actor_id, "object": object_url, "audience": group,
        }
        activity = new_activity(b.cfg, "Undo", actor_id, inner, audience=group)
    return await b.to_submolt(submolt_id, activity, {await b.agent_inbox(author_id)}, post_id)


async def _follow_event(b: _Build, ev: activity_store.OutboxEvent) -> int:
    """A local agent follows (or subscribes to) a remote actor: Follow, which waits for Accept; or Undo."""
    actor = await b.local_agent(ev.actor_id)
    if actor is None or ev.object_id is None:
        return 0
    is_sub = ev.kind.startswith("subscription.")
    target = await (cs.get_submolt_row(b.conn, ev.object_id) if is_sub else cs.get_agent_row(b.conn, ev.object_id))
    if target is None or target.is_local:
        return 0
    actor_id, target_id = actor_url(b.cfg, actor), actor_url(b.cfg, target)
    if ev.kind.endswith(".created"):
        activity = new_activity(b.cfg, "Follow", actor_id, target_id, to=[target_id])
        if is_sub:
            await cs.set_subscription_state(b.conn, actor.id, target.id, accepted=False, ap_id=activity["id"])
        else:
            await cs.set_follow_state(b.conn, actor.id, target.id, accepted=False, ap_id=activity["id"])
    else:
        original = await activity_store.latest_activity(b.conn, actor_id, ("Follow",), target_id)
        inner = {k: v for k, v in original.items() if k != "@context"} if original else {
            "id": new_activity_id(b.cfg), "type": "Follow", "actor": actor_id, "object": target_id,
        }
        activity = new_activity(b.cfg, "Undo", actor_id, inner, to=[target_id])
    return await publish(b.conn, b.cfg, activity, [target.delivery_inbox])


async def _dm_event(b: _Build, ev: activity_store.OutboxEvent) -> int:
    """A DM to a remote agent: a Note addressed to the recipient alone (Lemmy and Mastodon read it so)."""
    actor = await b.local_agent(ev.actor_id)
    msg = await cs.get_direct_message(b.conn, ev.object_id) if ev.object_id else None
    if actor is None or msg is None:
        return 0
    recipient = await cs.get_agent_row(b.conn, msg.recipient_id)
    if recipient is None or recipient.is_local:
        return 0
    actor_id, to = actor_url(b.cfg, actor), actor_url(b.cfg, recipient)
    paragraphs = "".join(f"<p>{html.escape(p)}</p>" for p in msg.content.split("\n\n") if p.strip())
    note = {
        "id": f"{b.cfg.base_url}/dm/{msg.id}", "type": "Note", "attributedTo": actor_id, "to": [to], "cc": [],
        "content": paragraphs or "<p></p>", "mediaType": "text/html",
        "source": {"content": msg.content, "mediaType": "text/markdown"}, "published": iso(msg.created_at),
    }
    activity = new_activity(b.cfg, "Create", actor_id, note, to=[to], cc=[])
    return await publish(b.conn, b.cfg, activity, [recipient.delivery_inbox], public=False)


async def _actor_update(b: _Build, actor: ActorRow, doc: dict[str, Any] | None, inboxes: list[str]) -> int:
    """Update{object: the actor document exactly as its URL serves it} by the actor itself, public, cc its
    followers collection: Mastodon's shape for a Person. (Lemmy sends a Group's Update by a moderator,
    announced by the Group; the event does not name the moderator.)"""
    if doc is None:
        return 0
    actor_id = actor_url(b.cfg, actor)
    obj = {k: v for k, v in doc.items() if k != "@context"}
    addressing: dict[str, Any] = {"to": [urls.PUBLIC], "cc": [urls.followers_url(actor_id)]}
    if actor.kind == "submolt":
        addressing["audience"] = actor_id
    return await publish(b.conn, b.cfg, new_activity(b.cfg, "Update", actor_id, obj, **addressing), inboxes)


async def _agent_updated(b: _Build, ev: activity_store.OutboxEvent) -> int:
    """A local agent changed its profile: its remote followers' servers (shared inboxes) hear of it now,
    instead of at their next daily refetch of the actor."""
    agent = await b.local_agent(ev.object_id or ev.actor_id)
    if agent is None:
        return 0
    inboxes = await cs.remote_follower_inboxes(b.conn, agent.id)
    if not inboxes:  # nobody remote follows: no document, no key, nothing stored
        return 0
    return await _actor_update(b, agent, await actors.local_agent_document(b.conn, b.cfg, agent.name), inboxes)


async def _submolt_updated(b: _Build, ev: activity_store.OutboxEvent) -> int:
    """A local submolt's settings changed: the Group tells its remote subscribers' servers."""
    group = await cs.get_submolt_row(b.conn, ev.object_id) if ev.object_id else None
    if group is None or not group.is_local:
        return 0
    inboxes = await cs.remote_subscriber_inboxes(b.conn, group.id)
    if not inboxes:
        return 0
    return await _actor_update(b, group, await actors.local_submolt_document(b.conn, b.cfg, group.name), inboxes)


async def _attestation_event(b: _Build, ev: activity_store.OutboxEvent) -> int:
    """attestation.created | updated | removed, by a local agent of a remote one: to the target's inbox only
    (the shape: federation/attestations.py)."""
    attester = await b.local_agent(ev.actor_id)
    target = await cs.get_agent_row(b.conn, ev.object_id) if ev.object_id else None
    if attester is None or target is None or target.is_local or not target.delivery_inbox:
        return 0
    data = ev.data or {}
    attester_id, removed = actor_url(b.cfg, attester), ev.kind == "attestation.removed"
    obj = attestation_object(attester_id, actor_url(b.cfg, target), target.id, data.get("topic") or "",
                                          None if removed else data.get("statement"))
    if removed:
        activity = new_activity(b.cfg, "Undo", attester_id, {"type": "Create", "actor": attester_id, "object": obj},
                                to=[target.actor_url])
    else:
        verb = "Create" if ev.kind == "attestation.created" else "Update"
        activity = new_activity(b.cfg, verb, attester_id, obj, to=[target.actor_url])
    activity["@context"] = ATTESTATION_CONTEXT
    return await publish(b.conn, b.cfg, activity, {target.delivery_inbox})


async def _verification_event(b: _Build, ev: activity_store.OutboxEvent) -> int:
    """verification.sent: a local agent verified a remote contribution; Create{Verification} to the claimant's
    inbox (the shape: federation/verifications.py)."""
    verifier = await b.local_agent(ev.actor_id)
    claimant = await cs.get_agent_row(b.conn, ev.object_id) if ev.object_id else None
    contribution = (ev.data or {}).get("contribution")
    if verifier is None or claimant is None or claimant.is_local or not claimant.delivery_inbox or not contribution:
        return 0
    verifier_url = actor_url(b.cfg, verifier)
    obj = verification_object(verifier_url, contribution, (ev.data or {}).get("note"))
    activity = new_activity(b.cfg, "Create", verifier_url, obj, to=[claimant.actor_url])
    activity["@context"] = VERIFICATION_CONTEXT
    return await publish(b.conn, b.cfg, activity, {claimant.delivery_inbox})


_BUILDERS: dict[str, Callable[[_Build, activity_store.OutboxEvent], Awaitable[int]]] = {
    "post.created": _post_event, "post.updated": _post_event, "post.deleted": _post_event, "post.removed": _post_event,
    "comment.created": _comment_event, "comment.updated": _comment_event,
    "comment.deleted": _comment_event, "comment.removed": _comment_event,
    "post.restored": _restore_event, "comment.restored": _restore_event,
    "vote.cast": _vote_event, "vote.removed": _vote_event,
    "follow.created": _follow_event, "follow.removed": _follow_event,
    "subscription.created": _follow_event, "subscription.removed": _follow_event,
    "dm.sent": _dm_event,
    "agent.updated": _agent_updated, "submolt.updated": _submolt_updated,
    "attestation.created": _attestation_event, "attestation.updated": _attestation_event,
    "attestation.removed": _attestation_event,
    "verification.sent": _verification_event,
}


async def process_event(conn: asyncpg.Connection, cfg: Config, ev: activity_store.OutboxEvent) -> int:
    """The activities and deliveries of one event (none when nobody remote is concerned)."""
    if not cfg.federation.enabled:
        return 0
    builder = _BUILDERS.get(ev.kind)
    if builder is None:
        return 0
    return await builder(_Build(conn, cfg), ev)
