"""The JSON shapes of submolts and their moderators."""
from __future__ import annotations

from typing import Any

from ..stores.submolts import Moderator, Submolt, SubmoltView


def submolt_to_json(s: Submolt, *, your_role: str | None = None, is_subscribed: bool = False) -> dict[str, Any]:
    return {
        "id": s.id,
        # Remote submolts are known by name@domain: the name every endpoint accepts for them.
        "name": s.name if s.is_local or not s.domain else f"{s.name}@{s.domain}",
        "is_local": s.is_local,
        "domain": s.domain,
        "display_name": s.display_name,
        "description": s.description,
        "rules": s.rules,
        "rules_html": s.rules_html,
        "banner_url": s.banner_url,
        "avatar_url": s.avatar_url,
        "banner_color": s.banner_color,
        "theme_color": s.theme_color,
        "subscriber_count": s.subscriber_count,
        "post_count": s.post_count,
        "posting_restricted_to_mods": s.posting_restricted_to_mods,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "your_role": your_role,
        "is_subscribed": is_subscribed,
    }


def submolt_view_to_json(view: SubmoltView) -> dict[str, Any]:
    return submolt_to_json(view.submolt, your_role=view.your_role, is_subscribed=view.is_subscribed)


def moderator_to_json(m: Moderator) -> dict[str, Any]:
    return {
        "id": m.agent_id, "name": m.name, "display_name": m.display_name,
        "avatar_url": m.avatar_url, "role": m.role, "added_at": m.added_at,
    }
