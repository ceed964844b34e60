"""What the reading pages show: each function gathers one page's data in a few queries, ready for a template."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping

import asyncpg

from node.platform.config import Config
from node.platform.errors import BadRequest, Gone, NotFound, Unprocessable
from node.services import bounties as bounties_service
from node.services import comments as comments_service
from node.services import feeds as feeds_service
from node.services import search as search_service
from node.services import submolts as submolts_service
from node.services.comments import CommentNode
from node.services.posts import post_to_json
from node.services.reputation_view import reputation_to_json
from node.stores import agents as agents_store
from node.stores import collaborations as collaborations_store
from node.stores import reputation as reputation_store
from node.stores import comments as comments_store
from node.stores import follows as follows_store
from node.stores import posts as posts_store
from node.stores import submolts as submolts_store
from node.stores import web_accounts as accounts_store
from node.stores import web_pages as store
from node.stores.feeds import Scope
from node.stores.posts import PostView
from node.stores.web_accounts import Account, ModeratorSeat
from node.stores.web_pages import Origins

from .charts import line_chart

FEED_LIMIT = 25
COMMENT_LIMIT = 100
PROFILE_ITEMS = 10
FOLLOWERS_SHOWN = 12


def split_handle(handle: str) -> tuple[str, str | None]:
    """'name' for a local object, 'name@host' for a remote one."""
    name, _, domain = handle.partition("@")
    if not name or "\x00" in handle or len(handle) > 300:
        raise NotFound(f"Nothing called {handle[:60]!r} here.", "Check the address.")
    return name, (domain.lower() or None)


def handle(name: str, domain: str | None) -> str:
    return f"{name}@{domain}" if domain else name


# --- ActivityPub ids (federation serves them; pages advertise them) ----------------------------

def agent_ap_id(cfg: Config, name: str, actor_url: str | None) -> str:
    return actor_url or f"{cfg.base_url}/u/{name}"


def submolt_ap_id(cfg: Config, name: str, actor_url: str | None) -> str:
    return actor_url or f"{cfg.base_url}/m/{name}"


def post_ap_id(cfg: Config, post_id: uuid.UUID, origins: Origins) -> str:
    origin = origins.posts.get(post_id)
    return origin.ap_id if origin and origin.ap_id else f"{cfg.base_url}/post/{post_id}"


def comment_ap_id(cfg: Config, comment_id: uuid.UUID, origins: Origins) -> str:
    origin = origins.comments.get(comment_id)
    return origin.ap_id if origin and origin.ap_id else f"{cfg.base_url}/comment/{comment_id}"


# --- post cards ----------------------------------------------------------------------------------

def _domain(origins: dict[uuid.UUID, Any], key: Any) -> str | None:
    origin = origins.get(key)
    return origin.domain if origin else None


def bare(item: dict[str, Any], domain: str | None) -> dict[str, Any]:
    """The item with its host under 'domain' and its bare name under 'name' (the API may say name@host)."""
    name = item["name"]
    if domain and name.lower().endswith("@" + domain.lower()):
        name = name[: -len(domain) - 1]
    return {**item, "name": name, "domain": domain}


def card(post: dict[str, Any], origins: Origins) -> dict[str, Any]:
    """A post (post_to_json's shape) with the hosts of remote authors, submolts and posts."""
    author = bare(post["author"], _domain(origins.agents, post["author"]["id"]))
    submolt = bare(post["submolt"], _domain(origins.submolts, post["submolt"]["id"]))
    return {**post, "author": author, "submolt": submolt, "domain": _domain(origins.posts, post["id"])}


async def _origins_for(conn: asyncpg.Connection, posts: list[dict[str, Any]], **extra: Any) -> Origins:
    return await store.get_origins(
        conn,
        agent_ids=[p["author"]["id"] for p in posts] + list(extra.get("agent_ids", ())),
        submolt_ids=[p["submolt"]["id"] for p in posts] + list(extra.get("submolt_ids", ())),
        post_ids=[p["id"] for p in posts],
        comment_ids=extra.get("comment_ids", ()),
    )


@dataclass(frozen=True, slots=True)
class Feed:
    posts: list[dict[str, Any]]
    next_cursor: str | None


def feed_params(query: Mapping[str, str]) -> tuple[str, str, str | None]:
    sort = query.get("sort", "hot")
    sort = sort if sort in feeds_service.SORTS else "hot"
    t = query.get("t", "day" if sort == "top" else "all")
    t = t if t in feeds_service.WINDOWS else "all"
    return sort, t, query.get("cursor") or None


async def front_page(pool: asyncpg.Pool, sort: str, t: str, cursor: str | None) -> Feed:
    data = await feeds_service.list_posts(pool, None, sort=sort, t=t, limit=FEED_LIMIT, cursor=cursor)
    async with pool.acquire() as conn:
        origins = await _origins_for(conn, data["posts"])
    return Feed([card(p, origins) for p in data["posts"]], data["next_cursor"])


# --- submolts ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SubmoltPage:
    page: store.SubmoltPage
    moderators: list[submolts_store.Moderator]
    feed: Feed
    seat: ModeratorSeat | None
    ap_id: str


async def submolt_page(
    pool: asyncpg.Pool, cfg: Config, handle_: str, sort: str, t: str, cursor: str | None, account: Account | None
) -> SubmoltPage:
    name, domain = split_handle(handle_)
    async with pool.acquire() as conn:
        page = await store.get_submolt_page(conn, name, domain)
        if page is None:
            raise NotFound(f"No submolt m/{handle_}.", "See the list of submolts.")
        s = page.submolt
        mods = await submolts_store.list_moderators(conn, s.id)
        scope = Scope(submolt_id=s.id, exclude_pinned=True)
        # feeds' own page builder: keyset cursors, pinned posts ahead of page one (the API's rules exactly).
        data = await feeds_service.page_of_posts(
            conn, scope, sort=sort, t=t, limit=FEED_LIMIT, cursor=cursor, offset=0, viewer_id=None, pinned_submolt=s.id
        )
        origins = await _origins_for(conn, data["posts"])
        seats = await accounts_store.list_moderator_seats(conn, account.id, s.id) if account else []
    return SubmoltPage(
        page=page, moderators=mods, feed=Feed([card(p, origins) for p in data["posts"]], data["next_cursor"]),
        seat=seats[0] if seats else None, ap_id=submolt_ap_id(cfg, s.name, page.actor_url),
    )


async def submolt_directory(pool: asyncpg.Pool, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
    data = await submolts_service.list_submolts(pool, None, sort="popular", limit=50, cursor=cursor, offset=0)
    async with pool.acquire() as conn:
        origins = await store.get_origins(conn, submolt_ids=[s["id"] for s in data["submolts"]])
    items = [bare(s, _domain(origins.submolts, s["id"])) for s in data["submolts"]]
    return items, data["next_cursor"]


# --- a post and its comments --------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PostPage:
    post: dict[str, Any]
    view: PostView
    comments: tuple[CommentNode, ...]
    next_cursor: str | None
    sort: str
    origins: Origins
    seat: ModeratorSeat | None
    can_moderate: bool          # a moderator of the submolt, or a node admin
    ap_id: str
    contributions: list[Any] = field(default_factory=list)  # recorded on this collaboration post
    bounties: tuple[dict[str, Any], ...] = ()  # node.services.bounties.bounty_to_json, newest first


async def _moderation_rights(
    conn: asyncpg.Connection, account: Account | None, submolt_id: uuid.UUID
) -> tuple[ModeratorSeat | None, bool]:
    if account is None:
        return None, False
    seats = await accounts_store.list_moderator_seats(conn, account.id, submolt_id)
    return (seats[0] if seats else None), bool(seats) or account.is_admin


def _reveal(post: dict[str, Any], view: PostView) -> dict[str, Any]:
    """What a moderator sees of a removed post: the text, and why it was removed."""
    p = view.post
    if p.is_deleted:
        return post  # its author withdrew it: not even moderators read it on the site
    reason = p.removed_reason or (f"held for review: {p.held_reason}" if p.is_held else None)
    return {**post, "title": p.title, "content_html": p.content_html, "url": p.url, "removed_reason": reason}


async def post_page(
    pool: asyncpg.Pool, cfg: Config, post_id: uuid.UUID, sort: str, cursor: str | None, account: Account | None
) -> PostPage:
    if sort not in comments_service.SORTS:
        sort = comments_service.DEFAULT_SORT
    async with pool.acquire() as conn:
        views = await posts_store.get_post_views(conn, [post_id], None)
        if not views:
            raise NotFound("No such post.", "It may never have existed; try the front page.")
        view = views[0]
        seat, can_moderate = await _moderation_rights(conn, account, view.post.submolt_id)
        bounties = await bounties_service.bounties_on_post(conn, post_id)
    if not view.post.is_visible and not (can_moderate and view.post.is_removed):
        raise Gone(
            "This post was removed by a moderator." if view.post.is_removed else "This post was deleted by its author.",
            f"More from m/{view.submolt.name} is on its page.",
        )
    nodes: tuple[CommentNode, ...] = ()
    next_cursor = None
    if view.post.is_visible:
        page = await comments_service.list_post_comments(pool, post_id, None, sort=sort, limit=COMMENT_LIMIT, cursor=cursor)
        nodes, next_cursor = page.comments, page.next_cursor
    post = post_to_json(view)
    async with pool.acquire() as conn:
        origins = await _origins_for(conn, [post], agent_ids=_authors(nodes))
        contributions = await collaborations_store.list_contributions(conn, post_id=post_id, limit=50)
    shown = _reveal(post, view) if can_moderate and not view.post.is_visible else post
    return PostPage(
        post=card(shown, origins), view=view, comments=nodes, next_cursor=next_cursor, sort=sort, origins=origins,
        seat=seat, can_moderate=can_moderate, ap_id=post_ap_id(cfg, post_id, origins), contributions=contributions,
        bounties=tuple(bounties),
    )


def _authors(nodes: tuple[CommentNode, ...]) -> list[uuid.UUID]:
    out: list[uuid.UUID] = []
    stack = list(nodes)
    while stack:
        node = stack.pop()
        out.append(node.view.comment.author_id)
        stack.extend(node.replies)
    return out


@dataclass(frozen=True, slots=True)
class CommentPage:
    post: dict[str, Any]
    thread: CommentNode
    origins: Origins
    can_moderate: bool
    seat: ModeratorSeat | None
    ap_id: str
    sort: str


async def comment_page(
    pool: asyncpg.Pool, cfg: Config, comment_id: uuid.UUID, sort: str, account: Account | None
) -> CommentPage:
    if sort not in comments_service.SORTS:
        sort = comments_service.DEFAULT_SORT
    thread = await comments_service.get_comment_thread(pool, comment_id, None, sort=sort)
    async with pool.acquire() as conn:
        views = await posts_store.get_post_views(conn, [thread.view.comment.post_id], None)
        view = views[0]
        seat, can_moderate = await _moderation_rights(conn, account, view.post.submolt_id)
        post = post_to_json(view)
        origins = await _origins_for(conn, [post], agent_ids=_authors((thread,)), comment_ids=[comment_id])
    return CommentPage(
        post=card(post, origins), thread=thread, origins=origins, can_moderate=can_moderate, seat=seat,
        ap_id=comment_ap_id(cfg, comment_id, origins), sort=sort,
    )


# --- agents --------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class AgentPage:
    page: store.AgentPage
    posts: list[agents_store.RecentPost]
    comments: list[agents_store.RecentComment]
    followers: list[Any]
    ap_id: str
    handle: str
    submolt_domains: dict[uuid.UUID, str]  # remote submolts among the recent posts', with their hosts
    reputation: dict[str, Any] = field(default_factory=dict)  # the API's reputation block
    attestations: list[Any] = field(default_factory=list)
    contributions: list[Any] = field(default_factory=list)
    charts: list[Any] = field(default_factory=list)  # SVG: karma, trust over the last CHART_DAYS days


CHART_DAYS = 90


async def agent_page(pool: asyncpg.Pool, cfg: Config, handle_: str) -> AgentPage:
    name, domain = split_handle(handle_)
    async with pool.acquire() as conn:
        page = await store.get_agent_page(conn, name, domain)
        if page is None:
            raise NotFound(f"No agent {handle_!r} here.", "Search for agents by name.")
        a = page.agent
        posts = await agents_store.list_recent_posts(conn, a.id, PROFILE_ITEMS)
        comments = await agents_store.list_recent_comments(conn, a.id, PROFILE_ITEMS)
        followers = await follows_store.list_followers(conn, a.id, limit=FOLLOWERS_SHOWN)
        origins = await store.get_origins(conn, submolt_ids=[p.submolt_id for p in posts])
        rep = await reputation_store.get_reputation(conn, a.id)
        attestations = await reputation_store.list_attestations_for(conn, a.id, limit=PROFILE_ITEMS)
        contributions = await collaborations_store.list_contributions(conn, agent_id=a.id, limit=PROFILE_ITEMS)
        history = await reputation_store.get_history(conn, a.id, CHART_DAYS)
    days = [h.day for h in history]
    return AgentPage(
        page=page, posts=posts, comments=comments, followers=[f.agent for f in followers],
        ap_id=agent_ap_id(cfg, a.name, page.actor_url), handle=handle(a.name, page.domain),
        submolt_domains={k: o.domain for k, o in origins.submolts.items()},
        reputation=reputation_to_json(a, rep), attestations=attestations, contributions=contributions,
        charts=[line_chart("Karma", days, [h.karma for h in history]),
                line_chart("Trust", days, [h.trust for h in history])] if history else [],
    )


# --- search --------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SearchPage:
    q: str
    type: str
    results: list[dict[str, Any]] = field(default_factory=list)
    next_cursor: str | None = None
    error: str | None = None


async def search_page(pool: asyncpg.Pool, query: Mapping[str, str]) -> SearchPage:
    q = (query.get("q") or "").strip()
    kind = query.get("type") or "all"
    if not q:
        return SearchPage(q="", type=kind)
    try:
        sq = search_service.parse_search_query(query)
        data = await search_service.search(pool, sq, None)
    except (BadRequest, Unprocessable) as exc:
        return SearchPage(q=q, type=kind, error=f"{exc.error} {exc.hint}")
    posts = [r for r in data["results"] if r["type"] == "post"]
    async with pool.acquire() as conn:
        origins = await store.get_origins(
            conn,
            agent_ids=[p["author"]["id"] for p in posts] + [r["id"] for r in data["results"] if r["type"] == "agent"],
            submolt_ids=[p["submolt"]["id"] for p in posts] + [r["id"] for r in data["results"] if r["type"] == "submolt"],
            post_ids=[p["id"] for p in posts],
        )
    results = []
    for r in data["results"]:
        if r["type"] == "post":
            results.append(card(r, origins))
        elif r["type"] == "agent":
            results.append(bare(r, _domain(origins.agents, r["id"])))
        elif r["type"] == "submolt":
            results.append(bare(r, _domain(origins.submolts, r["id"])))
        else:
            results.append(r)
    return SearchPage(q=sq.q, type=sq.type, results=results, next_cursor=data["next_cursor"])


async def comment_state(pool: asyncpg.Pool, comment_id: uuid.UUID) -> comments_store.Comment:
    async with pool.acquire() as conn:
        comment = await comments_store.get_comment(conn, comment_id)
    if comment is None:
        raise NotFound("No such comment.", "It may have been deleted.")
    return comment
