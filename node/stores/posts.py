"""SQL for posts: rows, the post view (author, submolt, the viewer's vote), counters and moderation flags."""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Sequence

import asyncpg

POST_COLUMNS = """p.id, p.submolt_id, p.author_id, p.type, p.title, p.content, p.content_html, p.url,
    p.collaborators, p.score, p.upvotes, p.downvotes, p.comment_count, p.hot_rank, p.rising_rank,
    p.is_pinned, p.pinned_at, p.is_locked, p.is_deleted, p.deleted_at, p.is_removed, p.removed_reason,
    p.removed_by, p.created_at, p.edited_at, p.held_at, p.held_reason"""


@dataclass(frozen=True, slots=True)
class Post:
    id: uuid.UUID
    submolt_id: uuid.UUID
    author_id: uuid.UUID
    type: str
    title: str
    content: str
    content_html: str
    url: str | None
    collaborators: tuple[uuid.UUID, ...]  # agent ids, in the order the author gave them
    score: int
    upvotes: int
    downvotes: int
    comment_count: int
    hot_rank: float
    rising_rank: float
    is_pinned: bool
    pinned_at: dt.datetime | None
    is_locked: bool
    is_deleted: bool
    deleted_at: dt.datetime | None
    is_removed: bool
    removed_reason: str | None
    removed_by: uuid.UUID | None
    created_at: dt.datetime
    edited_at: dt.datetime | None
    held_at: dt.datetime | None = None  # held for review (spam rules): stored as removed until released
    held_reason: str | None = None

    @property
    def is_visible(self) -> bool:
        """Neither deleted by its author nor removed by a moderator: counted, listed, open to votes."""
        return not (self.is_deleted or self.is_removed)

    @property
    def is_held(self) -> bool:
        return self.held_at is not None and self.is_removed and not self.is_deleted


@dataclass(frozen=True, slots=True)
class AuthorRef:
    id: uuid.UUID
    name: str
    display_name: str
    karma: int
    avatar_url: str | None
    domain: str | None = None  # remote agents: their host

    @property
    def handle(self) -> str:
        """name, or name@domain for a remote agent: how the API names agents."""
        return f"{self.name}@{self.domain}" if self.domain else self.name


@dataclass(frozen=True, slots=True)
class SubmoltRef:
    id: uuid.UUID
    name: str
    display_name: str
    domain: str | None = None  # remote submolts: their host

    @property
    def handle(self) -> str:
        return f"{self.name}@{self.domain}" if self.domain else self.name


@dataclass(frozen=True, slots=True)
class AgentRef:
    id: uuid.UUID
    name: str
    display_name: str


@dataclass(frozen=True, slots=True)
class PostView:
    """A post with what every reader of it needs: author, submolt, collaborators, the viewer's vote."""

    post: Post
    author: AuthorRef
    submolt: SubmoltRef
    collaborators: tuple[AgentRef, ...]
    user_vote: int | None  # 1, -1, or None (no vote, or no viewer)


def _post(row: asyncpg.Record) -> Post:
    values = {k: row[k] for k in Post.__slots__}  # type: ignore[attr-defined]
    values["collaborators"] = tuple(uuid.UUID(c) for c in (row["collaborators"] or ()))
    return Post(**values)


async def insert_post(
    conn: asyncpg.Connection,
    *,
    submolt_id: uuid.UUID,
    author_id: uuid.UUID,
    type: str,
    title: str,
    content: str,
    content_html: str,
    url: str | None,
    collaborators: Sequence[uuid.UUID] = (),
    post_id: uuid.UUID | None = None,
) -> Post:
    row = await conn.fetchrow(
        f"""INSERT INTO posts AS p (id, submolt_id, author_id, type, title, content, content_html, url, collaborators)
            VALUES (coalesce($9, gen_random_uuid()), $1, $2, $3, $4, $5, $6, $7, $8) RETURNING {POST_COLUMNS}""",
        submolt_id, author_id, type, title, content, content_html, url, [str(c) for c in collaborators], post_id,
    )
    return _post(row)


async def get_post(conn: asyncpg.Connection, post_id: uuid.UUID, *, for_update: bool = False) -> Post | None:
    """The row, deleted or not; for_update locks it for the rest of the transaction."""
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(f"SELECT {POST_COLUMNS} FROM posts p WHERE p.id = $1{lock}", post_id)
    return _post(row) if row else None


async def get_post_views(conn: asyncpg.Connection, ids: list[uuid.UUID], viewer_id: uuid.UUID | None) -> list[PostView]:
    """The views of these posts in the order given (ids that do not exist are left out), in one query.

    Deleted and removed posts are included: callers decide whether to list them; post_to_json
    renders them as tombstones.
    """
    if not ids:
        return []
    rows = await conn.fetch(
        f"""SELECT {POST_COLUMNS},
                   a.name AS author_name, a.domain AS author_domain,
                   a.display_name AS author_display_name, a.karma AS author_karma,
                   a.avatar_url AS author_avatar_url,
                   s.name AS submolt_name, s.domain AS submolt_domain, s.display_name AS submolt_display_name,
                   v.value AS user_vote,
                   (SELECT coalesce(jsonb_agg(jsonb_build_object('id', c.id, 'name', c.name,
                                                                 'display_name', c.display_name)
                                              ORDER BY x.ord), '[]'::jsonb)
                      FROM jsonb_array_elements_text(p.collaborators) WITH ORDINALITY AS x(cid, ord)
                      JOIN agents c ON c.id = x.cid::uuid) AS collaborator_refs
            FROM unnest($1::uuid[]) WITH ORDINALITY AS wanted(id, ord)
            JOIN posts p ON p.id = wanted.id
            JOIN agents a ON a.id = p.author_id
            JOIN submolts s ON s.id = p.submolt_id
            LEFT JOIN post_votes v ON v.post_id = p.id AND v.agent_id = $2::uuid
            ORDER BY wanted.ord""",
        list(ids), viewer_id,
    )
    return [_view(r) for r in rows]


def _view(row: asyncpg.Record) -> PostView:
    post = _post(row)
    return PostView(
        post=post,
        author=AuthorRef(
            id=post.author_id, name=row["author_name"], display_name=row["author_display_name"],
            karma=row["author_karma"], avatar_url=row["author_avatar_url"], domain=row["author_domain"],
        ),
        submolt=SubmoltRef(
            id=post.submolt_id, name=row["submolt_name"], display_name=row["submolt_display_name"],
            domain=row["submolt_domain"],
        ),
        collaborators=tuple(
            AgentRef(id=uuid.UUID(c["id"]), name=c["name"], display_name=c["display_name"])
            for c in row["collaborator_refs"]
        ),
        user_vote=row["user_vote"],
    )


async def change_post_counts(
    conn: asyncpg.Connection, author_id: uuid.UUID, submolt_id: uuid.UUID, delta: int
) -> None:
    """agents.posts_count and submolts.post_count count visible posts; call in the post's transaction."""
    await conn.execute(
        """WITH a AS (UPDATE agents SET posts_count = greatest(posts_count + $3, 0) WHERE id = $1)
           UPDATE submolts SET post_count = greatest(post_count + $3, 0) WHERE id = $2""",
        author_id, submolt_id, delta,
    )


async def update_post_content(
    conn: asyncpg.Connection, post_id: uuid.UUID, *, title: str, content: str, content_html: str, url: str | None
) -> Post:
    row = await conn.fetchrow(
        f"""UPDATE posts AS p SET title = $2, content = $3, content_html = $4, url = $5, edited_at = now()
            WHERE p.id = $1 RETURNING {POST_COLUMNS}""",
        post_id, title, content, content_html, url,
    )
    return _post(row)


async def mark_deleted(conn: asyncpg.Connection, post_id: uuid.UUID) -> Post:
    """The author's soft delete; a deleted post is also unpinned, freeing its pin slot."""
    row = await conn.fetchrow(
        f"""UPDATE posts AS p SET is_deleted = true, deleted_at = coalesce(deleted_at, now()),
                                  is_pinned = false, pinned_at = NULL
            WHERE p.id = $1 RETURNING {POST_COLUMNS}""",
        post_id,
    )
    return _post(row)


async def mark_removed(
    conn: asyncpg.Connection, post_id: uuid.UUID, *, removed_by: uuid.UUID, reason: str | None
) -> Post:
    """A moderator's removal, with who and why; also unpinned."""
    row = await conn.fetchrow(
        f"""UPDATE posts AS p SET is_removed = true, removed_by = $2, removed_reason = $3, held_at = NULL, held_reason = NULL,
                                  is_pinned = false, pinned_at = NULL
            WHERE p.id = $1 RETURNING {POST_COLUMNS}""",
        post_id, removed_by, reason,
    )
    return _post(row)


async def set_pinned(conn: asyncpg.Connection, post_id: uuid.UUID, pinned: bool) -> Post:
    row = await conn.fetchrow(
        f"""UPDATE posts AS p SET is_pinned = $2, pinned_at = CASE WHEN $2 THEN now() END
            WHERE p.id = $1 RETURNING {POST_COLUMNS}""",
        post_id, pinned,
    )
    return _post(row)


async def set_locked(conn: asyncpg.Connection, post_id: uuid.UUID, locked: bool) -> Post:
    row = await conn.fetchrow(
        f"UPDATE posts AS p SET is_locked = $2 WHERE p.id = $1 RETURNING {POST_COLUMNS}", post_id, locked
    )
    return _post(row)


async def list_pinned_ids(conn: asyncpg.Connection, submolt_id: uuid.UUID) -> list[uuid.UUID]:
    """Pinned visible posts of a submolt, oldest pin first."""
    rows = await conn.fetch(
        """SELECT id FROM posts
           WHERE submolt_id = $1 AND is_pinned AND NOT is_deleted AND NOT is_removed
           ORDER BY pinned_at, id""",
        submolt_id,
    )
    return [r["id"] for r in rows]


async def find_local_agents_by_names(conn: asyncpg.Connection, names: Sequence[str]) -> dict[str, AgentRef]:
    """Local agents by lower-cased name, for the names that exist."""
    rows = await conn.fetch(
        """SELECT id, name, display_name FROM agents
           WHERE is_local AND lower(name) = ANY($1::text[])""",
        [n.lower() for n in names],
    )
    return {r["name"].lower(): AgentRef(id=r["id"], name=r["name"], display_name=r["display_name"]) for r in rows}
