"""Posts and comments as ActivityPub objects (Page, Note, Tombstone), and their GET handlers."""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from urllib.parse import quote

import asyncpg
from aiohttp import web

from node.platform import appkeys
from node.platform.config import Config
from node.platform.errors import NotFound

from . import gate, urls
from . import object_store as store
from .jsonld import AS_CONTEXT, CONTEXT, REEF_NS
from .object_store import CommentObject, PostObject


def iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _with_context(doc: dict[str, Any], context: bool) -> dict[str, Any]:
    return {"@context": CONTEXT, **doc} if context else doc


def tombstone(object_id: str, former_type: str, deleted: dt.datetime | None, *, context: bool = True) -> dict[str, Any]:
    doc: dict[str, Any] = {"type": "Tombstone", "id": object_id, "formerType": former_type}
    if deleted is not None:
        doc["deleted"] = iso(deleted)
    return _with_context(doc, context)


def post_ap_id(cfg: Config, p: PostObject) -> str:
    return urls.post_id_url(cfg, p.id, p.is_local, p.ap_id)


def comment_ap_id(cfg: Config, c: CommentObject) -> str:
    return urls.comment_id_url(cfg, c.id, c.is_local, c.ap_id)


def post_to_ap(cfg: Config, p: PostObject, *, context: bool = True) -> dict[str, Any]:
    """A post as Lemmy's Page: to its Group and Public, audience the Group; a Tombstone once deleted/removed."""
    object_id = post_ap_id(cfg, p)
    if p.is_deleted or p.is_removed:
        return tombstone(object_id, "Page", p.deleted_at or p.edited_at, context=context)
    group = urls.submolt_actor(cfg, p.submolt_name, p.submolt_is_local, p.submolt_actor_url)
    doc: dict[str, Any] = {
        "type": "Page",
        "id": object_id,
        "attributedTo": urls.agent_actor(cfg, p.author_name, p.author_is_local, p.author_actor_url),
        "to": [group, urls.PUBLIC],
        "cc": [],
        "audience": group,
        "name": p.title,
        "content": p.content_html,
        "mediaType": "text/html",
        "source": {"content": p.content, "mediaType": "text/markdown"},
        "sensitive": False,
        "commentsEnabled": not p.is_locked,
        "stickied": p.is_pinned,
        "published": iso(p.created_at),
    }
    if p.url:
        doc["attachment"] = [{"type": "Link", "href": p.url}]
        if p.type == "image":
            doc["image"] = {"type": "Image", "url": p.url}
    if p.edited_at is not None:
        doc["updated"] = iso(p.edited_at)
    return _with_context(doc, context)


def comment_to_ap(cfg: Config, c: CommentObject, *, context: bool = True) -> dict[str, Any]:
    """A comment as a Note inReplyTo its parent comment or post, cc its Group and the author it answers."""
    object_id = comment_ap_id(cfg, c)
    if c.is_deleted or c.is_removed:
        return tombstone(object_id, "Note", c.deleted_at or c.edited_at, context=context)
    author = urls.agent_actor(cfg, c.author_name, c.author_is_local, c.author_actor_url)
    group = urls.submolt_actor(cfg, c.submolt_name, c.submolt_is_local, c.submolt_actor_url)
    replied = urls.agent_actor(cfg, c.replied_name, c.replied_is_local, c.replied_actor_url)
    if c.parent_id is not None:
        in_reply_to = urls.comment_id_url(cfg, c.parent_id, bool(c.parent_is_local), c.parent_ap_id)
    else:
        in_reply_to = urls.post_id_url(cfg, c.post_id, c.post_is_local, c.post_ap_id)
    doc: dict[str, Any] = {
        "type": "Note",
        "id": object_id,
        "attributedTo": author,
        "to": [urls.PUBLIC],
        "cc": [group] + ([replied] if replied != author else []),
        "audience": group,
        "inReplyTo": in_reply_to,
        "content": c.content_html,
        "mediaType": "text/html",
        "source": {"content": c.content, "mediaType": "text/markdown"},
        "distinguished": False,
        "published": iso(c.created_at),
    }
    if c.edited_at is not None:
        doc["updated"] = iso(c.edited_at)
    return _with_context(doc, context)


async def post_document(conn: asyncpg.Connection, cfg: Config, post_id: uuid.UUID, *, context: bool = True) -> dict[str, Any] | None:
    """The Page (or Tombstone) of a post by id, read on the caller's connection; None when there is no post."""
    p = await store.get_post_object(conn, post_id)
    return post_to_ap(cfg, p, context=context) if p else None


async def comment_document(
    conn: asyncpg.Connection, cfg: Config, comment_id: uuid.UUID, *, context: bool = True
) -> dict[str, Any] | None:
    c = await store.get_comment_object(conn, comment_id)
    return comment_to_ap(cfg, c, context=context) if c else None


# --- GET /post/{id}, /comment/{id} ---------------------------------------------------------------


def _uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(f"No {what} {value[:40]!r}.", f"{what.capitalize()} ids are UUIDs.") from None


async def get_post(request: web.Request) -> web.StreamResponse:
    raw = request.match_info["id"]
    if not gate.wants_activity_json(request):
        return await gate.html_or_redirect(request, "post", f"/api/v1/posts/{quote(raw, safe='')}")
    gate.require_enabled(request)
    await gate.check_get(request)
    cfg = request.app[appkeys.CONFIG]
    async with request.app[appkeys.POOL].acquire() as conn:
        p = await store.get_post_object(conn, _uuid(raw, "post"))
    if p is None:
        raise NotFound(f"No post {raw!r}.", "The post may never have existed on this node.")
    if not p.is_local and p.ap_id:
        raise web.HTTPFound(p.ap_id)  # a copy of a remote post: its origin serves it
    doc = post_to_ap(cfg, p)
    return gate.ap_response(doc, status=410 if doc["type"] == "Tombstone" else 200)


async def get_comment(request: web.Request) -> web.StreamResponse:
    raw = request.match_info["id"]
    if not gate.wants_activity_json(request):
        return await gate.html_or_redirect(request, "comment", f"/api/v1/comments/{quote(raw, safe='')}")
    gate.require_enabled(request)
    await gate.check_get(request)
    cfg = request.app[appkeys.CONFIG]
    async with request.app[appkeys.POOL].acquire() as conn:
        c = await store.get_comment_object(conn, _uuid(raw, "comment"))
    if c is None:
        raise NotFound(f"No comment {raw!r}.", "The comment may never have existed on this node.")
    if not c.is_local and c.ap_id:
        raise web.HTTPFound(c.ap_id)
    doc = comment_to_ap(cfg, c)
    return gate.ap_response(doc, status=410 if doc["type"] == "Tombstone" else 200)


# --- attestations (a Reef extension; federation/attestations.py applies them) ------------------------

ATTESTATION_CONTEXT = [AS_CONTEXT, {"reef": REEF_NS, "Attestation": "reef:Attestation", "topic": "reef:topic",
                                    "subject": {"@id": "as:subject", "@type": "@id"}}]


def attestation_object(attester_url: str, target_url: str, target_id: Any, topic: str, statement: str | None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "type": "Attestation",
        "id": f"{attester_url}/attestations/{target_id}" + (f"/{quote(topic, safe='')}" if topic else ""),
        "attributedTo": attester_url,
        "subject": target_url,
        "topic": topic or None,
    }
    if statement is not None:
        obj["content"] = statement
    return obj
