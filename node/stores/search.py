"""SQL for full-text search: ranked, keyset-paged hits over posts, comments, agents and submolts."""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import asyncpg

from .agents import AGENT_COLUMNS, Agent
from .comments import COMMENT_COLUMNS, Comment, CommentAuthor, CommentView
from .submolts import SUBMOLT_COLUMNS, Submolt, SubmoltView

# ts_rank_cd normalisation 32 maps a rank r to r / (r + 1): always in [0, 1), comparable across queries,
# and small enough that the name tiers below (+1 prefix, +2 exact name) always sort above it.
_RANK = "ts_rank_cd({tsv}, tsq, 32)::float8"

# Name tiers for agents and submolts. The range test is a prefix match that a btree on
# lower(name) text_pattern_ops serves even in a generic prepared plan (LIKE with a parameter cannot):
# every string that starts with p sorts, bytewise, between p and p || U+10FFFF.
_TIER = """(CASE WHEN lower({t}.name) = lower($7::text) THEN 2
                 WHEN lower({t}.name) ~>=~ lower($7::text)
                      AND lower({t}.name) ~<~ (lower($7::text) || chr(1114111)) THEN 1
                 ELSE 0 END)"""
_PREFIX = """(lower({t}.name) ~>=~ lower($7::text) AND lower({t}.name) ~<~ (lower($7::text) || chr(1114111)))"""


@dataclass(frozen=True, slots=True)
class Keyset:
    """The last hit of a page: results continue strictly after (score, created_at, id) in descending order."""

    score: float
    created_at: dt.datetime
    id: uuid.UUID


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result before it is rendered: what matched, how well, and its place in the order."""

    kind: str  # post | comment | agent | submolt
    id: uuid.UUID
    score: float
    created_at: dt.datetime

    @property
    def keyset(self) -> Keyset:
        return Keyset(self.score, self.created_at, self.id)


# Every query below ranks in a subquery and pages outside it, so the keyset compares the very
# float8 the ORDER BY used; rows tie on created_at then id, which makes the order total.
_PAGE = """
SELECT id, score, created_at FROM ({inner}) ranked
WHERE $2::float8 IS NULL OR (score, created_at, id) < ($2::float8, $3::timestamptz, $4::uuid)
ORDER BY score DESC, created_at DESC, id DESC
LIMIT $5 OFFSET $6
"""

_POSTS = _PAGE.format(inner=f"""
    SELECT p.id, {_RANK.format(tsv="p.search_tsv")} AS score, p.created_at
    FROM posts p CROSS JOIN websearch_to_tsquery('english', $1::text) AS tsq
    WHERE p.search_tsv @@ tsq AND NOT p.is_deleted AND NOT p.is_removed
""")

_COMMENTS = _PAGE.format(inner=f"""
    SELECT c.id, {_RANK.format(tsv="c.search_tsv")} AS score, c.created_at
    FROM comments c
    JOIN posts p ON p.id = c.post_id
    CROSS JOIN websearch_to_tsquery('english', $1::text) AS tsq
    WHERE c.search_tsv @@ tsq AND NOT c.is_deleted AND NOT c.is_removed
      AND NOT p.is_deleted AND NOT p.is_removed
""")

_AGENTS = _PAGE.format(inner=f"""
    SELECT a.id, {_TIER.format(t="a")} + {_RANK.format(tsv="a.search_tsv")} AS score, a.created_at
    FROM agents a CROSS JOIN websearch_to_tsquery('english', $1::text) AS tsq
    WHERE (a.search_tsv @@ tsq OR {_PREFIX.format(t="a")}) AND a.status <> 'suspended'
""")

_SUBMOLTS = _PAGE.format(inner=f"""
    SELECT s.id, {_TIER.format(t="s")} + {_RANK.format(tsv="s.search_tsv")} AS score, s.created_at
    FROM submolts s CROSS JOIN websearch_to_tsquery('english', $1::text) AS tsq
    WHERE s.search_tsv @@ tsq OR {_PREFIX.format(t="s")}
""")

_QUERIES = {"post": _POSTS, "comment": _COMMENTS, "agent": _AGENTS, "submolt": _SUBMOLTS}


async def search(
    conn: asyncpg.Connection,
    kind: str,
    query: str,
    *,
    name_prefix: str | None = None,
    after: Keyset | None = None,
    limit: int,
    offset: int = 0,
) -> list[Hit]:
    """Hits of one kind for a websearch-syntax query, best first, strictly after `after`.

    `name_prefix` (agents and submolts) also finds names that start with it, ranked above text matches.
    `offset` is for clients that page by offset; cursors use `after`.
    The query text goes to websearch_to_tsquery as a bound parameter, which never raises on any input.
    """
    args: list[object] = [
        query,
        after.score if after else None,
        after.created_at if after else None,
        after.id if after else None,
        limit,
        offset,
    ]
    if kind in ("agent", "submolt"):
        args.append(name_prefix or None)
    rows = await conn.fetch(_QUERIES[kind], *args)
    return [Hit(kind, r["id"], r["score"], r["created_at"]) for r in rows]


# --- rendering the hits: rows in one query per kind ----------------------------------------------

async def get_agents(conn: asyncpg.Connection, ids: list[uuid.UUID]) -> list[Agent]:
    rows = await conn.fetch(f"SELECT {AGENT_COLUMNS} FROM agents a WHERE a.id = ANY($1::uuid[])", ids)
    return [Agent(**{k: r[k] for k in Agent.__slots__}) for r in rows]  # type: ignore[attr-defined]


async def get_submolt_views(
    conn: asyncpg.Connection, ids: list[uuid.UUID], viewer_id: uuid.UUID | None
) -> list[SubmoltView]:
    rows = await conn.fetch(
        f"""SELECT {SUBMOLT_COLUMNS}, m.role AS your_role, (sub.agent_id IS NOT NULL) AS is_subscribed
            FROM submolts s
            LEFT JOIN submolt_moderators m ON m.submolt_id = s.id AND m.agent_id = $2::uuid
            LEFT JOIN subscriptions sub ON sub.submolt_id = s.id AND sub.agent_id = $2::uuid
            WHERE s.id = ANY($1::uuid[])""",
        ids, viewer_id,
    )
    return [
        SubmoltView(
            submolt=Submolt(**{k: r[k] for k in Submolt.__slots__}),  # type: ignore[attr-defined]
            your_role=r["your_role"],
            is_subscribed=r["is_subscribed"],
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class CommentHitView:
    """A matching comment as the viewer sees it, with the title of its post (search results show it)."""

    view: CommentView
    post_title: str


async def get_comment_views(
    conn: asyncpg.Connection, ids: list[uuid.UUID], viewer_id: uuid.UUID | None
) -> list[CommentHitView]:
    """Live comments on live posts only: one deleted or removed since the search snapshot is left out."""
    rows = await conn.fetch(
        f"""SELECT {COMMENT_COLUMNS}, a.name AS a_name, a.domain AS a_domain, a.display_name AS a_display_name, a.karma AS a_karma,
                   a.avatar_url AS a_avatar_url, v.value AS user_vote, p.title AS post_title
            FROM comments c
            JOIN agents a ON a.id = c.author_id
            JOIN posts p ON p.id = c.post_id
            LEFT JOIN comment_votes v ON v.comment_id = c.id AND v.agent_id = $2::uuid
            WHERE c.id = ANY($1::uuid[]) AND NOT c.is_deleted AND NOT c.is_removed
              AND NOT p.is_deleted AND NOT p.is_removed""",
        ids, viewer_id,
    )
    out = []
    for r in rows:
        author = CommentAuthor(
            id=r["author_id"], name=r["a_name"], display_name=r["a_display_name"],
            karma=r["a_karma"], avatar_url=r["a_avatar_url"], domain=r["a_domain"],
        )
        comment = Comment(**{k: r[k] for k in Comment.__slots__})  # type: ignore[attr-defined]
        out.append(CommentHitView(CommentView(comment=comment, author=author, user_vote=r["user_vote"]), r["post_title"]))
    return out
