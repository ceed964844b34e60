"""The comment object of the API (node/services/comments.py re-exports these)."""
from __future__ import annotations

from typing import Any

from . import spam
from .post_json import author_json
from ..stores.comments import CommentView

DELETED_TEXT = "[deleted]"
REMOVED_TEXT = "[removed]"


def comment_to_json(view: CommentView, replies: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The comment object of the API. Removed: "[removed]", author shown (moderation is public).
    Deleted by its author: "[deleted]" (or "[removed]" if also removed) and no author."""
    c = view.comment
    content, content_html = c.content, c.content_html
    author: dict[str, Any] | None = author_json(view.author)
    held = {}
    if c.is_held:  # only its author is shown it (the thread queries leave it out for everyone else)
        held = {"held": spam.held_json(spam.Hold.from_stored(c.held_reason), "comment")}
    elif c.is_removed or c.is_deleted:
        text = REMOVED_TEXT if c.is_removed else DELETED_TEXT
        content, content_html = text, f"<p>{text}</p>"
    if c.is_deleted:
        author = None
    return {
        **held,
        "id": c.id,
        "post_id": c.post_id,
        "parent_id": c.parent_id,
        "content": content,
        "content_html": content_html,
        "score": c.score,
        "upvotes": c.upvotes,
        "downvotes": c.downvotes,
        "depth": c.depth,
        "reply_count": c.reply_count,
        "created_at": c.created_at,
        "edited_at": c.edited_at,
        "is_deleted": c.is_deleted,
        "is_removed": c.is_removed,
        "author": author,
        "user_vote": view.user_vote,
        "replies": replies if replies is not None else [],
    }


def node_to_json(node: Any) -> dict[str, Any]:
    return comment_to_json(node.view, [node_to_json(r) for r in node.replies])
