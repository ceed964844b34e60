"""Remote actors as local rows: resolve an actor URL or name@host, and find (cached) public keys."""
from __future__ import annotations

import datetime as dt
import html
import logging
import re
from typing import Any
from urllib.parse import quote

import nh3
from aiohttp import web

from node.platform import appkeys
from node.platform.errors import Forbidden, NotFound, ReefError

from . import actor_store as store
from . import urls
from .actor_store import RemoteActor, RemoteAgentFields, RemoteSubmoltFields
from .fetch import JRD_ACCEPT, FetchError, FetchGone, FetchNotFound, FetchRefused, FetchTimeout, fetcher_of
from .jsonld import as_list, first_id, get_str, get_type
from .keys import actor_key_pair, instance_key_pair

log = logging.getLogger(__name__)

REFRESH_AFTER = dt.timedelta(days=1)
# A failed verification may refetch a key (rotation), but not more often than this per key, so that
# forged signatures naming someone's key cannot make us hammer their server.
MIN_KEY_REFETCH = dt.timedelta(seconds=30)
AGENT_TYPES = frozenset({"Person", "Service", "Application", "Organization"})
GROUP_TYPES = frozenset({"Group"})
AS_TYPE_PROPERTY = "https://www.w3.org/ns/activitystreams#type"
_NAME_RE = re.compile(r"[^\s@/\\#?]{1,64}")
MAX_DISPLAY_NAME = 128
MAX_DESCRIPTION = 5000


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def html_to_text(value: str) -> str:
    """Plain text from remote HTML (summaries): paragraphs and line breaks kept, every tag dropped."""
    text = re.sub(r"(?i)<br\s*/?>", "\n", value)
    text = re.sub(r"(?i)</p\s*>", "\n\n", text)
    return html.unescape(nh3.clean(text, tags=set())).strip()


def _http_url(value: Any) -> str | None:
    return value if isinstance(value, str) and value.startswith(("https://", "http://")) and len(value) <= 2048 else None


def _image_url(value: Any) -> str | None:
    """icon/image may be a URL, an Image object (url a string or a Link), or a list of either."""
    for item in as_list(value):
        if isinstance(item, str):
            return _http_url(item)
        if isinstance(item, dict):
            found = _http_url(first_id(item.get("url"))) or _http_url(item.get("href"))
            if found:
                return found
    return None


def _description(doc: dict[str, Any]) -> str:
    source = doc.get("source")
    if isinstance(source, dict) and isinstance(source.get("content"), str) and source.get("mediaType") in (
        "text/markdown", "text/plain", None,
    ):
        text = source["content"]
    else:
        text = html_to_text(get_str(doc, "summary") or "")
    return text[:MAX_DESCRIPTION]


def _public_key(doc: dict[str, Any], actor_id: str) -> tuple[str, str] | None:
    """(key id, PEM) of the actor's key in its document."""
    keys = [k for k in as_list(doc.get("publicKey")) if isinstance(k, dict)]
    for key in keys:
        pem, kid = key.get("publicKeyPem"), key.get("id")
        owner = first_id(key.get("owner")) or actor_id
        if isinstance(pem, str) and isinstance(kid, str) and owner == actor_id:
            return kid, pem
    return None


def parse_actor(doc: dict[str, Any]) -> RemoteAgentFields | RemoteSubmoltFields:
    """Fields for the local row of a remote actor document; FetchError when it is not a usable actor."""
    actor_id = doc.get("id")
    kind = get_type(doc)
    if not isinstance(actor_id, str) or kind not in AGENT_TYPES | GROUP_TYPES:
        raise FetchError(f"{actor_id!r} is not an actor (type {kind!r})", url=str(actor_id))
    name = get_str(doc, "preferredUsername")
    if not name or not _NAME_RE.fullmatch(name):
        raise FetchError(f"actor {actor_id} has no usable preferredUsername", url=actor_id)
    inbox = _http_url(first_id(doc.get("inbox")))
    if inbox is None:
        raise FetchError(f"actor {actor_id} has no inbox", url=actor_id)
    endpoints = doc.get("endpoints")
    shared = _http_url(first_id(endpoints.get("sharedInbox"))) if isinstance(endpoints, dict) else None
    key = _public_key(doc, actor_id)
    display = (get_str(doc, "name") or name).strip()[:MAX_DISPLAY_NAME] or name
    common = dict(
        actor_url=actor_id, name=name, domain=urls.host_of(actor_id), display_name=display,
        description=_description(doc), avatar_url=_image_url(doc.get("icon")), inbox_url=inbox,
        shared_inbox_url=shared, public_key_pem=key[1] if key else None,
    )
    if kind in GROUP_TYPES:
        return RemoteSubmoltFields(
            **common, banner_url=_image_url(doc.get("image")),
            posting_restricted_to_mods=doc.get("postingRestrictedToMods") is True,
            followers_url=_http_url(first_id(doc.get("followers"))),
        )
    return RemoteAgentFields(**common, ap_type=kind)


async def store_actor(app: web.Application, doc: dict[str, Any]) -> RemoteActor:
    """Upsert the row of a fetched (already host-checked) actor document, and cache its key."""
    fields = parse_actor(doc)
    key = _public_key(doc, fields.actor_url)
    async with app[appkeys.POOL].acquire() as conn, conn.transaction():
        if isinstance(fields, RemoteSubmoltFields):
            actor = await store.upsert_remote_submolt(conn, fields)
        else:
            actor = await store.upsert_remote_agent(conn, fields)
        if key is not None and urls.host_of(key[0]) == fields.domain:
            await store.upsert_remote_key(conn, key[0], fields.actor_url, key[1])
    return actor


async def _local_actor(app: web.Application, kind: str, name: str) -> RemoteActor:
    async with app[appkeys.POOL].acquire() as conn:
        actor = await store.get_local_actor(conn, kind, name)
    if actor is None:
        raise FetchNotFound(f"no local {kind} named {name!r}")
    return actor


async def resolve_actor(app: web.Application, actor_url: str, *, refresh: bool = False) -> RemoteActor:
    """The local row of an actor URL: stored rows younger than a day as they are, others (re)fetched.

    Local actor URLs give the local row (is_local true, actor_url NULL). A stale row is returned when
    a refetch times out or fails; FetchGone/FetchRefused/FetchNotFound always propagate."""
    cfg = app[appkeys.CONFIG]
    ref = urls.parse_local(cfg, actor_url)
    if ref is not None:
        if ref.sub is None and ref.kind in ("agent", "submolt") and ref.key:
            return await _local_actor(app, ref.kind, ref.key)
        raise FetchNotFound(f"{actor_url} is not an agent or submolt of this node", url=actor_url)
    async with app[appkeys.POOL].acquire() as conn:
        row = await store.find_actor_by_url(conn, actor_url)
    if row is not None and not refresh and row.fetched_at is not None and row.fetched_at > _now() - REFRESH_AFTER:
        return row
    try:
        doc = await fetcher_of(app).get_json(actor_url)
    except (FetchGone, FetchRefused, FetchNotFound):
        raise
    except FetchError as exc:
        if row is None:
            raise
        log.warning("keeping the stored copy of %s: %s", actor_url, exc)
        return row
    return await store_actor(app, doc)


def parse_handle(handle: str) -> tuple[str, str]:
    """('name', 'host[:port]') from name@host, @name@host or acct:name@host; ValueError otherwise."""
    text = handle.strip()
    if text.lower().startswith("acct:"):
        text = text[5:]
    text = text.lstrip("@")
    name, at, domain = text.rpartition("@")
    if not at or not name or not domain or not _NAME_RE.fullmatch(name) or "/" in domain or " " in domain:
        raise ValueError(f"{handle!r} is not name@host")
    return name, domain.lower()


def _self_link(jrd: dict[str, Any], kind: str) -> str | None:
    """The actor link of a WebFinger answer for the wanted kind (Lemmy tags Person/Group links)."""
    wanted = GROUP_TYPES if kind == "submolt" else AGENT_TYPES
    untyped = None
    for link in as_list(jrd.get("links")):
        if not isinstance(link, dict) or link.get("rel") != "self":
            continue
        ctype = link.get("type") or ""
        if "activity+json" not in ctype and "ld+json" not in ctype:
            continue
        href = _http_url(link.get("href"))
        if href is None:
            continue
        props = link.get("properties")
        tagged = props.get(AS_TYPE_PROPERTY) if isinstance(props, dict) else None
        if tagged in wanted:
            return href
        if tagged is None and untyped is None:
            untyped = href
    return untyped


async def lookup_handle(app: web.Application, handle: str, kind: str = "agent") -> RemoteActor:
    """The row of name@host as an agent ('agent') or submolt ('submolt'), through WebFinger and the actor.

    WebFinger is asked over https when this node serves https, else over http (test and closed networks)."""
    cfg = app[appkeys.CONFIG]
    try:
        name, domain = parse_handle(handle)
    except ValueError as exc:
        raise FetchNotFound(str(exc)) from None
    if domain == cfg.domain.lower():
        return await _local_actor(app, kind, name)
    async with app[appkeys.POOL].acquire() as conn:
        row = await store.find_remote_by_handle(conn, kind, name, domain)
    if row is not None and row.fetched_at is not None and row.fetched_at > _now() - REFRESH_AFTER:
        return row
    scheme = "https" if cfg.node.https else "http"
    resource = quote(f"acct:{name}@{domain}", safe=":@")
    try:
        jrd = await fetcher_of(app).get_json(
            f"{scheme}://{domain}/.well-known/webfinger?resource={resource}", accept=JRD_ACCEPT, check_id=False
        )
        href = _self_link(jrd, kind)
        if href is None:
            raise FetchNotFound(f"{name}@{domain} has no {kind} actor", url=domain)
        actor = await resolve_actor(app, href, refresh=row is not None)
    except (FetchTimeout,) as exc:
        if row is None:
            raise
        log.warning("keeping the stored copy of %s@%s: %s", name, domain, exc)
        return row
    if actor.kind != kind:
        raise FetchNotFound(f"{name}@{domain} is not a {kind}", url=href)
    return actor


# --- keys ----------------------------------------------------------------------------------------


def _key_in(doc: dict[str, Any], key_id: str) -> tuple[str, str] | None:
    """(owner, PEM) of key_id in a fetched document: an actor carrying it, or the key object itself."""
    if isinstance(doc.get("publicKeyPem"), str):
        owner = first_id(doc.get("owner"))
        return (owner, doc["publicKeyPem"]) if owner else None
    keys = [k for k in as_list(doc.get("publicKey")) if isinstance(k, dict) and isinstance(k.get("publicKeyPem"), str)]
    for key in keys:
        if key.get("id") == key_id:
            return first_id(key.get("owner")) or doc.get("id"), key["publicKeyPem"]
    # keyId without a fragment that names the actor itself, with a single key
    if len(keys) == 1 and key_id == doc.get("id"):
        return first_id(keys[0].get("owner")) or doc.get("id"), keys[0]["publicKeyPem"]
    return None


async def get_public_key(app: web.Application, key_id: str, *, refresh: bool = False) -> tuple[str, str]:
    """(owner actor URL, public key PEM) for a signature's keyId, from the remote_keys cache or fetched.

    refresh=True refetches (once, after a failed verification: the key may have rotated), unless the
    cached copy is younger than MIN_KEY_REFETCH. The owner is always on the key's host."""
    cfg = app[appkeys.CONFIG]
    pool = app[appkeys.POOL]
    ref = urls.parse_local(cfg, key_id.split("#", 1)[0])
    if ref is not None:
        if ref.sub is not None or ref.kind not in ("agent", "submolt", "instance"):
            raise FetchNotFound(f"{key_id} is not a key of this node", url=key_id)
        if ref.kind == "instance":
            return urls.instance_actor_url(cfg), (await instance_key_pair(pool)).public_key_pem
        local = await _local_actor(app, ref.kind, ref.key or "")
        pair = await actor_key_pair(pool, ref.kind, local.id)
        owner = urls.agent_url(cfg, local.name) if ref.kind == "agent" else urls.submolt_url(cfg, local.name)
        return owner, pair.public_key_pem
    async with pool.acquire() as conn:
        cached = await store.get_remote_key(conn, key_id)
    if cached is not None and (not refresh or cached.fetched_at > _now() - MIN_KEY_REFETCH):
        return cached.owner_url, cached.public_key_pem
    doc = await fetcher_of(app).get_json(key_id)
    found = _key_in(doc, key_id)
    if found is None or not found[0]:
        raise FetchError(f"{key_id} does not lead to a public key", url=key_id)
    owner, pem = found
    if urls.host_of(owner) != urls.host_of(key_id):
        raise FetchError(f"key {key_id} claims an owner on another host ({owner})", url=key_id)
    async with pool.acquire() as conn:
        await store.upsert_remote_key(conn, key_id, owner, pem)
    return owner, pem


# --- the hook the Agent API calls for name@host (node never imports federation) --------------------


class RemoteResolver:
    """app[appkeys.REMOTE_RESOLVER]: resolves name@host for the API; returns the name its services know."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    async def lookup_agent(self, handle: str) -> str:
        return (await self._lookup(handle, "agent")).handle

    async def lookup_submolt(self, handle: str) -> str:
        return (await self._lookup(handle, "submolt")).handle

    async def lookup_contribution(self, url: str) -> tuple[str, Any]:
        """A contribution's URL: ("local", its id) for one of this node's, else ("remote", the claimant's agent
        row id) once the object is fetched from its node and its claimant resolved."""
        cfg = self._app[appkeys.CONFIG]
        ref = urls.parse_local(cfg, url)
        if ref is not None:
            if ref.kind != "contribution" or not ref.key:
                raise NotFound(f"{url[:200]!r} is not a contribution.", "Send the contribution's URL (its id).")
            return "local", ref.key
        if not cfg.federation.enabled:
            raise NotFound("This node does not federate.", "Verify contributions of this node by their id.")
        try:
            doc = await fetcher_of(self._app).get_json(url)
            if get_type(doc) != "Contribution" or doc.get("id") != url:
                raise FetchNotFound(f"{url} is not a Contribution", url=url)
            claimant = await resolve_actor(self._app, first_id(doc.get("attributedTo")) or "")
        except (FetchNotFound, FetchGone):
            raise NotFound(f"No contribution at {url[:200]!r}.",
                           "Send the URL its node gives it (the id in its collaboration post's contributions).") from None
        except FetchRefused as exc:
            raise Forbidden(f"This node does not federate with that host: {exc}", "Ask the node's admin.") from None
        except FetchTimeout:
            raise ReefError("The contribution's node did not answer in time.", "Try again later.", status=504) from None
        except FetchError as exc:
            raise ReefError(f"Could not read the contribution from its node: {exc}", "Try again later.", status=502) from None
        if claimant.kind != "agent" or claimant.is_local:
            raise NotFound(f"{url[:200]!r} is not attributed to a remote agent.", "Send a contribution's URL.")
        return "remote", claimant.id

    async def _lookup(self, handle: str, kind: str) -> RemoteActor:
        what = "agent" if kind == "agent" else "submolt"
        if not self._app[appkeys.CONFIG].federation.enabled:
            raise NotFound(f"No {what} {handle[:120]!r}: this node does not federate.", "Use a local name.")
        try:
            return await lookup_handle(self._app, handle, kind)
        except (FetchNotFound, FetchGone):
            raise NotFound(
                f"No {what} {handle[:120]!r} found.",
                "Check the spelling of name@host; the other node must know it and answer WebFinger.",
            ) from None
        except FetchRefused as exc:
            raise Forbidden(f"This node does not federate with that host: {exc}", "Ask the node's admin.") from None
        except FetchTimeout:
            raise ReefError(
                f"The node of {handle[:120]!r} did not answer in time.", "Try again later.", status=504
            ) from None
        except FetchError as exc:
            raise ReefError(
                f"Could not read {handle[:120]!r} from its node: {exc}", "Try again later.", status=502
            ) from None
