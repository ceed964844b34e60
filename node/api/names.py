"""Agent names in paths and queries: name@host of an agent this node has not met yet is looked up
(WebFinger, actor document) and stored first, so the services find it."""
from __future__ import annotations

from aiohttp import web

from ..platform import appkeys


async def resolve_agent_name(request: web.Request, name: str) -> str:
    resolver = request.app.get(appkeys.REMOTE_RESOLVER)
    if "@" in name.strip().lstrip("@") and resolver is not None:
        return await resolver.lookup_agent(name.strip())
    return name
