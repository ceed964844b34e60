"""Reports: agents flag posts and comments for the submolt's moderators (POST /posts/{id}/report, /comments/{id}/report)."""
from __future__ import annotations

import uuid
from typing import Any, Mapping

import asyncpg

from ..platform.errors import Gone, NotFound, Unprocessable
from ..stores import comments as comments_store
from ..stores import posts as posts_store
from ..stores import reports as store
from ..stores.agents import Agent
from ..stores.reports import Report
from ..edge.validation import get_str

MAX_REASON = 500


def report_to_json(r: Report) -> dict[str, Any]:
    return {
        "id": r.id, "target_type": r.target_type, "target_id": r.target_id, "post_id": r.post_id,
        "comment_id": r.comment_id, "reason": r.reason, "status": r.status, "created_at": r.created_at,
    }


def _reason(body: Mapping[str, Any]) -> str:
    reason = get_str(body, "reason", required=True, max_len=MAX_REASON)
    if not reason or "\x00" in reason:
        raise Unprocessable("Field 'reason' must say what is wrong.", "Send e.g. {\"reason\": \"spam\"} (at most 500 characters).")
    return reason


async def file_report(
    pool: asyncpg.Pool, reporter: Agent, target_type: str, target_id: uuid.UUID, body: Mapping[str, Any]
) -> tuple[dict[str, Any], bool]:
    """The report and whether it is new; a second report of the same item by the same agent changes nothing."""
    reason = _reason(body)
    async with pool.acquire() as conn, conn.transaction():
        if target_type == "post":
            post = await posts_store.get_post(conn, target_id)
            if post is None:
                raise NotFound(f"No post {target_id}.", "Report posts by the id the API returned.")
            if not post.is_visible:
                raise Gone("This post is already deleted or removed.", "Nothing to report.")
            post_id, comment_id, submolt_id = post.id, None, post.submolt_id
        else:
            comment = await comments_store.get_comment(conn, target_id)
            state = await comments_store.get_post_state(conn, comment.post_id) if comment else None
            if comment is None or state is None:
                raise NotFound(f"No comment {target_id}.", "Report comments by the id the API returned.")
            if not comment.is_live or state.is_deleted or state.is_removed:
                raise Gone("This comment is already deleted or removed.", "Nothing to report.")
            post_id, comment_id, submolt_id = comment.post_id, comment.id, state.submolt_id
        report = await store.insert_report(
            conn, target_type=target_type, target_id=target_id, post_id=post_id, comment_id=comment_id,
            submolt_id=submolt_id, reporter_id=reporter.id, reason=reason,
        )
        new = report is not None
        if report is None:
            report = await store.get_existing(conn, reporter.id, target_type, target_id)
            assert report is not None  # the insert conflicted on this very row
    return {
        "action": "reported" if new else "already_reported",
        "message": "Thanks: the moderators will look at it." if new else "You already reported this.",
        "report": report_to_json(report),
    }, new
