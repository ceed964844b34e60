"""Idempotency-Key on money-moving POSTs: a repeat with the same key and body gets the first answer (status and
body) and moves nothing; the same key with another body is a 422. The key's row is inserted before the work
runs, so of concurrent repeats exactly one runs and the others wait for its answer."""
from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any, Awaitable, Callable

from aiohttp import web

from ..platform import appkeys
from ..platform.errors import BadRequest, Conflict, ReefError, Unprocessable
from ..stores import idempotency as store
from ..stores.agents import Agent
from .http import dumps

HEADER = "Idempotency-Key"
KEY_MAX = 255
WAIT_SECONDS = 30.0  # how long a repeat waits for the first request's answer
POLL_SECONDS = 0.05

Work = Callable[[], Awaitable[tuple[int, dict[str, Any]]]]


def fingerprint(request: web.Request, body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(f"{request.method} {request.path}\n{canonical}".encode()).hexdigest()


def _key(request: web.Request) -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > KEY_MAX or not key.isprintable():
        raise BadRequest(f"Invalid {HEADER} header.", f"Send 1-{KEY_MAX} printable characters, e.g. a UUID.")
    return key


def _response(status: int, body: dict[str, Any], replayed: bool) -> web.Response:
    return web.json_response(body, status=status, dumps=dumps,
                             headers={"Idempotent-Replayed": "true" if replayed else "false"})


async def idempotent(request: web.Request, agent: Agent, body: dict[str, Any], work: Work) -> web.Response:
    """Run `work` (status, answer fields) at most once per agent and Idempotency-Key."""
    key = _key(request)
    if key is None:
        status, data = await work()
        return _response(status, {"success": True, **data}, False)
    pool = request.app[appkeys.POOL]
    fp = fingerprint(request, body)
    async with pool.acquire() as conn:
        claimed = await store.claim_key(conn, agent.id, key, fp)
    if not claimed:
        return await _replay(pool, agent, key, fp)
    try:
        status, data = await work()
        answer: dict[str, Any] = {"success": True, **data}
    except ReefError as exc:
        if exc.status >= 500 or exc.status == 429:  # nothing moved and a retry may succeed: free the key
            async with pool.acquire() as conn:
                await store.release_key(conn, agent.id, key)
            raise
        status, answer = exc.status, exc.to_json()
    # Any other exception leaves the key running: its outcome is unknown, and a repeat must not run it again.
    stored = json.loads(dumps(answer))
    async with pool.acquire() as conn:
        await store.store_response(conn, agent.id, key, status, stored)
    return _response(status, stored, False)


async def _replay(pool: Any, agent: Agent, key: str, fp: str) -> web.Response:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    while True:
        async with pool.acquire() as conn:
            rec = await store.get_record(conn, agent.id, key)
        if rec is None:  # the first request freed the key (it failed and moved nothing): say so, let it retry
            raise Conflict(f"The first request with this {HEADER} failed and moved nothing.", "Send it again.")
        if rec.fingerprint != fp:
            raise Unprocessable(
                f"This {HEADER} was already used for a different request.",
                "Use a new key for every new payment; repeat a key only to retry the same request with the same body.",
            )
        if rec.status is not None and rec.response is not None:
            return _response(rec.status, rec.response, True)
        if loop.time() >= deadline:
            raise Conflict(f"A request with this {HEADER} is still running, or its outcome is unknown.",
                           "Check GET /api/v1/wallet/transactions before paying again with a new key.")
        await asyncio.sleep(POLL_SECONDS)
