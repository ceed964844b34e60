"""SQL for feeds: ordered post ids and their sort keys, paged by keyset (migration 0006 has the indexes).

Each sort orders by a key and the post id, both descending, and the next page starts strictly after the
last row: new (created_at, id), hot (hot_rank, id), top (score, id) within a created_at window, rising
(rising_rank, id) over posts younger than 48 hours. Rising lists posts with momentum (rising_rank > 0)
first, then fresh posts without any (rank 0) by (created_at, id); one UNION ALL query serves both parts.

EXPLAIN ANALYZE findings (PostgreSQL 15; scratch database with 100k posts in 50 submolts by 2k agents,
1% deleted, ~1.5k posts in the last 48 h, ANALYZEd; first page and a page 300-2000 rows deep, limit 26):
- new:    Limit -> Index Scan using posts_new_idx, keyset as Index Cond ROW(created_at, id) < ROW(..),
          Filter on the visible flags; per submolt the same on posts_submolt_new_idx. No Sort node.
- hot:    Limit -> Index Scan using posts_hot_idx (per submolt posts_submolt_hot_idx, Index Cond
          submolt_id = .. AND ROW(hot_rank, id) < ..); 26 rows read. No Sort node.
- top:    t=all: Index Scan using posts_top_idx / posts_submolt_top_idx, as hot. Short windows: globally
          the planner walks posts_top_idx and filters created_at (about 2k rows read for t=day); in a
          submolt it bitmap-scans the window on posts_submolt_new_idx and sorts only those rows.
- rising: Append of two Limits, each an Index Scan: posts_rising_idx with the keyset as Index Cond (the
          momentum part), and posts_new_idx with Index Cond created_at > now - 48 h (the rank-0 part);
          the outer Sort sees at most 2 x (limit + offset) rows. Per submolt: BitmapAnd of
          posts_submolt_rising_idx and the 48 h range, then a sort of that submolt's recent posts only.
- personal feed: Index Scan on the global index of the sort with hashed SubPlans (subscriptions,
          follows) as a Filter, no Sort; a reader of 5/50 submolts + 20 agents reads ~300 rows for a
          page. filter=following alone reads ~300 rows per page at the top and ~3k at depth 300: the
          cost grows as followed agents' share of all posts shrinks. A per-source LATERAL merge would
          bound it if that becomes a problem.
- refresh_rising_ranks: Bitmap Index Scan on posts_new_idx for the 48 h range; Index Scan using
          posts_rising_idx for the posts that crossed 48 h.
"""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from .post_json import post_object_query

SORTS = ("hot", "new", "top", "rising")
RISING_WINDOW = dt.timedelta(hours=48)

_VISIBLE = "NOT p.is_deleted AND NOT p.is_removed"
# column holding each sort's key; rising's fresh part pages by created_at like new.
_KEY = {"new": "p.created_at", "hot": "p.hot_rank", "top": "p.score", "rising": "p.rising_rank"}


@dataclass(frozen=True, slots=True)
class FeedRow:
    """A post's place in a feed: its id and every sort key (the cursor is built from these)."""

    id: uuid.UUID
    created_at: dt.datetime
    score: int
    hot_rank: float
    rising_rank: float
    post: str | None = None  # the post's API object as JSON text, when list_feed was asked for it (with_posts)


@dataclass(frozen=True, slots=True)
class Scope:
    """Which posts a feed draws from. All None: every visible post on the node.

    submolt_id: one submolt. reader_id: the personal feed of that agent, i.e. posts in submolts it
    subscribes to and posts by agents it follows (only the latter when following_only).
    exclude_pinned: leave pinned posts out of the listing (they head the first page instead).
    """

    submolt_id: uuid.UUID | None = None
    reader_id: uuid.UUID | None = None
    following_only: bool = False
    exclude_pinned: bool = False


@dataclass(frozen=True, slots=True)
class After:
    """Where the previous page ended: its last row's sort key and id.

    For rising, fresh=True means the previous page ended in the rank-0 part, and key is a created_at.
    """

    key: Any
    id: uuid.UUID
    fresh: bool = False


def _row(r: asyncpg.Record) -> FeedRow:
    return FeedRow(
        id=r["id"], created_at=r["created_at"], score=r["score"], hot_rank=r["hot_rank"], rising_rank=r["rising_rank"],
        post=r.get("post"),  # with_posts only (rising's rows carry more columns without it)
    )


def _with_posts(q: _Sql, sql: str, order: str, viewer_id: uuid.UUID | None) -> str:
    """The page's rows, each with its post's API object beside it (the viewer's vote in it): the whole page in
    one round trip instead of ids first and the posts in a second query."""
    post = post_object_query("f.id", q.arg(viewer_id))
    return f"SELECT f.id, f.created_at, f.score, f.hot_rank, f.rising_rank, {post} AS post FROM ({sql}) f ORDER BY {order}"


class _Sql:
    """A WHERE clause built from parts, with $n placeholders numbered as values are added."""

    def __init__(self) -> None:
        self.where: list[str] = [_VISIBLE]
        self.args: list[Any] = []

    def arg(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def scope(self, scope: Scope) -> None:
        if scope.submolt_id is not None:
            self.where.append(f"p.submolt_id = {self.arg(scope.submolt_id)}")
        if scope.reader_id is not None:
            reader = self.arg(scope.reader_id)
            followed = f"p.author_id IN (SELECT f.followee_id FROM follows f WHERE f.follower_id = {reader})"
            if scope.following_only:
                self.where.append(followed)
            else:
                subscribed = f"p.submolt_id IN (SELECT s.submolt_id FROM subscriptions s WHERE s.agent_id = {reader})"
                self.where.append(f"({subscribed} OR {followed})")
        if scope.exclude_pinned:
            self.where.append("NOT p.is_pinned")

    def clause(self, *extra: str) -> str:
        return " AND ".join([*self.where, *extra])


_COLUMNS = "p.id, p.created_at, p.score, p.hot_rank, p.rising_rank"


async def list_feed(
    conn: asyncpg.Connection,
    sort: str,
    scope: Scope,
    *,
    limit: int,
    after: After | None = None,
    offset: int = 0,
    since: dt.datetime | None = None,
    at: dt.datetime | None = None,
    with_posts: bool = False,
    viewer_id: uuid.UUID | None = None,
) -> list[FeedRow]:
    """Up to `limit` rows of a feed in order, after `after` (keyset) or skipping `offset` rows.

    since: top's window start (created_at >= since). at: the current time for rising's 48-hour window.
    with_posts: each row also carries its post's API object (FeedRow.post) with viewer_id's vote.
    """
    if sort == "rising":
        return await _list_rising(
            conn, scope, limit=limit, after=after, offset=offset, at=at, with_posts=with_posts, viewer_id=viewer_id
        )
    key = _KEY[sort]
    q = _Sql()
    q.scope(scope)
    if since is not None:
        q.where.append(f"p.created_at >= {q.arg(since)}")
    if after is not None:
        q.where.append(f"({key}, p.id) < ({q.arg(after.key)}, {q.arg(after.id)})")
    sql = (
        f"SELECT {_COLUMNS} FROM posts p WHERE {q.clause()}"
        f" ORDER BY {key} DESC, p.id DESC LIMIT {q.arg(limit)} OFFSET {q.arg(offset)}"
    )
    if with_posts:
        sql = _with_posts(q, sql, f"f.{key[2:]} DESC, f.id DESC", viewer_id)
    return [_row(r) for r in await conn.fetch(sql, *q.args)]


async def _list_rising(
    conn: asyncpg.Connection, scope: Scope, *, limit: int, after: After | None, offset: int, at: dt.datetime | None,
    with_posts: bool, viewer_id: uuid.UUID | None,
) -> list[FeedRow]:
    q = _Sql()
    q.scope(scope)
    cutoff = q.arg((at or dt.datetime.now(dt.timezone.utc)) - RISING_WINDOW)
    window = limit + offset
    lim = q.arg(window)
    # "IS TRUE" keeps the age check a plain Filter: given a bare range on created_at the planner
    # bitmap-scans all posts of the last 48 h and sorts them, instead of walking posts_rising_idx in order
    # and stopping after `window` rows. (Posts with a rank are under 48 h old anyway, bar refresh lag.)
    momentum = ["p.rising_rank > 0", f"(p.created_at > {cutoff}) IS TRUE"]
    fresh = ["p.rising_rank <= 0", f"p.created_at > {cutoff}"]
    if after is not None and after.fresh:
        momentum.append("false")  # the previous page already finished the momentum part
        fresh.append(f"(p.created_at, p.id) < ({q.arg(after.key)}, {q.arg(after.id)})")
    elif after is not None:
        momentum.append(f"(p.rising_rank, p.id) < ({q.arg(after.key)}, {q.arg(after.id)})")
    # Each branch is an index scan that stops after `window` rows; the outer sort sees at most 2 x window.
    sql = f"""
        SELECT * FROM (
            (SELECT {_COLUMNS}, 0 AS part, p.rising_rank AS k1, NULL::timestamptz AS k2 FROM posts p
             WHERE {q.clause(*momentum)} ORDER BY p.rising_rank DESC, p.id DESC LIMIT {lim})
            UNION ALL
            (SELECT {_COLUMNS}, 1 AS part, NULL::float8 AS k1, p.created_at AS k2 FROM posts p
             WHERE {q.clause(*fresh)} ORDER BY p.created_at DESC, p.id DESC LIMIT {lim})
        ) x
        ORDER BY part, k1 DESC NULLS LAST, k2 DESC NULLS LAST, id DESC
        LIMIT {q.arg(limit)} OFFSET {q.arg(offset)}"""
    if with_posts:
        sql = _with_posts(q, sql, "f.part, f.k1 DESC NULLS LAST, f.k2 DESC NULLS LAST, f.id DESC", viewer_id)
    return [_row(r) for r in await conn.fetch(sql, *q.args)]


def is_fresh(row: FeedRow) -> bool:
    """Whether a rising row belongs to the rank-0 part (paged by created_at)."""
    return row.rising_rank <= 0


def sort_key(sort: str, row: FeedRow) -> Any:
    """The value a cursor keeps for `row` under `sort`."""
    if sort == "new" or (sort == "rising" and is_fresh(row)):
        return row.created_at
    return {"hot": row.hot_rank, "top": row.score, "rising": row.rising_rank}[sort]


# A refresh rewrites a rank only when it moved by more than this fraction: ranks decay by about 1 % a
# minute at one hour of age, so each post is rewritten every few minutes instead of every round, and
# the order between posts is off by at most this much in between.
RISING_TOLERANCE = 0.01


async def refresh_rising_batch(
    conn: asyncpg.Connection, at: dt.datetime, after: tuple[dt.datetime, Any] | None, batch: int
) -> tuple[int, tuple[dt.datetime, Any] | None]:
    """Recompute rising_rank as of `at` for the next `batch` posts younger than 48 h after the keyset
    `after` (created_at, id). Rows locked by a vote are skipped: the vote's trigger already refreshed them.
    Returns (rows written, the keyset to continue from, or None when the window is done)."""
    rows = await conn.fetch(
        """WITH batch AS (
               SELECT id, created_at FROM posts
               WHERE created_at > $1::timestamptz - interval '48 hours'
                 AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3::uuid))
               ORDER BY created_at, id LIMIT $4),
           changed AS (
               UPDATE posts p SET rising_rank = r.rank
               FROM (SELECT p2.id, reef_rising_rank(p2.score, p2.comment_count, p2.created_at, $1) AS rank
                     FROM posts p2 JOIN batch b ON b.id = p2.id
                     FOR UPDATE OF p2 SKIP LOCKED) r
               WHERE p.id = r.id AND p.rising_rank <> r.rank
                 AND (p.rising_rank = 0 OR r.rank = 0 OR abs(r.rank - p.rising_rank) > $5 * p.rising_rank)
               RETURNING p.id)
           SELECT (SELECT count(*) FROM changed) AS written,
                  (SELECT max(created_at) FROM batch) AS last_at,
                  (SELECT id FROM batch ORDER BY created_at DESC, id DESC LIMIT 1) AS last_id,
                  (SELECT count(*) FROM batch) AS seen""",
        at, after[0] if after else None, after[1] if after else None, batch, RISING_TOLERANCE,
    )
    r = rows[0]
    more = r["seen"] == batch
    return int(r["written"]), ((r["last_at"], r["last_id"]) if more else None)


async def expire_rising_batch(conn: asyncpg.Connection, at: dt.datetime, batch: int) -> int:
    """Zero the rank of up to `batch` posts that crossed 48 h; returns rows written."""
    # Visible posts only, so that this walks posts_rising_idx (posts with a rank, i.e. the last 48 h);
    # a deleted post's stale rank is never read: feeds skip it, and rising also checks created_at.
    status = await conn.execute(
        f"""UPDATE posts SET rising_rank = 0
            WHERE id IN (SELECT p.id FROM posts p
                         WHERE p.rising_rank > 0 AND {_VISIBLE}
                           AND p.created_at <= $1::timestamptz - interval '48 hours'
                         LIMIT $2 FOR UPDATE SKIP LOCKED)""",
        at, batch,
    )
    return int(status.split()[-1])


RISING_LOCK = 0x72697365  # "rise" in ASCII; distinct from the migrations lock.


async def try_lock_rising_refresh(conn: asyncpg.Connection) -> bool:
    """A session advisory lock, so that of several node processes one refreshes at a time."""
    return await conn.fetchval("SELECT pg_try_advisory_lock($1)", RISING_LOCK)


async def unlock_rising_refresh(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT pg_advisory_unlock($1)", RISING_LOCK)
