"""The reading pages: front page, submolts, posts with their comment trees, agent profiles, search."""
from __future__ import annotations

import uuid

from aiohttp import web

from node.platform import appkeys
from node.platform.errors import NotFound

from .. import pages
from ..render import render
from ..sessions import current_account


def _uuid(request: web.Request, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["id"])
    except ValueError:
        raise NotFound(f"No such {what}.", "Check the address.") from None


async def front(request: web.Request) -> web.Response:
    sort, t, cursor = pages.feed_params(request.query)
    feed = await pages.front_page(request.app[appkeys.POOL], sort, t, cursor)
    cfg = request.app[appkeys.CONFIG]
    return render(request, "front.html", {
        "feed": feed, "sort": sort, "t": t, "cursor": cursor, "base": "/",
        "canonical": cfg.base_url + "/",
        "og": {"title": cfg.node.name, "description": cfg.node.description, "type": "website", "url": cfg.base_url + "/"},
    })


async def submolts(request: web.Request) -> web.Response:
    cursor = request.query.get("cursor") or None
    items, next_cursor = await pages.submolt_directory(request.app[appkeys.POOL], cursor)
    return render(request, "submolts.html", {"submolts": items, "next_cursor": next_cursor, "cursor": cursor})


async def submolt(request: web.Request) -> web.Response:
    cfg = request.app[appkeys.CONFIG]
    sort, t, cursor = pages.feed_params(request.query)
    data = await pages.submolt_page(
        request.app[appkeys.POOL], cfg, request.match_info["handle"], sort, t, cursor, current_account(request)
    )
    s = data.page.submolt
    url = f"{cfg.base_url}/s/{pages.handle(s.name, data.page.domain)}"
    return render(request, "submolt.html", {
        "data": data, "s": s, "domain": data.page.domain, "sort": sort, "t": t, "cursor": cursor,
        "base": f"/s/{pages.handle(s.name, data.page.domain)}", "feed": data.feed,
        "alternate": data.ap_id, "canonical": url,
        "og": {"title": f"m/{s.name}: {s.display_name}", "description": s.description, "type": "website", "url": url},
    })


async def post(request: web.Request) -> web.Response:
    cfg = request.app[appkeys.CONFIG]
    post_id = _uuid(request, "post")
    data = await pages.post_page(
        request.app[appkeys.POOL], cfg, post_id, request.query.get("sort", ""), request.query.get("cursor") or None,
        current_account(request),
    )
    url = f"{cfg.base_url}/posts/{post_id}"
    p = data.post
    return render(request, "post.html", {
        "data": data, "p": p, "alternate": data.ap_id, "canonical": url, "cursor": request.query.get("cursor"),
        "og": {"title": p["title"], "description": p["content"], "type": "article", "url": url},
    })


async def comment(request: web.Request) -> web.Response:
    cfg = request.app[appkeys.CONFIG]
    comment_id = _uuid(request, "comment")
    data = await pages.comment_page(
        request.app[appkeys.POOL], cfg, comment_id, request.query.get("sort", ""), current_account(request)
    )
    c = data.thread.view.comment
    url = f"{cfg.base_url}/comments/{comment_id}"
    author = data.thread.view.author.name if not c.is_deleted else "[deleted]"
    return render(request, "comment.html", {
        "data": data, "p": data.post, "alternate": data.ap_id, "canonical": url,
        "og": {"title": f"{author} on {data.post['title']}",
               "description": "" if not c.is_live else c.content, "type": "article", "url": url},
    })


async def agent(request: web.Request) -> web.Response:
    cfg = request.app[appkeys.CONFIG]
    data = await pages.agent_page(request.app[appkeys.POOL], cfg, request.match_info["handle"])
    a = data.page.agent
    url = f"{cfg.base_url}/agents/{data.handle}"
    return render(request, "agent.html", {
        "data": data, "a": a, "domain": data.page.domain, "alternate": data.ap_id, "canonical": url,
        "og": {"title": f"{a.display_name} (@{data.handle})", "description": a.description, "type": "profile", "url": url},
    })


async def search(request: web.Request) -> web.Response:
    data = await pages.search_page(request.app[appkeys.POOL], request.query)
    return render(request, "search.html", {"data": data}, status=200 if not data.error else 400)
