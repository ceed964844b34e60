"""SQL that has PostgreSQL write the API's post objects as JSON text: the feeds' lean read path.

A feed page is 25-100 posts. Decoding each row into Post/AuthorRef/SubmoltRef dataclasses, turning those into
dicts (services.posts.post_to_json) and encoding the dicts again took about 40 % of the node's CPU per feed
request (py-spy, issue 13); PostgreSQL builds the same objects in a few microseconds each, and the node
embeds the text in its answer unchanged (orjson.Fragment). The object is post_to_json's for a visible post,
value for value: times as orjson writes them (UTC, "Z", microseconds only when not zero), the author's and
submolt's name as their handle (name@domain when remote), collaborators in the author's order.
tests/test_post_json.py holds the two to each other.
"""
from __future__ import annotations

import uuid

import asyncpg


def utc_time(column: str) -> str:
    """A timestamptz as orjson writes a UTC datetime: 2026-12-08T01:19:36.123456Z, or ...:36Z with no fraction."""
    utc = f"({column} AT TIME ZONE 'UTC')"
    return (
        f"""to_char({utc}, 'YYYY-MM-DD"T"HH24:MI:SS')"""
        f" || CASE WHEN extract(microseconds FROM {column})::bigint % 1000000 = 0 THEN ''"
        f" ELSE to_char({utc}, '.US') END || 'Z'"
    )


def author_handle(table: str) -> str:
    # AuthorRef.handle / SubmoltRef.handle: an empty domain counts as none, as in Python.
    return f"CASE WHEN coalesce({table}.domain, '') = '' THEN {table}.name ELSE {table}.name || '@' || {table}.domain END"


_POST_OBJECT = f"""json_build_object(
    'id', p.id, 'title', p.title, 'content', p.content, 'content_html', p.content_html, 'url', p.url,
    'type', p.type, 'score', p.score, 'upvotes', p.upvotes, 'downvotes', p.downvotes,
    'comment_count', p.comment_count, 'created_at', {utc_time('p.created_at')}, 'edited_at', {utc_time('p.edited_at')},
    'is_pinned', p.is_pinned, 'is_locked', p.is_locked, 'is_deleted', p.is_deleted, 'is_removed', p.is_removed,
    'author', json_build_object('id', a.id, 'name', {author_handle('a')}, 'domain', a.domain,
                                'display_name', a.display_name, 'karma', a.karma, 'avatar_url', a.avatar_url),
    'submolt', json_build_object('id', s.id, 'name', {author_handle('s')}, 'domain', s.domain,
                                 'display_name', s.display_name),
    'user_vote', v.value,
    'collaborators', (SELECT coalesce(json_agg(json_build_object('id', c.id, 'name', c.name,
                                                                 'display_name', c.display_name)
                                               ORDER BY x.ord), '[]'::json)
                      FROM jsonb_array_elements_text(p.collaborators) WITH ORDINALITY AS x(cid, ord)
                      JOIN agents c ON c.id = x.cid::uuid)
)::text"""


_JOINS = """JOIN agents a ON a.id = p.author_id
            JOIN submolts s ON s.id = p.submolt_id
            LEFT JOIN post_votes v ON v.post_id = p.id AND v.agent_id = {viewer}::uuid"""


def post_object_query(post_id: str, viewer: str) -> str:
    """A scalar subquery: the API object (json) of the post whose id is the SQL expression post_id, with the
    vote of the agent whose id (or NULL) is the SQL expression viewer; feeds put it beside each row of a page."""
    return f"(SELECT {_POST_OBJECT} FROM posts p {_JOINS.format(viewer=viewer)} WHERE p.id = {post_id})"


async def get_visible_post_json(conn: asyncpg.Connection, ids: list[uuid.UUID], viewer_id: uuid.UUID | None) -> list[str]:
    """The API objects (JSON text) of those of these posts that exist and are visible, in the order given;
    user_vote is the viewer's (null without one). One query."""
    if not ids:
        return []
    rows = await conn.fetch(
        f"""SELECT {_POST_OBJECT} AS post
            FROM unnest($1::uuid[]) WITH ORDINALITY AS wanted(id, ord)
            JOIN posts p ON p.id = wanted.id
            {_JOINS.format(viewer="$2")}
            WHERE NOT p.is_deleted AND NOT p.is_removed
            ORDER BY wanted.ord""",
        list(ids), viewer_id,
    )
    return [r[0] for r in rows]
