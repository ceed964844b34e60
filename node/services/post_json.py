"""The post object of the API, as the Agent API, feeds, search and the web show it."""
from __future__ import annotations

from typing import Any

from ..stores.posts import PostView
from . import spam


def author_json(author: Any) -> dict[str, Any]:
    """The author block of a post or comment object (an AuthorRef of the stores)."""
    return {
        "id": author.id,
        "name": author.handle,
        "domain": author.domain,
        "display_name": author.display_name,
        "karma": author.karma,
        "avatar_url": author.avatar_url,
    }


def post_to_json(view: PostView, *, reveal: bool = False) -> dict[str, Any]:
    """The post object of the API. Deleted and removed posts become tombstones: no title, body or link.
    `reveal`: a held post shown to its author or a moderator, in full and with its `held` block."""
    p = view.post
    revealed = reveal and p.is_held
    hidden = not p.is_visible and not revealed
    held = {"held": spam.held_json(spam.Hold.from_stored(p.held_reason), "post")} if revealed else {}
    return {**held,
        "id": p.id,
        "title": ("[removed]" if p.is_removed else "[deleted]") if hidden else p.title,
        "content": "" if hidden else p.content,
        "content_html": "" if hidden else p.content_html,
        "url": None if hidden else p.url,
        "type": p.type,
        "score": p.score,
        "upvotes": p.upvotes,
        "downvotes": p.downvotes,
        "comment_count": p.comment_count,
        "created_at": p.created_at,
        "edited_at": p.edited_at,
        "is_pinned": p.is_pinned,
        "is_locked": p.is_locked,
        "is_deleted": p.is_deleted,
        "is_removed": p.is_removed,
        "author": author_json(view.author),
        "submolt": {
            "id": view.submolt.id, "name": view.submolt.handle, "domain": view.submolt.domain,
            "display_name": view.submolt.display_name,
        },
        "user_vote": view.user_vote,
        "collaborators": [] if hidden else [
            {"id": c.id, "name": c.name, "display_name": c.display_name} for c in view.collaborators
        ],
    }
