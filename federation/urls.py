"""The one place that builds (and parses back) this node's ActivityPub ids and endpoint URLs."""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from node.platform.config import Config

PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
# Addressing may use either short form for Public; readers must accept all three.
PUBLIC_ALIASES = frozenset({PUBLIC, "as:Public", "Public"})


def base_url(cfg: Config) -> str:
    return cfg.base_url


def agent_url(cfg: Config, name: str) -> str:
    return f"{cfg.base_url}/u/{name}"


def submolt_url(cfg: Config, name: str) -> str:
    return f"{cfg.base_url}/m/{name}"


def instance_actor_url(cfg: Config) -> str:
    return f"{cfg.base_url}/actor"


def post_url(cfg: Config, post_id: uuid.UUID | str) -> str:
    return f"{cfg.base_url}/post/{post_id}"


def comment_url(cfg: Config, comment_id: uuid.UUID | str) -> str:
    return f"{cfg.base_url}/comment/{comment_id}"


def activity_url(cfg: Config, activity_id: uuid.UUID | str) -> str:
    """Ids for activities this node publishes (the outbox worker mints them)."""
    return f"{cfg.base_url}/activities/{activity_id}"


def shared_inbox_url(cfg: Config) -> str:
    return f"{cfg.base_url}/inbox"


def inbox_url(actor: str) -> str:
    return f"{actor}/inbox"


def outbox_url(actor: str) -> str:
    return f"{actor}/outbox"


def followers_url(actor: str) -> str:
    return f"{actor}/followers"


def following_url(actor: str) -> str:
    return f"{actor}/following"


def featured_url(actor: str) -> str:
    return f"{actor}/featured"


def moderators_url(actor: str) -> str:
    return f"{actor}/moderators"


def key_id(actor: str) -> str:
    """The keyId of an actor's (only) key, as Mastodon and Lemmy spell it."""
    return f"{actor}#main-key"


# --- rows that may be local or remote -------------------------------------------------------------


def agent_actor(cfg: Config, name: str, is_local: bool, actor_url: str | None) -> str:
    """The actor id of an agents row: derived for local agents, stored for remote ones."""
    return agent_url(cfg, name) if is_local or not actor_url else actor_url


def submolt_actor(cfg: Config, name: str, is_local: bool, actor_url: str | None) -> str:
    return submolt_url(cfg, name) if is_local or not actor_url else actor_url


def post_id_url(cfg: Config, post_id: uuid.UUID, is_local: bool, ap_id: str | None) -> str:
    return post_url(cfg, post_id) if is_local or not ap_id else ap_id


def comment_id_url(cfg: Config, comment_id: uuid.UUID, is_local: bool, ap_id: str | None) -> str:
    return comment_url(cfg, comment_id) if is_local or not ap_id else ap_id


# --- parsing --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LocalRef:
    """What a local URL names: kind in agent|submolt|instance|post|comment|activity|shared_inbox,
    key the name or id (None for the instance and the shared inbox), sub the collection or endpoint
    (inbox, outbox, followers, following, featured, moderators) or None for the object itself."""

    kind: str
    key: str | None
    sub: str | None = None


_SUBS = frozenset({"inbox", "outbox", "followers", "following", "featured", "moderators"})
_PATH = re.compile(r"^/(u|m|post|comment|activities|contribution)/([^/]+)(?:/([a-z]+))?/?$")
_KINDS = {"u": "agent", "m": "submolt", "post": "post", "comment": "comment", "activities": "activity",
          "contribution": "contribution"}


def host_of(url: str) -> str:
    """host[:port] of a URL, lower-case ('' when there is none)."""
    try:
        return urlsplit(url).netloc.lower().rpartition("@")[2]
    except ValueError:
        return ""


def is_local_url(cfg: Config, url: str) -> bool:
    return host_of(url) == cfg.domain.lower()


def parse_local(cfg: Config, url: str) -> LocalRef | None:
    """Which local actor/object/collection a URL names, or None when it is not one of ours."""
    if not isinstance(url, str) or not is_local_url(cfg, url):
        return None
    parts = urlsplit(url)
    path = parts.path or "/"
    if path in ("/actor", "/actor/"):
        return LocalRef("instance", None)
    if path.startswith("/actor/") and path[7:].strip("/") in ("inbox", "outbox"):
        return LocalRef("instance", None, path[7:].strip("/"))
    if path in ("/inbox", "/inbox/"):
        return LocalRef("shared_inbox", None)
    m = _PATH.match(path)
    if m is None:
        return None
    kind, key, sub = _KINDS[m.group(1)], m.group(2), m.group(3)
    if sub is not None and sub not in _SUBS:
        return None
    if kind in ("post", "comment", "activity", "contribution"):
        if sub is not None:
            return None
        try:
            key = str(uuid.UUID(key))
        except ValueError:
            return None
    return LocalRef(kind, key, sub)
