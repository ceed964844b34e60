"""GET /api/v1/stream (the WebSocket) and POST /api/v1/stream/token; the frames clients send."""
from __future__ import annotations

import datetime as dt
import json
import logging
import math
import uuid
from typing import Any

import asyncpg
from aiohttp import WSMsgType, web

from ..platform import appkeys
from ..platform.errors import BadRequest, Forbidden, RateLimited, ReefError, Unauthorized
from ..edge.http import current_agent, ok, require_agent
from ..services import groups as groups_service
from ..services import messages as messages_service
from ..stores import agents as agents_store
from ..stores import stream as stream_store
from ..stores.agents import Agent
from .state import REALTIME, Realtime
from .hub import Session
from .tokens import TokenError, issue_token, verify_token

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 64 * 1024
CLIENT_TYPES = ("dm", "group_msg", "typing", "ack", "ping", "pong")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")


async def create_token(request: web.Request) -> web.Response:
    agent = require_agent(request)
    cfg = request.app[appkeys.CONFIG]
    ttl = cfg.limits.stream_token_seconds
    token = issue_token(request.app[REALTIME].secret, agent.id, ttl)
    ws_base = cfg.base_url.replace("http", "ws", 1)
    return ok(
        {
            "token": token.token,
            "expires_in": ttl,
            "expires_at": dt.datetime.fromtimestamp(token.expires_at, dt.timezone.utc),
            "url": f"{ws_base}/api/v1/stream?token={token.token}",
        },
        status=201,
    )


async def _agent_for(request: web.Request, rt: Realtime) -> Agent:
    agent = current_agent(request)
    if agent is not None:
        return agent
    token = request.query.get("token")
    if not token:
        raise Unauthorized(
            "Authentication required to open the stream.",
            "Send 'Authorization: Bearer <api_key>', or get a token from POST /api/v1/stream/token and "
            "connect to /api/v1/stream?token=<token>.",
        )
    try:
        agent_id = verify_token(rt.secret, token)
    except TokenError as exc:
        raise Unauthorized(str(exc), "Get a fresh token from POST /api/v1/stream/token; tokens are short-lived.") from None
    async with request.app[appkeys.POOL].acquire() as conn:
        found = await agents_store.get_agent(conn, agent_id)
    if found is None:
        raise Unauthorized("The agent of this token no longer exists.", "Register again.")
    if found.is_suspended:
        raise Forbidden("This agent is suspended.", "Contact the node's administrators.")
    return found


def _since(request: web.Request) -> int | None:
    raw = request.query.get("since")
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"'since' must be an event id (an integer), got {raw!r}.", "Use the id of the last event you received.") from None
    if value < 0:
        raise BadRequest("'since' must not be negative.", "Use 0 to replay everything still kept.")
    return value


async def stream(request: web.Request) -> web.StreamResponse:
    rt = request.app[REALTIME]
    cfg = request.app[appkeys.CONFIG]
    agent = await _agent_for(request, rt)
    since = _since(request)
    ws = web.WebSocketResponse(
        heartbeat=cfg.limits.stream_heartbeat_seconds or None, max_msg_size=MAX_FRAME_BYTES, compress=False
    )
    if not ws.can_prepare(request).ok:
        raise BadRequest("This endpoint is a WebSocket.", "Connect with a WebSocket client (Upgrade: websocket).")
    await ws.prepare(request)
    transport = request.transport
    session = Session(
        rt.hub, agent.id, agent.name, ws, since=since, queue_size=cfg.limits.stream_queue_size,
        abort=transport.abort if transport is not None else None,
    )
    rt.hub.add(session)
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await _on_text(request, rt, agent, session, msg.data)
            elif msg.type == WSMsgType.BINARY:
                session.push_frame(_error(None, BadRequest("Binary frames are not supported.", "Send JSON text frames.")))
    finally:
        rt.hub.remove(session)
    return ws


def _error(ref: Any, exc: ReefError) -> dict[str, Any]:
    frame = dict(exc.extra)  # e.g. conversation_id; the fixed fields below win over it
    frame.update({"type": "error", "error": exc.error, "hint": exc.hint, "status": exc.status, "timestamp": _now()})
    if ref is not None:
        frame["ref"] = ref
    return frame


async def _on_text(request: web.Request, rt: Realtime, agent: Agent, session: Session, data: str) -> None:
    """One client frame. A bad frame gets an error frame; the connection stays open."""
    ref = None
    try:
        try:
            frame = json.loads(data)
        except ValueError as exc:
            raise BadRequest(f"Malformed frame: not JSON ({exc}).", 'Send a JSON object such as {"type": "ping"}.') from None
        if not isinstance(frame, dict):
            raise BadRequest("Malformed frame: expected a JSON object.", 'Send e.g. {"type": "ping"}.')
        ref = frame.get("ref")
        if ref is not None and not isinstance(ref, (str, int)):
            ref = None
        kind = frame.get("type")
        if kind not in CLIENT_TYPES:
            raise BadRequest(f"Unknown frame type {kind!r}.", f"Clients send one of: {', '.join(CLIENT_TYPES)}.")
        reply = await _HANDLERS[kind](request, rt, agent, frame)
        if reply is not None:
            if ref is not None:
                reply["ref"] = ref
            session.push_frame(reply)
    except ReefError as exc:
        session.push_frame(_error(ref, exc))
    except (OSError, asyncpg.PostgresError) as exc:
        log.warning("stream frame from %s failed: %s", agent.name, exc)
        session.push_frame(_error(ref, ReefError("The node could not process this frame.", "Retry shortly.", status=503)))


def _uuid(frame: dict[str, Any], key: str) -> uuid.UUID | None:
    value = frame.get(key)
    if value is None:
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise BadRequest(f"'{key}' must be a UUID.", f"Use the {key} from an earlier frame or the REST API.") from None


async def _rate_limit(request: web.Request, agent: Agent) -> None:
    """Frames that write count against the agent's request budget, as the same call over HTTP would."""
    capacity = request.app[appkeys.CONFIG].limits.requests_per_minute
    decision = await request.app[appkeys.RATE_LIMITER].hit_leased(f"req:agent:{agent.id}", capacity, 60.0)
    if not decision.allowed:
        seconds = max(1, math.ceil(decision.retry_after))
        raise RateLimited("Rate limit exceeded.", f"Wait {seconds} s before sending again.", extra={"retry_after_seconds": seconds})


async def _ping(request: web.Request, rt: Realtime, agent: Agent, frame: dict[str, Any]) -> dict[str, Any] | None:
    return {"type": "pong", "timestamp": _now()}


async def _pong(request: web.Request, rt: Realtime, agent: Agent, frame: dict[str, Any]) -> dict[str, Any] | None:
    return None


async def _dm(request: web.Request, rt: Realtime, agent: Agent, frame: dict[str, Any]) -> dict[str, Any] | None:
    await _rate_limit(request, agent)
    pool = request.app[appkeys.POOL]
    text, needs_human = messages_service.parse_message(frame, "content", "message")
    conversation_id = _uuid(frame, "conversation_id")
    if conversation_id is not None:
        result = await messages_service.send_in_conversation(pool, rt.bus, agent, conversation_id, text, needs_human)
        status = "sent"
    else:
        to = frame.get("to")
        if not isinstance(to, str) or not to:
            raise BadRequest("A dm frame needs 'to' (an agent name) or 'conversation_id'.", "Name the recipient.")
        result, delivered = await messages_service.send_to(pool, rt.bus, request.app[appkeys.CONFIG], agent, to, text, needs_human)
        status = "sent" if delivered else "pending"
    message = result.get("message") if isinstance(result.get("message"), dict) else None
    return {
        "type": "ack", "for": "dm", "status": status, "conversation_id": result["conversation_id"],
        "message_id": message["id"] if message else None, "timestamp": _now(),
    }


async def _group_msg(request: web.Request, rt: Realtime, agent: Agent, frame: dict[str, Any]) -> dict[str, Any] | None:
    await _rate_limit(request, agent)
    group_id = _uuid(frame, "group_id") or _uuid(frame, "to")
    if group_id is None:
        raise BadRequest("A group_msg frame needs 'group_id'.", "Use the id from POST /api/v1/groups.")
    text, _ = messages_service.parse_message(frame, "content", "message")
    message = await groups_service.send_message(request.app[appkeys.POOL], rt.bus, agent, group_id, text)
    return {"type": "ack", "for": "group_msg", "status": "sent", "group_id": str(group_id),
            "message_id": message["id"], "timestamp": _now()}


async def _typing(request: web.Request, rt: Realtime, agent: Agent, frame: dict[str, Any]) -> dict[str, Any] | None:
    pool = request.app[appkeys.POOL]
    typing = frame.get("typing", True) is not False
    out = {"type": "typing", "from": agent.name, "typing": typing, "timestamp": _now()}
    group_id = _uuid(frame, "group_id")
    if group_id is not None:
        targets = await groups_service.typing_targets(pool, agent, group_id)
        out["group_id"] = str(group_id)
    else:
        to = frame.get("to") if isinstance(frame.get("to"), str) else None
        target, conversation_id = await messages_service.typing_target(pool, agent, to, _uuid(frame, "conversation_id"))
        targets = [target]
        out["conversation_id"] = conversation_id
    await rt.bus.publish_frame(targets, out)
    return None


async def _ack(request: web.Request, rt: Realtime, agent: Agent, frame: dict[str, Any]) -> dict[str, Any] | None:
    """{id}: delivered up to this event id; {conversation_id}: mark that conversation read (receipts)."""
    event_id = frame.get("id")
    conversation_id = _uuid(frame, "conversation_id")
    if event_id is None and conversation_id is None:
        raise BadRequest("An ack frame needs 'id' (an event id) or 'conversation_id'.", "Ack the last id you processed.")
    pool = request.app[appkeys.POOL]
    if event_id is not None:
        if isinstance(event_id, bool) or not isinstance(event_id, int) or event_id < 0:
            raise BadRequest("'id' in an ack must be a non-negative integer.", "Use the id of an event you received.")
        async with pool.acquire() as conn:
            await stream_store.record_ack(conn, agent.id, event_id)
    if conversation_id is not None:
        await messages_service.mark_conversation_read(pool, rt.bus, agent, conversation_id)
    return None


_HANDLERS = {"ping": _ping, "pong": _pong, "dm": _dm, "group_msg": _group_msg, "typing": _typing, "ack": _ack}


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/stream", stream, name="stream")
    app.router.add_post("/api/v1/stream/token", create_token, name="stream_token")
