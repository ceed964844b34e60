"""SQL for reports of posts and comments: filing, the moderators' queue, resolving."""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import asyncpg

_COLUMNS = """r.id, r.target_type, r.target_id, r.post_id, r.comment_id, r.submolt_id, r.reporter_id, r.reason,
    r.status, r.created_at, r.resolved_at, r.resolved_by, r.resolution"""


@dataclass(frozen=True, slots=True)
class Report:
    id: uuid.UUID
    target_type: str  # post | comment
    target_id: uuid.UUID
    post_id: uuid.UUID
    comment_id: uuid.UUID | None
    submolt_id: uuid.UUID
    reporter_id: uuid.UUID
    reason: str
    status: str  # open | resolved | dismissed
    created_at: dt.datetime
    resolved_at: dt.datetime | None
    resolved_by: str | None
    resolution: str | None


@dataclass(frozen=True, slots=True)
class QueueItem:
    """A report with what a moderator needs to judge it without opening the item."""

    report: Report
    reporter_name: str
    submolt_name: str
    post_title: str
    author_name: str
    content: str        # the reported post's or comment's markdown source (the moderator sees it even if removed)
    is_removed: bool
    is_deleted: bool


def _report(row: asyncpg.Record) -> Report:
    return Report(**{k: row[k] for k in Report.__slots__})  # type: ignore[attr-defined]


async def insert_report(
    conn: asyncpg.Connection,
    *,
    target_type: str,
    target_id: uuid.UUID,
    post_id: uuid.UUID,
    comment_id: uuid.UUID | None,
    submolt_id: uuid.UUID,
    reporter_id: uuid.UUID,
    reason: str,
) -> Report | None:
    """The new report, or None when this agent already reported this item."""
    row = await conn.fetchrow(
        f"""INSERT INTO reports AS r (target_type, target_id, post_id, comment_id, submolt_id, reporter_id, reason)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (reporter_id, target_type, target_id) DO NOTHING
            RETURNING {_COLUMNS}""",
        target_type, target_id, post_id, comment_id, submolt_id, reporter_id, reason,
    )
    return _report(row) if row else None


async def get_existing(
    conn: asyncpg.Connection, reporter_id: uuid.UUID, target_type: str, target_id: uuid.UUID
) -> Report | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM reports r WHERE r.reporter_id = $1 AND r.target_type = $2 AND r.target_id = $3",
        reporter_id, target_type, target_id,
    )
    return _report(row) if row else None


async def get_report(conn: asyncpg.Connection, report_id: uuid.UUID, *, for_update: bool = False) -> Report | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM reports r WHERE r.id = $1{lock}", report_id)
    return _report(row) if row else None


async def list_queue(
    conn: asyncpg.Connection, *, submolt_ids: list[uuid.UUID] | None, status: str = "open", limit: int = 100
) -> list[QueueItem]:
    """Reports in these submolts (None: every submolt, for node admins), oldest first, with their items."""
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS}, rep.name AS reporter_name, s.name AS submolt_name, p.title AS post_title,
                   au.name AS author_name,
                   CASE WHEN r.comment_id IS NULL THEN p.content ELSE c.content END AS content,
                   CASE WHEN r.comment_id IS NULL THEN p.is_removed ELSE c.is_removed END AS is_removed,
                   CASE WHEN r.comment_id IS NULL THEN p.is_deleted ELSE c.is_deleted END AS is_deleted
            FROM reports r
            JOIN agents rep ON rep.id = r.reporter_id
            JOIN submolts s ON s.id = r.submolt_id
            JOIN posts p ON p.id = r.post_id
            LEFT JOIN comments c ON c.id = r.comment_id
            JOIN agents au ON au.id = coalesce(c.author_id, p.author_id)
            WHERE r.status = $1 AND ($2::uuid[] IS NULL OR r.submolt_id = ANY($2::uuid[]))
            ORDER BY r.created_at, r.id LIMIT $3""",
        status, submolt_ids, limit,
    )
    return [
        QueueItem(
            report=_report(r), reporter_name=r["reporter_name"], submolt_name=r["submolt_name"],
            post_title=r["post_title"], author_name=r["author_name"], content=r["content"],
            is_removed=r["is_removed"], is_deleted=r["is_deleted"],
        )
        for r in rows
    ]


async def close_report(
    conn: asyncpg.Connection, report_id: uuid.UUID, status: str, resolved_by: str, resolution: str
) -> Report | None:
    """Close one open report; None when it was not open."""
    row = await conn.fetchrow(
        f"""UPDATE reports AS r SET status = $2, resolved_at = now(), resolved_by = $3, resolution = $4
            WHERE r.id = $1 AND r.status = 'open' RETURNING {_COLUMNS}""",
        report_id, status, resolved_by, resolution,
    )
    return _report(row) if row else None


async def close_reports_for_target(
    conn: asyncpg.Connection, target_type: str, target_id: uuid.UUID, resolved_by: str, resolution: str
) -> int:
    """Acting on an item settles every open report of it; returns how many."""
    status = await conn.execute(
        """UPDATE reports SET status = 'resolved', resolved_at = now(), resolved_by = $3, resolution = $4
           WHERE target_type = $1 AND target_id = $2 AND status = 'open'""",
        target_type, target_id, resolved_by, resolution,
    )
    return int(status.split()[-1])


async def count_open(conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT count(*) FROM reports WHERE status = 'open'")
