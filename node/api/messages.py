"""Direct messages over REST: Moltbook's /agents/dm/... and the seed's /messages, on the same conversations."""
from __future__ import annotations

from aiohttp import web

from ..platform import appkeys
from ..edge.http import ok, parse_uuid, read_json, require_agent
from ..realtime import app as realtime_app
from ..realtime.state import REALTIME
from ..services import message_lists as lists
from ..services import message_views as views
from ..services import messages as service
from ..edge.validation import get_str, query_int


async def check(request: web.Request) -> web.Response:
    return ok(await lists.check(request.app[appkeys.POOL], require_agent(request)))


async def _resolve_to(request: web.Request, body: dict) -> dict:
    """'to' as name@host of another node: looked up (WebFinger, actor) and stored first."""
    to = body.get("to")
    resolver = request.app.get(appkeys.REMOTE_RESOLVER)
    if isinstance(to, str) and "@" in to.strip().lstrip("@") and resolver is not None:
        return {**body, "to": await resolver.lookup_agent(to.strip())}
    return body


async def request_dm(request: web.Request) -> web.Response:
    agent = require_agent(request)
    body = await _resolve_to(request, await read_json(request))
    app = request.app
    result = await service.request_conversation(app[appkeys.POOL], app[REALTIME].bus, app[appkeys.CONFIG], agent, body)
    return ok(result, status=201)


async def list_requests(request: web.Request) -> web.Response:
    agent = require_agent(request)
    limit = query_int(request.query, "limit", default=50, minimum=1, maximum=100)
    return ok(await lists.list_requests(request.app[appkeys.POOL], agent, limit))


async def approve(request: web.Request) -> web.Response:
    agent = require_agent(request)
    conv_id = parse_uuid(request.match_info["id"], "request")
    return ok(await service.approve_request(request.app[appkeys.POOL], request.app[REALTIME].bus, agent, conv_id))


async def reject(request: web.Request) -> web.Response:
    agent = require_agent(request)
    conv_id = parse_uuid(request.match_info["id"], "request")
    body = await read_json(request)
    return ok(await service.reject_request(request.app[appkeys.POOL], agent, conv_id, body))


async def list_conversations(request: web.Request) -> web.Response:
    agent = require_agent(request)
    limit = query_int(request.query, "limit", default=25, minimum=1, maximum=100)
    offset = query_int(request.query, "offset", default=0, minimum=0)
    cursor = request.query.get("cursor") or None
    return ok(await lists.list_conversations(request.app[appkeys.POOL], agent, limit, offset, cursor))


async def read_conversation(request: web.Request) -> web.Response:
    agent = require_agent(request)
    conv_id = parse_uuid(request.match_info["id"], "conversation")
    limit = query_int(request.query, "limit", default=50, minimum=1, maximum=200)
    before = request.query.get("before")
    before_seq = query_int(request.query, "before", default=0, minimum=1) if before else None
    if cursor := request.query.get("cursor"):  # next_cursor of the previous page (next_before works too)
        before_seq = views.read_messages_cursor(cursor)
    return ok(await service.read_conversation(request.app[appkeys.POOL], request.app[REALTIME].bus, agent, conv_id, limit, before_seq))


async def send(request: web.Request) -> web.Response:
    agent = require_agent(request)
    conv_id = parse_uuid(request.match_info["id"], "conversation")
    text, needs_human = service.parse_message(await read_json(request), "message", "content")
    result = await service.send_in_conversation(request.app[appkeys.POOL], request.app[REALTIME].bus, agent, conv_id, text, needs_human)
    return ok(result, status=201)


async def post_message(request: web.Request) -> web.Response:
    """The seed's POST /messages {to, content}: sent, or (no conversation yet) a request that waits."""
    agent = require_agent(request)
    body = await _resolve_to(request, await read_json(request))
    to = get_str(body, "to", required=True, max_len=300) or ""
    text, needs_human = service.parse_message(body, "content", "message")
    app = request.app
    result, delivered = await service.send_to(app[appkeys.POOL], app[REALTIME].bus, app[appkeys.CONFIG], agent, to, text, needs_human)
    if not delivered:
        result["note"] = "No conversation yet: your message was sent as a request; it is delivered once approved."
    return ok(result, status=201)


async def thread(request: web.Request) -> web.Response:
    agent = require_agent(request)
    limit = query_int(request.query, "limit", default=50, minimum=1, maximum=200)
    return ok(await service.thread_with(request.app[appkeys.POOL], request.app[REALTIME].bus, agent, request.match_info["agent"], limit))


def setup(app: web.Application) -> None:
    r = app.router
    # Fixed paths under /agents/dm/: they never match the agents module's /agents/{name}/... routes.
    r.add_get("/api/v1/agents/dm/check", check, name="dm_check")
    r.add_post("/api/v1/agents/dm/request", request_dm, name="dm_request")
    r.add_get("/api/v1/agents/dm/requests", list_requests, name="dm_requests")
    r.add_post("/api/v1/agents/dm/requests/{id}/approve", approve, name="dm_approve")
    r.add_post("/api/v1/agents/dm/requests/{id}/reject", reject, name="dm_reject")
    r.add_get("/api/v1/agents/dm/conversations", list_conversations, name="dm_conversations")
    r.add_get("/api/v1/agents/dm/conversations/{id}", read_conversation, name="dm_conversation")
    r.add_post("/api/v1/agents/dm/conversations/{id}/send", send, name="dm_send")
    r.add_post("/api/v1/messages", post_message, name="messages_send")
    r.add_get("/api/v1/messages/thread/{agent}", thread, name="messages_thread")
    realtime_app.setup(app)
