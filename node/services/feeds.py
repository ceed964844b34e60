"""Feeds: hot/new/top/rising post listings with stable cursors, and the periodic rising-rank refresh.

Paging contract ({success, posts, next_cursor, has_more}):
- Keyset cursors: each page starts strictly after the previous page's last (sort key, id), so posts that
  arrive meanwhile never shift a page, and nothing is repeated or skipped because of them. hot_rank
  does not decay with the clock (0003), so hot pages are as stable as new ones. A vote moves a post
  in hot/top order; a post that a vote carries across the page boundary between two fetches can be
  seen twice or not at all (as on every keyset-paged site). Rising ranks decay, so rising pages are
  best-effort by nature.
- offset is accepted for old clients and ignored when a cursor is given; next_cursor is returned either way.
- Submolt feeds (GET /submolts/{name}/feed and GET /posts?submolt=) put the submolt's pinned posts
  (oldest pin first) ahead of the first page, in addition to `limit` regular posts; pinned posts are
  left out of the regular listing, so they appear exactly once.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from typing import Any, Awaitable, Callable

import asyncpg
import orjson

from ..edge.cursors import (
    bad_cursor,
    cursor_datetime,
    cursor_float,
    cursor_int,
    cursor_uuid,
    decode_cursor,
    encode_cursor,
)
from ..stores import feeds as store
from ..stores import post_json as post_json_store
from ..stores import posts as posts_store
from ..stores.agents import Agent
from ..stores.feeds import After, FeedRow, Scope
from . import submolts as submolts_service
from .posts import post_to_json

log = logging.getLogger(__name__)

SORTS = store.SORTS
WINDOWS: dict[str, dt.timedelta | None] = {
    "hour": dt.timedelta(hours=1),
    "day": dt.timedelta(days=1),
    "week": dt.timedelta(days=7),
    "month": dt.timedelta(days=30),
    "year": dt.timedelta(days=365),
    "all": None,
}
FILTERS = ("all", "following")
DEFAULT_LIMIT, MAX_LIMIT = 25, 100
MAX_OFFSET = 10_000  # deeper offset paging is a full index walk per page; cursors have no such cost
RISING_REFRESH_SECONDS = 60.0


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# --- cursors -----------------------------------------------------------------------------------

def _encode(sort: str, t: str, row: FeedRow) -> str:
    data: dict[str, Any] = {"s": sort, "id": row.id, "k": store.sort_key(sort, row)}
    if sort == "top":
        data["t"] = t
    if sort == "rising" and store.is_fresh(row):
        data["f"] = 1
    return encode_cursor(data)


def _decode(cursor: str, sort: str, t: str) -> After:
    data = decode_cursor(cursor)
    if data.get("s") != sort or (sort == "top" and data.get("t") != t):
        raise bad_cursor("This cursor belongs to another sort or time window.")
    post_id = cursor_uuid(data, "id")
    fresh = data.get("f") == 1
    if sort == "new" or (sort == "rising" and fresh):
        key: Any = cursor_datetime(data, "k")
    elif sort == "top":
        key = cursor_int(data, "k")
    else:
        key = cursor_float(data, "k")
    return After(key=key, id=post_id, fresh=fresh)


# --- listings ----------------------------------------------------------------------------------

async def page_of_posts(
    conn: asyncpg.Connection,
    scope: Scope,
    *,
    sort: str,
    t: str,
    limit: int,
    cursor: str | None,
    offset: int,
    viewer_id: uuid.UUID | None,
    pinned_submolt: uuid.UUID | None = None,
    at: dt.datetime | None = None,
    encoded: bool = False,
) -> dict[str, Any]:
    """One page of a feed: {posts, next_cursor, has_more}.

    encoded: the posts as JSON text PostgreSQL wrote (orjson.Fragment, for an answer orjson encodes: the API's),
    the same objects as post_to_json's dicts (which the web pages read) at a fraction of the node's CPU.
    """
    after = _decode(cursor, sort, t) if cursor else None
    if after is not None:
        offset = 0
    at = at or _now()
    window = WINDOWS[t]
    since = at - window if sort == "top" and window is not None else None
    pinned_first = pinned_submolt is not None and after is None and offset == 0
    # The API's page in one query (rows with their posts' JSON), unless pinned posts go ahead of it.
    lean = encoded and not pinned_first
    rows = await store.list_feed(
        conn, sort, scope, limit=limit + 1, after=after, offset=offset, since=since, at=at,
        with_posts=lean, viewer_id=viewer_id,
    )
    has_more = len(rows) > limit
    rows = rows[:limit]
    posts: list[Any]
    if lean:
        posts = [orjson.Fragment(r.post) for r in rows if r.post is not None]
    else:
        ids = [r.id for r in rows]
        if pinned_first:
            assert pinned_submolt is not None
            ids = await posts_store.list_pinned_ids(conn, pinned_submolt) + ids
        # A post deleted between the two queries is left out rather than shown as a tombstone.
        if encoded:
            posts = [orjson.Fragment(t) for t in await post_json_store.get_visible_post_json(conn, ids, viewer_id)]
        else:
            posts = [post_to_json(v) for v in await posts_store.get_post_views(conn, ids, viewer_id) if v.post.is_visible]
    return {
        "posts": posts,
        "next_cursor": _encode(sort, t, rows[-1]) if has_more else None,
        "has_more": has_more,
    }


async def list_posts(
    pool: asyncpg.Pool,
    viewer: Agent | None,
    *,
    sort: str = "hot",
    t: str = "all",
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
    offset: int = 0,
    submolt: str | None = None,
    at: dt.datetime | None = None,
    encoded: bool = False,
) -> dict[str, Any]:
    """GET /posts: every visible post on the node, or one submolt's feed when `submolt` is given.
    encoded: as page_of_posts."""
    async with pool.acquire() as conn:
        submolt_id = None
        if submolt:
            submolt_id = (await submolts_service.require_submolt(conn, submolt)).id
        scope = Scope(submolt_id=submolt_id, exclude_pinned=submolt_id is not None)
        return await page_of_posts(
            conn, scope, sort=sort, t=t, limit=limit, cursor=cursor, offset=offset,
            viewer_id=viewer.id if viewer else None, pinned_submolt=submolt_id, at=at, encoded=encoded,
        )


async def list_submolt_feed(pool: asyncpg.Pool, viewer: Agent | None, name: str, **kwargs: Any) -> dict[str, Any]:
    """GET /submolts/{name}/feed: the same as GET /posts?submolt=name."""
    return await list_posts(pool, viewer, submolt=name, **kwargs)


async def list_personal_feed(
    pool: asyncpg.Pool,
    reader: Agent,
    *,
    feed_filter: str = "all",
    sort: str = "hot",
    t: str = "all",
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
    offset: int = 0,
    at: dt.datetime | None = None,
    encoded: bool = False,
) -> dict[str, Any]:
    """GET /feed: posts in the reader's subscribed submolts and by agents it follows (feed_filter
    "following": only the latter). The reader's own posts appear only if one of those rules brings them."""
    scope = Scope(reader_id=reader.id, following_only=feed_filter == "following")
    async with pool.acquire() as conn:
        return await page_of_posts(
            conn, scope, sort=sort, t=t, limit=limit, cursor=cursor, offset=offset, viewer_id=reader.id, at=at,
            encoded=encoded,
        )


# --- rising refresh ----------------------------------------------------------------------------

RISING_BATCH = 1000


async def refresh_rising_ranks(pool: asyncpg.Pool, at: dt.datetime | None = None, batch: int = RISING_BATCH) -> int:
    """Recompute rising ranks as of `at` (default now) for posts under 48 h, and zero those that crossed
    it. Returns rows written; 0 when another process holds the refresh lock.

    Works in batches of `batch` posts, each its own short transaction, so that votes on recent posts never
    wait behind a refresh of the whole 48-hour window."""
    at = at or _now()
    written = 0
    async with pool.acquire() as conn:
        if not await store.try_lock_rising_refresh(conn):
            return 0
        try:
            after = None
            while True:
                n, after = await store.refresh_rising_batch(conn, at, after, batch)
                written += n
                if after is None:
                    break
            while (n := await store.expire_rising_batch(conn, at, batch)) > 0:
                written += n
        finally:
            try:
                await store.unlock_rising_refresh(conn)
            except BaseException:
                conn.terminate()  # pooled connections are not reset on release (node.platform.db): never keep the lock
                raise
    return written


async def run_rising_refresh(
    pool: asyncpg.Pool,
    interval: float = RISING_REFRESH_SECONDS,
    refresh: Callable[[asyncpg.Pool], Awaitable[int]] = refresh_rising_ranks,
) -> None:
    """Refresh now and then every `interval` seconds until cancelled; a failed round is logged, not fatal."""
    while True:
        try:
            written = await refresh(pool)
            log.debug("rising ranks refreshed: %d posts", written)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the next round may succeed (database restart, lock timeout...)
            log.exception("rising rank refresh failed; retrying in %.0f s", interval)
        await asyncio.sleep(interval)
