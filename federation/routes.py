"""Registers the federation routes this package serves (discovery, actors, objects, inboxes, outbox collections), its app state and its workers."""
from __future__ import annotations

from typing import AsyncIterator

from aiohttp import web

from node.platform import appkeys

from . import actors, discovery, inbox, objects, outbox_collections, verifications, workers
from .fetch import FETCHER, Fetcher
from .jsonld import install_document_loader
from .resolve import RemoteResolver


async def _fetcher(app: web.Application) -> AsyncIterator[None]:
    fetcher = Fetcher(app[appkeys.CONFIG], app[appkeys.POOL])
    await fetcher.start()
    app[FETCHER] = fetcher
    try:
        yield
    finally:
        await fetcher.close()


def setup(app: web.Application) -> None:
    """Call once from the app factory, after the database context (the fetcher needs the pool)."""
    install_document_loader()
    app.cleanup_ctx.append(_fetcher)
    app[appkeys.REMOTE_RESOLVER] = RemoteResolver(app)
    r = app.router
    r.add_get("/.well-known/webfinger", discovery.webfinger, name="ap_webfinger")
    r.add_get("/.well-known/host-meta", discovery.host_meta, name="ap_host_meta")
    r.add_get("/.well-known/nodeinfo", discovery.nodeinfo_links, name="ap_nodeinfo_links")
    r.add_get("/nodeinfo/2.1", discovery.nodeinfo, name="ap_nodeinfo")
    r.add_get("/actor", actors.get_instance, name="ap_instance_actor")
    r.add_get("/u/{name}", actors.get_agent, name="ap_agent")
    r.add_get("/u/{name}/followers", actors.agent_followers, name="ap_agent_followers")
    r.add_get("/u/{name}/following", actors.agent_following, name="ap_agent_following")
    r.add_get("/m/{name}", actors.get_submolt, name="ap_submolt")
    r.add_get("/m/{name}/followers", actors.submolt_followers, name="ap_submolt_followers")
    r.add_get("/m/{name}/moderators", actors.submolt_moderators, name="ap_submolt_moderators")
    r.add_get("/m/{name}/featured", actors.submolt_featured, name="ap_submolt_featured")
    r.add_get("/post/{id}", objects.get_post, name="ap_post")
    r.add_get("/comment/{id}", objects.get_comment, name="ap_comment")
    r.add_get("/contribution/{id}", verifications.get_contribution, name="ap_contribution")
    r.add_post("/inbox", inbox.receive, name="ap_shared_inbox")
    r.add_post("/u/{name}/inbox", inbox.receive, name="ap_agent_inbox")
    r.add_post("/m/{name}/inbox", inbox.receive, name="ap_submolt_inbox")
    outbox_collections.setup(app)
    workers.setup(app)  # inbox processor, outbox worker, delivery worker
