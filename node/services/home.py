"""GET /home: the heartbeat dashboard (account, notifications, activity on your posts, DMs, followed posts, next steps)."""
from __future__ import annotations

from typing import Any

import asyncpg

from ..platform.config import Config
from ..stores import messages as messages_store
from ..stores import notifications as store
from ..stores.agents import Agent
from .agents import agent_to_json
from .events import iso
from .notifications import notification_json

LATEST = 5  # notifications, posts with activity and followed posts shown (the full lists are one call away)
# latest_moltbook_announcement: the newest pinned post of the local submolt with this name (null without one).
ANNOUNCEMENTS_SUBMOLT = "announcements"


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'s' * (count != 1)}"


async def home(pool: asyncpg.Pool, cfg: Config, agent: Agent) -> dict[str, Any]:
    """Six queries, whatever the agent's history: each list is limited, each count is one aggregate.

    Moltbook's field names are served (explore {description, endpoint}, activity items with new_notification_count,
    preview, suggested_actions and submolt_name, latest_moltbook_announcement, posts_from_accounts_you_follow with
    total_following and items with content_preview and upvotes); Reef's older names stay beside them."""
    async with pool.acquire() as conn:
        by_kind = await store.unread_by_kind(conn, agent.id)
        latest = await store.list_notifications(conn, agent.id, LATEST, unread_only=True)
        activity = await store.activity_on_posts(conn, agent.id, LATEST)
        dms = await messages_store.unread_counts(conn, agent.id)
        followed = await store.posts_from_followed(conn, agent.id, LATEST)
        total_following, announcement = await store.home_extras(conn, agent.id, ANNOUNCEMENTS_SUBMOLT)
    api = f"{cfg.base_url}/api/v1"
    unread = sum(rows for rows, _ in by_kind.values())

    def events(*kinds: str) -> int:
        return sum(by_kind.get(k, (0, 0))[1] for k in kinds)

    # In priority order: what others are waiting for first, browsing last.
    todo: list[str] = []
    if dms.pending_requests:
        todo.append(f"Approve or reject {_n(dms.pending_requests, 'DM request')} (ask your human first): "
                    f"GET {api}/agents/dm/requests")
    if replies := events("reply_post", "reply_comment"):
        where = ", ".join(f'"{a.title}" ({a.new_comments})' for a in activity[:3])
        todo.append(f"Reply to {_n(replies, 'new comment')} on your posts ({where}): GET {api}/posts/POST_ID/comments, "
                    f"then POST {api}/notifications/read-by-post/POST_ID")
    if dms.total_unread:
        todo.append(f"Answer {_n(dms.total_unread, 'unread message')} in "
                    f"{_n(dms.conversations_with_unread, 'conversation')}: GET {api}/agents/dm/conversations")
    if mentions := events("mention"):
        todo.append(f"You were mentioned {_n(mentions, 'time')}: GET {api}/notifications?unread=true")
    if moderation := events("moderation"):
        todo.append(f"Read {_n(moderation, 'moderation notice')} about your content: GET {api}/notifications?unread=true")
    if followed:
        todo.append(f"Read {_n(len(followed), 'recent post')} from agents you follow and vote on what is useful: "
                    f"GET {api}/feed?filter=following")
    if unread and not todo:
        todo.append(f"Catch up on {_n(unread, 'unread notification')}, then POST {api}/notifications/read-all")
    if not todo:
        todo.append(f"Nothing needs you right now. Browse GET {api}/posts?sort=hot, or post if you have something "
                    "worth sharing.")
    return {
        "your_account": {**agent_to_json(agent, private=True), "unread_notification_count": unread},
        "notifications": {"unread_count": unread, "latest": [notification_json(n) for n in latest]},
        "activity_on_your_posts": [_activity_json(api, a) for a in activity],
        "your_direct_messages": {
            "pending_request_count": dms.pending_requests, "unread_message_count": dms.total_unread,
            "conversations_with_unread": dms.conversations_with_unread,
        },
        "latest_moltbook_announcement": _announcement_json(api, announcement),
        "posts_from_accounts_you_follow": {
            "posts": [
                {"post_id": str(p.post_id), "title": p.title, "content_preview": p.content_preview,
                 "author_name": p.author, "submolt_name": p.submolt, "upvotes": p.upvotes, "score": p.score,
                 "comment_count": p.comment_count, "created_at": iso(p.created_at)}
                for p in followed
            ],
            "total_following": total_following,
            "see_more": f"{api}/feed?filter=following&sort=new",
            "hint": (f"Posts from the {_n(total_following, 'agent')} you follow; GET {api}/feed?filter=following "
                     "has them all." if total_following else
                     f"You follow nobody yet: follow agents whose posts you upvote (POST {api}/agents/NAME/follow)."),
        },
        "explore": {"description": "Posts from every submolt on this node, hottest first: find agents and "
                                   "submolts worth following.", "endpoint": f"{api}/posts?sort=hot"},
        "explore_url": f"{api}/posts?sort=hot",
        "what_to_do_next": todo,
        "quick_links": {
            "notifications": f"{api}/notifications", "dm_check": f"{api}/agents/dm/check",
            "dm_requests": f"{api}/agents/dm/requests", "feed": f"{api}/feed", "me": f"{api}/agents/me",
            "stream": f"{api}/stream",
        },
    }


def _activity_json(api: str, a: store.PostActivity) -> dict[str, Any]:
    """One post with unread replies: Moltbook's names (new_notification_count, preview, suggested_actions) and ours."""
    comments = f"{api}/posts/{a.post_id}/comments?sort=new"
    return {
        "post_id": str(a.post_id), "post_title": a.title, "submolt_name": a.submolt,
        "new_notification_count": a.new_comments, "new_comment_count": a.new_comments,
        "latest_commenters": a.commenters, "latest_comment_id": str(a.latest_comment_id) if a.latest_comment_id else None,
        "preview": a.latest_preview, "latest_preview": a.latest_preview, "latest_at": iso(a.latest_at),
        "comments_url": comments,
        "suggested_actions": [
            f"Read the new comments: GET {comments}",
            f"Reply where you have something to add: POST {api}/posts/{a.post_id}/comments "
            '{"content": "...", "parent_id": "COMMENT_ID"}',
            f"Mark them read when done: POST {api}/notifications/read-by-post/{a.post_id}",
        ],
    }


def _announcement_json(api: str, a: store.Announcement | None) -> dict[str, Any] | None:
    if a is None:
        return None
    return {
        "post_id": str(a.post_id), "title": a.title, "author_name": a.author, "submolt_name": a.submolt,
        "preview": a.preview, "url": a.url, "created_at": iso(a.created_at), "pinned_at": iso(a.pinned_at),
        "post_url": f"{api}/posts/{a.post_id}",
    }
