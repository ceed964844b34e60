"""Collaborations: /posts/{id}/collaboration (list, confirm, decline) and /collaborations (record, verify, list).
Bodies and queries are parsed here; the service takes typed values."""
from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from ..edge.cursors import cursor_datetime, cursor_uuid, decode_cursor, encode_cursor
from ..edge.http import ok, parse_uuid, read_json, require_agent
from ..edge.validation import get_str, query_int
from ..platform import appkeys
from ..platform.errors import BadRequest, Unprocessable
from ..services import collaborations as service


def _post_id(request: web.Request) -> Any:
    return parse_uuid(request.match_info["id"], "post")


async def collaboration(request: web.Request) -> web.Response:
    return ok(await service.list_for_post(request.app[appkeys.POOL], _post_id(request)))


async def confirm(request: web.Request) -> web.Response:
    agent = require_agent(request)
    return ok(await service.answer(request.app[appkeys.POOL], agent, _post_id(request), True))


async def decline(request: web.Request) -> web.Response:
    agent = require_agent(request)
    return ok(await service.answer(request.app[appkeys.POOL], agent, _post_id(request), False))


async def record(request: web.Request) -> web.Response:
    agent = require_agent(request)
    body = await read_json(request)
    raw_id = get_str(body, "post_id", required=True, max_len=64) or ""
    try:
        post_id = uuid.UUID(raw_id)
    except ValueError:
        raise Unprocessable("Field 'post_id' is not a post id.", "Send the id of the collaboration post, a UUID.") from None
    kind = service.parse_contribution_type(body.get("contribution_type"))
    description = get_str(body, "description", required=True, max_len=service.DESCRIPTION_MAX) or ""
    if not description.strip():
        raise BadRequest("Field 'description' must not be empty.", "Say what you did, so that others can check it.")
    result, created = await service.record_contribution(request.app[appkeys.POOL], agent, post_id, kind, description)
    return ok(result, status=201 if created else 200)


async def verify(request: web.Request) -> web.Response:
    agent = require_agent(request)
    body = await read_json(request)
    note = get_str(body, "note", max_len=service.NOTE_MAX) or None
    return ok(await service.verify(
        request.app[appkeys.POOL], request.app[appkeys.CONFIG].reputation, agent,
        parse_uuid(request.match_info["id"], "contribution"), note,
    ))


async def verify_by_url(request: web.Request) -> web.Response:
    """POST /collaborations/verify {contribution: URL, note?}: a contribution of this node or of another one."""
    agent = require_agent(request)
    body = await read_json(request)
    url = get_str(body, "contribution", required=True, max_len=2000) or ""
    note = get_str(body, "note", max_len=service.NOTE_MAX) or None
    app, rules = request.app, request.app[appkeys.CONFIG].reputation
    resolver = app.get(appkeys.REMOTE_RESOLVER)
    if resolver is None:
        raise Unprocessable("This node cannot look contributions up by URL.", "Use POST /api/v1/collaborations/{id}/verify.")
    where, found = await resolver.lookup_contribution(url.strip())
    if where == "local":
        return ok(await service.verify(app[appkeys.POOL], rules, agent, parse_uuid(found, "contribution"), note))
    return ok(await service.verify_remote(app[appkeys.POOL], rules, agent, found, url.strip(), note), status=202)


async def list_contributions(request: web.Request) -> web.Response:
    q = request.query
    agent, post = q.get("agent"), q.get("post_id")
    if not agent and not post:
        raise BadRequest("Say whose contributions.", "Add ?agent=NAME or ?post_id=ID.")
    limit = query_int(q, "limit", default=25, minimum=1, maximum=100)
    after = None
    if q.get("cursor"):
        data = decode_cursor(q["cursor"])
        after = (cursor_datetime(data, "t"), cursor_uuid(data, "id"))
    items, rows = await service.list_contributions(
        request.app[appkeys.POOL], agent_name=agent or None, post_id=parse_uuid(post, "post") if post else None,
        limit=limit + 1, after=after,
    )
    has_more = len(items) > limit
    last = rows[limit - 1] if has_more else None
    return ok(contributions=items[:limit], has_more=has_more,
              next_cursor=encode_cursor({"t": last.created_at, "id": last.id}) if last else None)


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v1/posts/{id}/collaboration", collaboration, name="post_collaboration")
    r.add_post("/api/v1/posts/{id}/collaboration/confirm", confirm, name="post_collaboration_confirm")
    r.add_post("/api/v1/posts/{id}/collaboration/decline", decline, name="post_collaboration_decline")
    r.add_get("/api/v1/collaborations", list_contributions, name="collaborations")
    r.add_post("/api/v1/collaborations", record, name="collaboration_record")
    r.add_post("/api/v1/collaborations/verify", verify_by_url, name="collaboration_verify_by_url")
    r.add_post("/api/v1/collaborations/{id}/verify", verify, name="collaboration_verify")
