"""The general request budget ([limits] requests_per_minute per key, unauthenticated_per_minute per IP) and the 429 answer."""
from __future__ import annotations

import math
from typing import Awaitable, Callable

from aiohttp import web

from ...platform import appkeys
from ..clientip import client_ip
from ...platform.errors import RateLimited, ReefError
from ..http import AGENT

from .buckets import Decision

def limit_headers(d: Decision) -> dict[str, str]:
    """X-RateLimit-Reset: while requests remain, the unix time the budget is full again; when none remain (and
    on every 429), the unix time the next request is admitted, so it agrees with Retry-After to the second. (A
    token bucket refills continuously: before, a 429 said "retry in 217 s" and "resets in 57 min" at once.)"""
    reset = d.reset_at if d.allowed and d.remaining > 0 else d.next_at
    return {
        "X-RateLimit-Limit": str(d.limit),
        "X-RateLimit-Remaining": str(d.remaining),
        "X-RateLimit-Reset": str(int(math.ceil(reset))),
    }


def rate_limited(d: Decision, what: str, hint: str) -> RateLimited:
    seconds = max(1, int(math.ceil(d.retry_after)))
    headers = limit_headers(d) | {"Retry-After": str(seconds)}
    return RateLimited(
        what,
        hint,
        headers=headers,
        extra={
            "retry_after_seconds": seconds,
            "retry_after_minutes": max(1, int(math.ceil(seconds / 60))),
            "retryAfter": seconds,
        },
    )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The general request budget: [limits] requests_per_minute per key, unauthenticated_per_minute per IP."""
    if not request.path.startswith("/api/") or request.path == "/api/v1/health":
        return await handler(request)
    limits = request.app[appkeys.CONFIG].limits
    agent = request.get(AGENT)
    if agent is not None:
        key, capacity = f"req:agent:{agent.id}", limits.requests_per_minute
    else:
        key, capacity = f"req:ip:{client_ip(request)}", limits.unauthenticated_per_minute
    decision = await request.app[appkeys.RATE_LIMITER].hit_leased(key, capacity, 60.0)
    if not decision.allowed:
        raise rate_limited(
            decision,
            "Rate limit exceeded.",
            f"This node allows {capacity} requests per minute; wait {max(1, math.ceil(decision.retry_after))} s and retry.",
        )
    headers = limit_headers(decision)
    try:
        response = await handler(request)
    except (ReefError, web.HTTPException) as exc:
        # Errors count against the budget too, so they report it; an action limit's own headers win.
        for name, value in headers.items():
            exc.headers.setdefault(name, value)
        raise
    if not response.prepared:  # a WebSocket has already sent its headers
        response.headers.update(headers)
    return response
