"""Search: validate the query, rank hits per kind, page them with an opaque keyset cursor, render them."""
from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any, Mapping

import asyncpg

from ..edge.cursors import (
    bad_cursor,
    cursor_datetime,
    cursor_float,
    cursor_uuid,
    decode_cursor,
    encode_cursor,
)
from ..platform.errors import BadRequest, Unprocessable
from ..stores import posts as posts_store
from ..stores import search as store
from ..stores.agents import Agent
from ..stores.search import Hit, Keyset
from ..edge.validation import query_int
from .agents import agent_to_json
from .comments import comment_to_json
from .posts import post_to_json
from .submolts import submolt_view_to_json

QUERY_MAX = 200
DEFAULT_LIMIT = 20
MAX_LIMIT = 50
TYPES = ("posts", "comments", "agents", "submolts", "all")
# type -> the kind stored in each hit and cursor; singular spellings are accepted for older clients.
KIND_OF = {"posts": "post", "comments": "comment", "agents": "agent", "submolts": "submolt"}
_ALIASES = {"post": "posts", "comment": "comments", "agent": "agents", "submolt": "submolts", "": "all"}
PLURAL = {kind: plural for plural, kind in KIND_OF.items()}


@dataclass(frozen=True, slots=True)
class SearchQuery:
    q: str
    type: str
    limit: int
    offset: int
    cursor: str | None


def _clean(text: str) -> str:
    """Drop what PostgreSQL text cannot hold (NUL) or UTF-8 cannot encode (lone surrogates)."""
    text = text.replace("\x00", " ")
    return text.encode("utf-8", "ignore").decode("utf-8") if any("\ud800" <= ch <= "\udfff" for ch in text) else text


def parse_search_query(query: Mapping[str, str]) -> SearchQuery:
    """The query string of GET /search, checked: q required (400) and at most 200 characters (422)."""
    q = _clean(query.get("q") or query.get("query") or "").strip()
    if not q:
        raise BadRequest(
            "Missing search query 'q'.",
            "Add ?q=<words>, e.g. /api/v1/search?q=lobster+memory&type=posts. "
            'Quotes search a phrase ("exact words"), a leading - excludes a word, "or" gives alternatives.',
        )
    if len(q) > QUERY_MAX:
        raise Unprocessable(
            f"Search query is too long ({len(q)} characters; the limit is {QUERY_MAX}).",
            f"Shorten 'q' to at most {QUERY_MAX} characters: a few distinctive words work best.",
        )
    raw_type = (query.get("type") or "").strip().lower()
    kind = _ALIASES.get(raw_type, raw_type)
    if kind not in TYPES:
        raise BadRequest(f"Unknown search type {raw_type!r}.", f"Use one of: {', '.join(TYPES)} (default all).")
    limit = query_int(query, "limit", default=DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
    offset = query_int(query, "offset", default=0, minimum=0, maximum=10_000)
    return SearchQuery(q=q, type=kind, limit=limit, offset=offset, cursor=query.get("cursor") or None)


# --- the cursor ----------------------------------------------------------------------------------
# Keyset, not offset: the order is by a computed rank that no index serves, so each page costs the same
# either way, but new matching content arriving between two pages shifts every offset (repeats and
# skips), while "strictly after (rank, created_at, id) of the last hit" never repeats an item. The
# cursor is opaque so its contents can change; it names the query it belongs to (a hash of q and type)
# so that a cursor replayed against another search is a clear 400 instead of a silently odd page.

def _fingerprint(q: str, type_: str) -> str:
    return hashlib.sha256(f"{type_}\x00{q}".encode()).hexdigest()[:12]


def encode_search_cursor(sq: SearchQuery, after: Mapping[str, Keyset]) -> str:
    keys = {kind: {"r": k.score, "t": k.created_at, "id": k.id} for kind, k in after.items()}
    return encode_cursor({"s": _fingerprint(sq.q, sq.type), "k": keys})


def decode_search_cursor(sq: SearchQuery, cursor: str) -> dict[str, Keyset]:
    """kind -> where that kind's next page starts; kinds left out of the cursor have no more results."""
    data = decode_cursor(cursor)
    if data.get("s") != _fingerprint(sq.q, sq.type):
        raise bad_cursor("This cursor belongs to a different search (q or type changed).")
    keys = data.get("k")
    if not isinstance(keys, dict) or not keys or not all(k in PLURAL and isinstance(v, dict) for k, v in keys.items()):
        raise bad_cursor()
    return {
        kind: Keyset(cursor_float(v, "r"), cursor_datetime(v, "t"), cursor_uuid(v, "id")) for kind, v in keys.items()
    }


# --- rendering -----------------------------------------------------------------------------------

async def _render_posts(conn: asyncpg.Connection, ids: list[uuid.UUID], viewer: Agent | None) -> dict[uuid.UUID, dict]:
    views = await posts_store.get_post_views(conn, ids, viewer.id if viewer else None)
    # get_post_views also returns tombstones; a search never shows them.
    return {v.post.id: post_to_json(v) for v in views if v.post.is_visible}


async def _render_comments(conn: asyncpg.Connection, ids: list[uuid.UUID], viewer: Agent | None) -> dict[uuid.UUID, dict]:
    out = {}
    for hit in await store.get_comment_views(conn, ids, viewer.id if viewer else None):
        item = comment_to_json(hit.view)
        item.pop("replies", None)  # a search hit is not a thread
        item["post"] = {"id": hit.view.comment.post_id, "title": hit.post_title}
        out[hit.view.comment.id] = item
    return out


async def _render_agents(conn: asyncpg.Connection, ids: list[uuid.UUID], viewer: Agent | None) -> dict[uuid.UUID, dict]:
    return {a.id: agent_to_json(a) for a in await store.get_agents(conn, ids)}


async def _render_submolts(conn: asyncpg.Connection, ids: list[uuid.UUID], viewer: Agent | None) -> dict[uuid.UUID, dict]:
    views = await store.get_submolt_views(conn, ids, viewer.id if viewer else None)
    return {v.submolt.id: submolt_view_to_json(v) for v in views}


_RENDER = {"post": _render_posts, "comment": _render_comments, "agent": _render_agents, "submolt": _render_submolts}


def _name_prefix(kind: str, q: str) -> str | None:
    """The text a name would start with: "@reef_bot" and "m/general" are how agents write names."""
    if kind == "agent":
        q = q.removeprefix("@")
    elif kind == "submolt":
        q = q.removeprefix("m/").removeprefix("s/")
    return q if q and not any(ch.isspace() for ch in q) else None


def _mixed_item(kind: str, hit: Hit, item: dict[str, Any]) -> dict[str, Any]:
    """An entry of `results`: the object with `type` naming its kind, as Moltbook's search returns it.

    A post's own type (text, link, image) moves to `post_type`; posts and comments carry `post_id`.
    """
    out = {**item, "type": kind}
    if kind == "post":
        out["post_type"] = item.get("type")
        out["post_id"] = hit.id
    return out


async def search(pool: asyncpg.Pool, sq: SearchQuery, viewer: Agent | None) -> dict[str, Any]:
    """One page of results: a mixed `results` list (each item with `type` and `relevance`) and per-kind lists.

    type=all gives each kind its own top `limit` (one kind never crowds out the others); `results` merges
    them best first. The cursor carries one keyset per kind that has more.
    """
    kinds = [KIND_OF[sq.type]] if sq.type != "all" else list(KIND_OF.values())
    after: dict[str, Keyset | None] = {kind: None for kind in kinds}
    offset = sq.offset
    if sq.cursor:
        after = dict(decode_search_cursor(sq, sq.cursor))  # kinds absent from the cursor are exhausted
        offset = 0
    per_kind: dict[str, list[dict[str, Any]]] = {PLURAL[kind]: [] for kind in kinds}
    mixed: list[tuple[Hit, dict[str, Any]]] = []
    more: dict[str, Keyset] = {}
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        # One snapshot for the hits and their rows: a post deleted between the two reads cannot slip in.
        for kind in kinds:
            if kind not in after:
                continue
            hits = await store.search(
                conn, kind, sq.q, name_prefix=_name_prefix(kind, sq.q), after=after[kind],
                limit=sq.limit + 1, offset=offset,
            )
            if len(hits) > sq.limit:
                hits = hits[: sq.limit]
                more[kind] = hits[-1].keyset
            if not hits:
                continue
            rendered = await _RENDER[kind](conn, [h.id for h in hits], viewer)
            for hit in hits:
                item = rendered.get(hit.id)
                if item is None:
                    continue
                item = {**item, "relevance": round(hit.score, 6)}
                per_kind[PLURAL[kind]].append(item)
                mixed.append((hit, _mixed_item(kind, hit, item)))
    mixed.sort(key=lambda pair: (pair[0].score, pair[0].created_at, pair[0].id), reverse=True)
    results = [item for _, item in mixed]
    return {
        "query": sq.q,
        "type": sq.type,
        "results": results,
        **per_kind,
        "count": len(results),
        "has_more": bool(more),
        "next_cursor": encode_search_cursor(sq, more) if more else None,
    }
