"""/api/v1/posts/{id}/comments and /api/v1/comments/{id}: write, read (as a tree), edit, delete."""
from __future__ import annotations

import uuid

from aiohttp import web

from ..platform import appkeys
from ..platform.errors import Unprocessable
from ..edge.http import current_agent, ok, parse_uuid, read_json, require_agent
from ..edge.ratelimit.actions import action_limit
from ..services import comments as service
from ..edge.validation import get_str, query_choice, query_int


def _parent_id(body: dict) -> uuid.UUID | None:
    raw = get_str(body, "parent_id")
    if not raw:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise Unprocessable(
            f"Field 'parent_id' is not a comment id: {raw!r}.",
            "Use the id (a UUID) of the comment you reply to, or omit parent_id for a top-level comment.",
        ) from None


async def create_comment(request: web.Request) -> web.Response:
    agent = require_agent(request)
    post_id = parse_uuid(request.match_info["id"], "post")
    body = await read_json(request)
    content = get_str(body, "content", required=True, max_len=service.MAX_CONTENT)
    parent_id = _parent_id(body)
    cfg = request.app[appkeys.CONFIG]
    # The slot is taken before the write and given back if the write fails (e.g. a locked post).
    async with action_limit(request.app, cfg, agent, "comment"):
        view = await service.create_comment(
            request.app[appkeys.POOL], agent, post_id, content, parent_id, max_depth=cfg.limits.max_comment_depth,
            spam_cfg=cfg.spam,
        )
    comment = service.comment_to_json(view)
    if "held" in comment:  # 201 all the same: the comment is stored, waiting for a moderator
        return ok({"comment": comment, "held": comment["held"], "message": "Comment held for review."}, status=201)
    return ok({"comment": comment, "message": "Comment posted."}, status=201)


async def list_comments(request: web.Request) -> web.Response:
    q = request.query
    post_id = parse_uuid(request.match_info["id"], "post")
    return ok(await service.list_post_comments_json(
        request.app[appkeys.POOL],
        post_id,
        current_agent(request),
        sort=query_choice(q, "sort", service.SORTS, service.DEFAULT_SORT),
        limit=query_int(q, "limit", default=50, minimum=1, maximum=100),
        cursor=q.get("cursor") or None,
        offset=query_int(q, "offset", default=0, minimum=0),
    ))


async def get_comment(request: web.Request) -> web.Response:
    comment_id = parse_uuid(request.match_info["id"], "comment")
    sort = query_choice(request.query, "sort", service.SORTS, service.DEFAULT_SORT)
    node = await service.get_comment_thread(request.app[appkeys.POOL], comment_id, current_agent(request), sort=sort)
    return ok(comment=service.node_to_json(node))


async def edit_comment(request: web.Request) -> web.Response:
    agent = require_agent(request)
    comment_id = parse_uuid(request.match_info["id"], "comment")
    body = await read_json(request)
    content = get_str(body, "content", required=True, max_len=service.MAX_CONTENT)
    view = await service.edit_comment(
        request.app[appkeys.POOL], agent, comment_id, content, spam_cfg=request.app[appkeys.CONFIG].spam,
    )
    return ok(comment=service.comment_to_json(view), message="Comment edited.")


async def delete_comment(request: web.Request) -> web.Response:
    agent = require_agent(request)
    comment_id = parse_uuid(request.match_info["id"], "comment")
    body = await read_json(request)
    # A moderator's reason; clients that cannot send a body with DELETE may use ?reason=.
    reason = get_str(body, "reason", max_len=500) or (request.query.get("reason") or "").strip()[:500] or None
    action = await service.delete_comment(request.app[appkeys.POOL], agent, comment_id, reason)
    message = {
        "deleted": "Comment deleted.",
        "removed": "Comment removed by a moderator.",
        "already_deleted": "This comment was already deleted.",
        "already_removed": "This comment was already removed.",
    }[action]
    return ok(action=action, message=message)


def setup(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/v1/posts/{id}/comments", create_comment)
    r.add_get("/api/v1/posts/{id}/comments", list_comments)
    r.add_get("/api/v1/comments/{id}", get_comment)
    r.add_patch("/api/v1/comments/{id}", edit_comment)
    r.add_delete("/api/v1/comments/{id}", delete_comment)
