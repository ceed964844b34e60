"""What inbox handlers share: the processing transaction, error kinds, and lookups of remote things."""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import asyncpg
from aiohttp import web

from node.platform import appkeys
from node.platform import config as config_mod
from node.realtime.state import REALTIME
from node.stores import agents as agents_store
from node.stores.agents import Agent

from . import actor_store, outbox, inbox_store, urls
from . import content_store as cs
from .actor_store import RemoteActor
from .fetch import FetchError, FetchGone, FetchNotFound, FetchRefused, fetcher_of
from .jsonld import first_id, get_str, get_type, ids
from .resolve import html_to_text, resolve_actor

log = logging.getLogger(__name__)


class Permanent(Exception):
    """The activity cannot be applied, now or ever (unknown target, refused by a rule): recorded, not retried."""


class Transient(Exception):
    """The activity could not be applied now (a peer did not answer): retried with backoff."""


class AlreadyDone(Exception):
    """Another worker (or an earlier copy of the activity) already applied it."""


class BufferedBus:
    """Realtime publishes made inside the processing transaction, sent only once it has committed."""

    def __init__(self, bus: Any) -> None:
        self._bus = bus
        self._calls: list[tuple[str, tuple[Any, ...]]] = []

    async def publish_events(self, deliveries: list[tuple[uuid.UUID, int]], type_: str, payload: dict[str, Any]) -> None:
        self._calls.append(("publish_events", (deliveries, type_, payload)))

    async def publish_frame(self, agent_ids: list[uuid.UUID], frame: dict[str, Any]) -> None:
        self._calls.append(("publish_frame", (agent_ids, frame)))

    async def flush(self) -> None:
        calls, self._calls = self._calls, []
        if self._bus is None:
            return
        for name, args in calls:
            await getattr(self._bus, name)(*args)


@dataclass
class Tx:
    """One processing transaction: its connection (the services' functions take it) and a deferred bus."""

    conn: asyncpg.Connection
    bus: BufferedBus


@dataclass
class Inbound:
    """One received activity being processed (item_id None: a document fetched on our own initiative)."""

    app: web.Application
    item_id: int | None
    announced_by: str | None = None  # the Group whose Announce carried the activity
    seen_ids: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)  # inner activities
    committed: bool = False

    @property
    def cfg(self) -> config_mod.Config:
        return self.app[appkeys.CONFIG]

    def inner(self, group: str) -> "Inbound":
        return dataclasses.replace(self, announced_by=group, seen_ids=list(self.seen_ids))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """The transaction that applies the activity and marks it processed; AlreadyDone when it was."""
        rt = self.app.get(REALTIME)
        bus = BufferedBus(rt.bus if rt is not None else None)
        async with self.app[appkeys.POOL].acquire() as conn:
            async with conn.transaction():
                if self.item_id is not None and not await inbox_store.lock_unprocessed_inbox_item(conn, self.item_id):
                    raise AlreadyDone()
                for ap_id, actor, type_, body in self.seen_ids:
                    # An announced activity is applied once, however many Groups (or the author) send it.
                    if not await inbox_store.insert_inbox_activity(conn, ap_id, actor, type_, body, processed=True):
                        raise AlreadyDone()
                yield Tx(conn, bus)
                if self.item_id is not None:
                    await inbox_store.mark_inbox_processed(conn, self.item_id)
        self.committed = True
        await bus.flush()

    @property
    def dm_config(self) -> config_mod.Config:
        # The DM age rule keeps brand-new local accounts from spamming; a remote agent's age is its
        # own node's business (its row here is as old as our first sight of it).
        return config_mod.replace(self.cfg, limits={"dm_min_agent_age_hours": 0})


# --- remote things ---------------------------------------------------------------------------------


def fetch_errors_to_kinds(exc: FetchError) -> Exception:
    """Fetch failures sorted into what the processor does with them."""
    if isinstance(exc, (FetchGone, FetchNotFound, FetchRefused)):
        return Permanent(str(exc))
    return Transient(str(exc))


async def remote_actor(ctx: Inbound, actor_url: str | None) -> RemoteActor:
    if not actor_url:
        raise Permanent("the activity names no actor")
    try:
        return await resolve_actor(ctx.app, actor_url)
    except FetchError as exc:
        raise fetch_errors_to_kinds(exc) from None


async def remote_agent(ctx: Inbound, actor_url: str | None) -> RemoteActor:
    actor = await remote_actor(ctx, actor_url)
    if actor.kind != "agent":
        raise Permanent(f"{actor_url} is a {actor.kind}, not an agent")
    if actor.is_local:
        raise Permanent(f"{actor_url} is a local agent; its activities do not come through the inbox")
    return actor


async def fetch_document(ctx: Inbound, url: str) -> dict[str, Any]:
    """An object from its origin (the id is checked to be on the host that served it)."""
    try:
        return await fetcher_of(ctx.app).get_json(url)
    except FetchError as exc:
        raise fetch_errors_to_kinds(exc) from None


async def load_agent(conn: asyncpg.Connection, actor: RemoteActor) -> Agent:
    agent = await agents_store.get_agent(conn, actor.id)
    if agent is None:
        raise Permanent(f"agent row {actor.id} vanished")
    if agent.is_suspended:
        raise Permanent(f"{actor.handle} is suspended on this node")
    return agent


@dataclass(frozen=True, slots=True)
class Content:
    kind: str  # post | comment
    post: cs.PostRefs | None
    comment: cs.CommentRefs | None

    @property
    def id(self) -> uuid.UUID:
        return self.post.id if self.post else self.comment.id  # type: ignore[union-attr]

    @property
    def submolt_id(self) -> uuid.UUID:
        return self.post.submolt_id if self.post else self.comment.submolt_id  # type: ignore[union-attr]

    @property
    def author_id(self) -> uuid.UUID:
        return self.post.author_id if self.post else self.comment.author_id  # type: ignore[union-attr]


async def find_content(conn: asyncpg.Connection, cfg: config_mod.Config, url: str | None) -> Content | None:
    """The local row of a post or comment by its ActivityPub id (ours, or a remote one we hold)."""
    if not url:
        return None
    ref = urls.parse_local(cfg, url)
    if ref is not None:
        if ref.kind == "post" and ref.key:
            post = await cs.get_post_refs(conn, uuid.UUID(ref.key))
            return Content("post", post, None) if post else None
        if ref.kind == "comment" and ref.key:
            comment = await cs.get_comment_refs(conn, uuid.UUID(ref.key))
            return Content("comment", None, comment) if comment else None
        return None
    post = await cs.find_post_by_ap_id(conn, url)
    if post is not None:
        return Content("post", post, None)
    comment = await cs.find_comment_by_ap_id(conn, url)
    return Content("comment", None, comment) if comment else None


async def find_submolt(ctx: Inbound, obj: dict[str, Any]) -> cs.ActorRow | None:
    """The submolt a Page (or a Note meant as a post) is for: its audience, else a Group it is addressed to."""
    candidates: list[str] = []
    for value in (obj.get("audience"), obj.get("target"), obj.get("to"), obj.get("cc")):
        for url in ids(value):
            if url not in candidates and url not in urls.PUBLIC_ALIASES and not url.endswith("/followers"):
                candidates.append(url)
    cfg = ctx.cfg
    for url in candidates[:8]:
        ref = urls.parse_local(cfg, url)
        async with ctx.app[appkeys.POOL].acquire() as conn:
            if ref is not None:
                if ref.kind == "submolt" and ref.sub is None and ref.key:
                    row = await cs.get_submolt_row_by_name(conn, ref.key)
                    if row is not None:
                        return row
                continue
            known = await actor_store.find_actor_by_url(conn, url)
        if known is not None and known.kind != "submolt":
            continue
        try:
            actor = known if known is not None else await resolve_actor(ctx.app, url)
        except FetchError:
            continue  # a collection or someone we cannot read: not the Group
        if actor.kind == "submolt":
            async with ctx.app[appkeys.POOL].acquire() as conn:
                return await cs.get_submolt_row(conn, actor.id)
    return None


def markdown_of(obj: dict[str, Any]) -> str:
    """The text of a Page or Note: its markdown source when given, else its HTML as plain text."""
    source = obj.get("source")
    if isinstance(source, dict) and isinstance(source.get("content"), str) and source.get("mediaType") in (
        "text/markdown", "text/plain",
    ):
        return source["content"]
    return html_to_text(get_str(obj, "content") or "")


def published_of(obj: dict[str, Any]) -> dt.datetime | None:
    """The object's own date, when it is readable and not in the future."""
    raw = get_str(obj, "published")
    if not raw:
        return None
    try:
        at = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.timezone.utc)
    now = dt.datetime.now(dt.timezone.utc)
    return min(at, now)


def link_of(obj: dict[str, Any]) -> str | None:
    """A link post's URL: Lemmy's attachment Link (or an Image), else url when it is not the object itself."""
    for item in obj.get("attachment") or []:
        if isinstance(item, dict):
            href = item.get("href") or first_id(item.get("url"))
            if isinstance(href, str) and href.startswith(("http://", "https://")):
                return href
    return None


# --- shared by the handlers ------------------------------------------------------------------------


def strip_context(activity: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in activity.items() if k != "@context"}


async def announce_if_local_group(ctx: Inbound, tx: Tx, submolt_id: Any, activity: dict[str, Any], sender_host: str) -> None:
    """A member's activity about a local submolt's content: the Group announces it to its remote followers
    (FEP-1b12), except back to the sender's own server, which has it already."""
    if ctx.announced_by is not None:
        return
    group = await cs.get_submolt_row(tx.conn, submolt_id)
    if group is None or not group.is_local:
        return
    audience = set(await cs.remote_subscriber_inboxes(tx.conn, submolt_id))
    # The node of the thread's post holds the thread, subscribed or not (Lemmy #838: it never hears otherwise).
    obj = activity.get("object")
    about = first_id(obj.get("object")) if isinstance(obj, dict) and get_type(obj) in ("Like", "Dislike") else first_id(obj)
    content = await find_content(tx.conn, ctx.cfg, about)
    post_id = None if content is None else (content.id if content.kind == "post" else content.comment.post_id)  # type: ignore[union-attr]
    post = await cs.get_post_refs(tx.conn, post_id) if post_id is not None else None
    author = await cs.get_agent_row(tx.conn, post.author_id) if post is not None else None
    if author is not None and not author.is_local and author.delivery_inbox:
        audience.add(author.delivery_inbox)
    inboxes = [i for i in audience if urls.host_of(i) != sender_host]
    if inboxes:
        group_url = urls.submolt_url(ctx.cfg, group.name)
        await outbox.publish(tx.conn, ctx.cfg, outbox.announce(ctx.cfg, group_url, strip_context(activity)), inboxes)


async def find_content_by_id(conn: asyncpg.Connection, kind: str, target_id: Any) -> Content | None:
    if kind == "post":
        post = await cs.get_post_refs(conn, target_id)
        return Content("post", post, None) if post else None
    comment = await cs.get_comment_refs(conn, target_id)
    return Content("comment", None, comment) if comment else None


async def require_vouched(conn: asyncpg.Connection, ctx: Inbound, content: Content, actor_url: str | None) -> None:
    """An announced activity by an actor of another host than the Group is taken on the Group's word only
    for content of that Group's own submolt (a Group cannot speak for what happens elsewhere)."""
    if ctx.announced_by is None or urls.host_of(actor_url or "") == urls.host_of(ctx.announced_by):
        return
    group = await cs.get_submolt_row(conn, content.submolt_id)
    if group is None or group.is_local or group.actor_url != ctx.announced_by:
        raise Permanent(f"{ctx.announced_by} announced an activity about content of another submolt")
