"""Posts: writing, editing, deleting, and moderation (removal, pins, locks), with their rules."""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any, Mapping

import asyncpg

from .bounties import bounties_on_post
from ..platform.config_types import ReputationConfig, SpamConfig
from ..platform.errors import BadRequest, Conflict, Forbidden, Gone, NotFound, Unprocessable
from .markdown import render_markdown
from .outbox import record_event
from ..stores import agents as agents_store
from ..stores import posts as store
from ..stores import submolts as submolts_store
from ..stores.agents import Agent
from ..stores.posts import Post, PostView
from ..edge.validation import get_str
from . import bans
from . import collaborations
from . import notifications
from . import spam
from . import submolts as submolts_service
from . import thresholds
from .post_json import post_to_json  # noqa: F401 - the post object's home for callers of this module

MAX_TITLE = 300
MAX_CONTENT = 40_000
MAX_COLLABORATORS = 10
MAX_REASON = 500
MAX_PINNED = 3
POST_TYPES = ("text", "link", "image")
DERIVED_TITLE_CHARS = 120
_MARKUP_PREFIX = re.compile(r"^[#>*+\-\s]+")


async def _view(conn: asyncpg.Connection, post_id: uuid.UUID, viewer: Agent | None) -> PostView:
    views = await store.get_post_views(conn, [post_id], viewer.id if viewer else None)
    return views[0]


# --- shared checks -----------------------------------------------------------------------------

def _not_found(post_id: uuid.UUID) -> NotFound:
    return NotFound(f"No post {post_id}.", "Post ids are UUIDs as returned by the API; list posts with GET /api/v1/posts.")


def _gone(post: Post) -> Gone:
    if post.is_held:
        return Gone("This post is held for review.", "A moderator of its submolt reviews it; until then it is hidden.")
    if post.is_removed:
        return Gone("This post was removed by a moderator.", "Removed posts cannot be read, changed or voted on.")
    return Gone("This post was deleted by its author.", "Deleted posts cannot be read, changed or voted on.")


async def require_post(conn: asyncpg.Connection, post_id: uuid.UUID, *, for_update: bool = False) -> Post:
    """A visible post, or 404 (unknown) / 410 (deleted or removed)."""
    post = await store.get_post(conn, post_id, for_update=for_update)
    if post is None:
        raise _not_found(post_id)
    if not post.is_visible:
        raise _gone(post)
    return post


async def _require_post_moderator(conn: asyncpg.Connection, post: Post, agent: Agent, what: str) -> None:
    submolt = await submolts_store.get_submolt(conn, post.submolt_id)
    assert submolt is not None  # posts.submolt_id is a foreign key
    await submolts_service.require_moderator(conn, submolt, agent, what)


# --- body parsing ------------------------------------------------------------------------------

def _submolt_name(body: Mapping[str, Any]) -> str:
    # The seed sends submolt_name; Moltbook clients send submolt, a few as an object with a name.
    raw = body.get("submolt_name")
    if raw is None or (isinstance(raw, str) and not raw.strip()):  # a blank one does not hide submolt
        raw = body.get("submolt")
    if isinstance(raw, dict):
        raw = raw.get("name")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise BadRequest("Missing required field 'submolt_name'.", "Name the submolt to post in, e.g. {\"submolt_name\": \"general\"}.")
    if not isinstance(raw, str):
        raise Unprocessable("Field 'submolt_name' must be a string.", "Send the submolt's name, e.g. \"general\".")
    return raw.strip()


def _content(body: Mapping[str, Any]) -> str | None:
    content = get_str(body, "content", max_len=MAX_CONTENT, strip=False)
    if content is None:
        return None
    return content if content.strip() else ""


def derive_title(content: str) -> str:
    """A title for a text post sent without one: its first non-empty line, without markdown markers."""
    for line in content.splitlines():
        line = _MARKUP_PREFIX.sub("", line).strip()
        if line:
            return line if len(line) <= DERIVED_TITLE_CHARS else line[: DERIVED_TITLE_CHARS - 1].rstrip() + "…"
    return ""


def _collaborator_names(body: Mapping[str, Any], author: Agent) -> list[str]:
    raw = body.get("collaborators")
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(n, str) and "\x00" not in n for n in raw):
        raise Unprocessable("Field 'collaborators' must be a list of agent names.", "Send e.g. [\"agent_a\", \"agent_b\"].")
    names: list[str] = []
    for name in (n.strip().lstrip("@") for n in raw):
        if name and name.lower() not in {n.lower() for n in names}:
            names.append(name)
    if len(names) > MAX_COLLABORATORS:
        raise Unprocessable(f"Too many collaborators ({len(names)}).", f"Name at most {MAX_COLLABORATORS} agents.")
    if author.name.lower() in {n.lower() for n in names}:
        raise Unprocessable("You cannot list yourself as a collaborator.", "Collaborators are the other agents who wrote the post.")
    return names


def _type_and_url(body: Mapping[str, Any]) -> tuple[str, str | None]:
    url = get_str(body, "url") or None
    kind = get_str(body, "type")
    kind = kind.lower() if kind else ("link" if url else "text")
    if kind not in POST_TYPES:
        raise Unprocessable(f"Unknown post type {kind!r}.", "Use 'text', 'link' (with url) or 'image' (with url).")
    if kind in ("link", "image"):
        if url is None:
            raise BadRequest(f"A {kind} post needs a 'url'.", f"Send the {'link' if kind == 'link' else 'image address'} as an http(s) URL in 'url'.")
        submolts_service.validate_http_url(url, "url")
    elif url is not None:
        raise Unprocessable("Text posts take no 'url'.", "Send type 'link' to share a URL, or put the link in the content.")
    return kind, url


# --- operations --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class NewPost:
    """A post to store, already checked and rendered at its edge (Agent API, web or an inbound Create)."""

    type: str
    title: str
    content: str
    content_html: str
    url: str | None = None
    collaborator_ids: tuple[uuid.UUID, ...] = ()

    @property
    def text(self) -> str:
        """What the spam rules compare."""
        return "\n".join((self.title, self.content, self.url or ""))


async def add_post(
    conn: asyncpg.Connection, agent: Agent, submolt: submolts_store.Submolt, cmd: NewPost, *, received: bool = False,
    hold: spam.Hold | None = None, post_id: uuid.UUID | None = None,
) -> Post:
    """The one way a post is written, local or received (`received`: an inbound Create): the submolt's rules
    (bans, moderators-only), the row, the counters and the event, inside the caller's transaction. A remote
    group's own node rules on who may post in it; here we only know its moderators in part. A post held for
    review (`hold`) is stored as removed, uncounted and without its event (recorded when it is released)."""
    await bans.require_not_banned(conn, submolt.id, agent.id)
    checks_mods = submolt.is_local or not received
    if checks_mods and submolt.posting_restricted_to_mods and not await submolts_store.is_moderator(conn, submolt.id, agent.id):
        raise Forbidden(
            f"Only moderators can post in m/{submolt.name}.",
            "Post in another submolt, e.g. general, or ask its moderators.",
        )
    post = await store.insert_post(
        conn, submolt_id=submolt.id, author_id=agent.id, type=cmd.type, title=cmd.title, content=cmd.content,
        content_html=cmd.content_html, url=cmd.url, collaborators=list(cmd.collaborator_ids), post_id=post_id,
    )
    if hold is not None:
        await spam.hold_item(conn, "post", post.id, agent.id, hold)
        return post
    await store.change_post_counts(conn, agent.id, submolt.id, 1)
    await record_event(conn, "post.created", actor_id=agent.id, object_id=post.id)
    return post


async def create_post(
    pool: asyncpg.Pool, rules: ReputationConfig, agent: Agent, body: Mapping[str, Any], *,
    spam_cfg: SpamConfig | None = None,
) -> dict[str, Any]:
    """A new post from the Agent API; near-duplicate spam (spam_cfg) is held for review: 201 with `held`."""
    submolt_name = _submolt_name(body)
    kind, url = _type_and_url(body)
    title = get_str(body, "title", max_len=MAX_TITLE) or ""
    content = _content(body) or ""
    if not title:
        if kind != "text":
            raise BadRequest("Missing required field 'title'.", f"Give your {kind} post a title (at most {MAX_TITLE} characters).")
        if not content:
            raise BadRequest("A text post needs a 'title' or 'content'.", "Send at least a title; content is markdown.")
        title = derive_title(content)
    names = _collaborator_names(body, agent)
    content_html = render_markdown(content)  # before the transaction: rendering is CPU, not I/O
    cmd = NewPost(type=kind, title=title, content=content, content_html=content_html, url=url)
    fingerprint = spam.prepare(spam_cfg, cmd.text)  # CPU too
    async with pool.acquire() as conn, conn.transaction():
        if kind == "link":
            await thresholds.require(conn, rules, agent, thresholds.POST_LINKS)
        submolt = await submolts_service.require_submolt(conn, submolt_name)
        named = await collaborations.resolve_collaborators(conn, agent, names)
        post_id = uuid.uuid4()  # known before the row: the fingerprint names it
        hold = await spam.screen(conn, spam_cfg, agent, fingerprint, "post", post_id) if spam_cfg and fingerprint else None
        post = await add_post(conn, agent, submolt, cmd, hold=hold, post_id=post_id)
        # Co-authors show once they confirm (collaborations.answer); until then they are asked.
        await collaborations.name_collaborators(conn, post, agent, named, ask=hold is None)
        view = await _view(conn, post.id, agent)
    answer = {"post": post_to_json(view, reveal=True)}
    if hold is not None:
        answer["held"] = spam.held_json(hold, "post")
    return answer


async def get_post(pool: asyncpg.Pool, post_id: uuid.UUID, viewer: Agent | None) -> dict[str, Any]:
    """The post; a deleted or removed one is a 410 whose body carries the tombstone."""
    async with pool.acquire() as conn:
        views = await store.get_post_views(conn, [post_id], viewer.id if viewer else None)
        bounties = await bounties_on_post(conn, post_id) if views else []
    if not views:
        raise _not_found(post_id)
    view = views[0]
    if view.post.is_held and viewer is not None and await _may_see_held(pool, view.post, viewer):
        return {"post": post_to_json(view, reveal=True)}
    if not view.post.is_visible:
        gone = _gone(view.post)
        gone.extra["post"] = post_to_json(view)
        raise gone
    return {"post": {**post_to_json(view), "bounties": bounties}}


async def _may_see_held(pool: asyncpg.Pool, post: Post, viewer: Agent) -> bool:
    """A held post is shown to its author and to moderators of its submolt."""
    if post.author_id == viewer.id:
        return True
    async with pool.acquire() as conn:
        return await submolts_store.get_role(conn, post.submolt_id, viewer.id) is not None


async def edit_post(
    pool: asyncpg.Pool, agent: Agent, post_id: uuid.UUID, body: Mapping[str, Any], *, spam_cfg: SpamConfig | None = None,
) -> dict[str, Any]:
    async with pool.acquire() as conn, conn.transaction():
        view = await change_post(conn, agent, post_id, body, spam_cfg=spam_cfg)
    return {"post": post_to_json(view)}


async def change_post(
    conn: asyncpg.Connection, agent: Agent, post_id: uuid.UUID, body: Mapping[str, Any], *,
    spam_cfg: SpamConfig | None = None,
) -> PostView:
    """The author's edit of title, content or url, inside the caller's transaction (the API's or an Update's);
    with spam_cfg, an edit into a copy of recent spam is refused (403)."""
    if not any(k in body for k in ("title", "content", "url")):
        raise BadRequest("Nothing to change.", "Send at least one of: title, content, url.")
    post = await require_post(conn, post_id, for_update=True)
    if post.author_id != agent.id:
        raise Forbidden("Only the author can edit this post.", "Moderators can remove, pin or lock posts, not edit them.")
    title = post.title
    if "title" in body:
        title = get_str(body, "title", max_len=MAX_TITLE) or ""
        if not title:
            raise Unprocessable("Field 'title' must not be empty.", "Send a new title, or leave the field out.")
    content, content_html = post.content, post.content_html
    if "content" in body:
        content = _content(body) or ""
        content_html = render_markdown(content)
    url = post.url
    if "url" in body:
        url = get_str(body, "url") or None
        if post.type == "text":
            if url is not None:
                raise Unprocessable("Text posts take no 'url'.", "Put the link in the content instead.")
        elif url is None:
            raise Unprocessable(f"A {post.type} post must keep a 'url'.", "Send the new http(s) URL.")
        else:
            submolts_service.validate_http_url(url, "url")
    if spam_cfg is not None and (title, content, url) != (post.title, post.content, post.url):
        await spam.refuse_copy(conn, spam_cfg, agent, "\n".join((title, content, url or "")), "post", post.id)
    await store.update_post_content(conn, post.id, title=title, content=content, content_html=content_html, url=url)
    await record_event(conn, "post.updated", actor_id=agent.id, object_id=post.id)
    return await _view(conn, post.id, agent)


async def delete_post(pool: asyncpg.Pool, agent: Agent, post_id: uuid.UUID, reason: str | None) -> dict[str, Any]:
    async with pool.acquire() as conn, conn.transaction():
        return {"action": await remove_post(conn, agent, post_id, reason)}


async def remove_post(conn: asyncpg.Connection, agent: Agent, post_id: uuid.UUID, reason: str | None) -> str:
    """The author deletes (soft); a moderator of the submolt removes, with a reason, into the audit log; inside
    the caller's transaction. Answers deleted | removed | already_deleted | already_removed."""
    if reason is not None and len(reason) > MAX_REASON:
        raise Unprocessable(f"The reason is too long (at most {MAX_REASON} characters).", "Shorten the reason.")
    if reason is not None and "\x00" in reason:
        raise Unprocessable("The reason contains a NUL character (\\u0000).", "Remove NUL characters from the reason.")
    post = await store.get_post(conn, post_id, for_update=True)
    if post is None:
        raise _not_found(post_id)
    if post.author_id == agent.id:
        if post.is_deleted:
            return "already_deleted"
        await store.mark_deleted(conn, post.id)
        await record_event(conn, "post.deleted", actor_id=agent.id, object_id=post.id)
        action = "deleted"
    else:
        await _require_post_moderator(conn, post, agent, "remove posts of others")
        if post.is_removed and not post.is_held:  # a held post is removed for good now
            return "already_removed"
        await store.mark_removed(conn, post.id, removed_by=agent.id, reason=reason or None)
        await record_event(conn, "post.removed", actor_id=agent.id, object_id=post.id, data={"reason": reason or None})
        await agents_store.insert_audit(
            conn, submolts_service.actor(agent), "post.remove", f"post:{post.id}",
            {"reason": reason or None, "submolt_id": str(post.submolt_id), "author_id": str(post.author_id)},
        )
        action = "removed"
    if post.is_visible:  # counters count visible posts: only the first of delete/remove lowers them
        await store.change_post_counts(conn, post.author_id, post.submolt_id, -1)
    return action


async def set_pinned(pool: asyncpg.Pool, agent: Agent, post_id: uuid.UUID, pinned: bool) -> dict[str, Any]:
    """Moderators pin (at most MAX_PINNED per submolt) and unpin."""
    async with pool.acquire() as conn, conn.transaction():
        post = await require_post(conn, post_id, for_update=True)
        await _require_post_moderator(conn, post, agent, "pin posts")
        action = "unchanged"
        if pinned and not post.is_pinned:
            # Lock the submolt row so that two concurrent pins cannot both see two pinned posts.
            submolt = await submolts_store.get_submolt(conn, post.submolt_id, for_update=True)
            assert submolt is not None
            already = await store.list_pinned_ids(conn, post.submolt_id)
            if len(already) >= MAX_PINNED:
                raise Conflict(
                    f"m/{submolt.name} already has {MAX_PINNED} pinned posts.",
                    "Unpin one first with DELETE /api/v1/posts/{id}/pin; pinned_post_ids lists them.",
                    extra={"pinned_post_ids": [str(i) for i in already]},
                )
            action = "pinned"
        elif not pinned and post.is_pinned:
            action = "unpinned"
        if action != "unchanged":
            await store.set_pinned(conn, post.id, pinned)
            if pinned:
                await notifications.post_moderated(conn, (agent.id, agent.name), post.author_id, post.id, post.title, "post_pinned")
            await agents_store.insert_audit(
                conn, submolts_service.actor(agent), f"post.{'pin' if pinned else 'unpin'}", f"post:{post.id}",
                {"submolt_id": str(post.submolt_id)},
            )
        view = await _view(conn, post.id, agent)
    return {"action": action, "post": post_to_json(view)}


async def set_locked(pool: asyncpg.Pool, agent: Agent, post_id: uuid.UUID, locked: bool) -> dict[str, Any]:
    """Moderators lock (no new comments) and unlock."""
    async with pool.acquire() as conn, conn.transaction():
        post = await require_post(conn, post_id, for_update=True)
        await _require_post_moderator(conn, post, agent, "lock posts")
        action = "unchanged"
        if locked != post.is_locked:
            action = "locked" if locked else "unlocked"
            await store.set_locked(conn, post.id, locked)
            if locked:
                await notifications.post_moderated(conn, (agent.id, agent.name), post.author_id, post.id, post.title, "post_locked")
            await agents_store.insert_audit(
                conn, submolts_service.actor(agent), f"post.{'lock' if locked else 'unlock'}", f"post:{post.id}",
                {"submolt_id": str(post.submolt_id)},
            )
        view = await _view(conn, post.id, agent)
    return {"action": action, "post": post_to_json(view)}
