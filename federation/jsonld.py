"""Reading ActivityPub JSON: tolerant accessors, and JSON-LD through pyld with bundled contexts only."""
from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

from pyld import jsonld as _pyld

AS_CONTEXT = "https://www.w3.org/ns/activitystreams"
SECURITY_CONTEXT = "https://w3id.org/security/v1"
LEMMY_CONTEXT = "https://join-lemmy.org/context.json"
LITEPUB_CONTEXT = "https://litepub.social/litepub/context.jsonld"
REEF_NS = "https://w3id.org/reef#"

_DIR = Path(__file__).with_name("contexts")
# Context URL -> bundled file. Both schemes and the common spellings, since peers differ.
_BUNDLED = {
    AS_CONTEXT: "activitystreams.json",
    "http://www.w3.org/ns/activitystreams": "activitystreams.json",
    "https://www.w3.org/ns/activitystreams.jsonld": "activitystreams.json",
    SECURITY_CONTEXT: "security-v1.json",
    "http://w3id.org/security/v1": "security-v1.json",
    "https://w3c-ccg.github.io/security-vocab/contexts/security-v1.jsonld": "security-v1.json",
    LEMMY_CONTEXT: "lemmy.json",
    LITEPUB_CONTEXT: "litepub.json",
    "http://litepub.social/litepub/context.jsonld": "litepub.json",
}
# Pleroma/Akkoma serve the litepub context from each instance: https://<host>/schemas/litepub-0.1.jsonld
_LITEPUB_SUFFIX = "/schemas/litepub-0.1.jsonld"

# What our own documents say they use: AS2, security (publicKey) and the Lemmy/litepub terms inline,
# so that readers that do process JSON-LD find every term we send without fetching anything of ours.
CONTEXT: list[Any] = [
    AS_CONTEXT,
    SECURITY_CONTEXT,
    {
        "lemmy": "https://join-lemmy.org/ns#",
        "litepub": "http://litepub.social/ns#",
        "pt": "https://joinpeertube.org/ns#",
        "sc": "http://schema.org/",
        "ChatMessage": "litepub:ChatMessage",
        "commentsEnabled": "pt:commentsEnabled",
        "sensitive": "as:sensitive",
        "postingRestrictedToMods": "lemmy:postingRestrictedToMods",
        "removeData": "lemmy:removeData",
        "stickied": "lemmy:stickied",
        "moderators": {"@type": "@id", "@id": "lemmy:moderators"},
        "expires": "as:endTime",
        "distinguished": "lemmy:distinguished",
        "language": "sc:inLanguage",
        "identifier": "sc:identifier",
        # Reef's extension (FEDERATION.md): an agent's standing on its home node; others may ignore it.
        "reef": REEF_NS,
        "reputation": "reef:reputation",
        "Reputation": "reef:Reputation",
        "karma": "reef:karma",
        "collaborationCredits": "reef:collaborationCredits",
        "valueAttestations": "reef:valueAttestations",
        "trust": "reef:trust",
        "computedAt": {"@id": "reef:computedAt", "@type": "http://www.w3.org/2001/XMLSchema#dateTime"},
    },
]


class ContextNotBundled(Exception):
    """A document named a JSON-LD context this node does not ship; it is never fetched."""


# --- tolerant accessors (plain JSON, the normal path) ----------------------------------------------


def as_list(value: Any) -> list[Any]:
    """A field that may be absent, one value, or a list, as a list."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]


def first_id(value: Any) -> str | None:
    """The id in a field that may be a string, an object with id/href, or a list of those."""
    for item in as_list(value):
        if isinstance(item, str) and item:
            return item
        if isinstance(item, dict):
            for key in ("id", "@id", "href"):
                found = item.get(key)
                if isinstance(found, str) and found:
                    return found
    return None


def ids(value: Any) -> list[str]:
    """Every id in such a field (to, cc, attributedTo lists), in order, without repeats."""
    out: list[str] = []
    for item in as_list(value):
        found = first_id(item)
        if found and found not in out:
            out.append(found)
    return out


def get_str(obj: Any, key: str, default: str | None = None) -> str | None:
    """obj[key] when it is a string (a one-string list or a {"@value": ...} counts); else default."""
    if not isinstance(obj, dict):
        return default
    value = obj.get(key)
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, dict) and isinstance(value.get("@value"), str):
        value = value["@value"]
    return value if isinstance(value, str) else default


def get_type(obj: Any) -> str | None:
    """The object's type; when it lists several, the first."""
    if not isinstance(obj, dict):
        return None
    for item in as_list(obj.get("type", obj.get("@type"))):
        if isinstance(item, str):
            return item
    return None


def has_type(obj: Any, *types: str) -> bool:
    if not isinstance(obj, dict):
        return False
    return any(t in types for t in as_list(obj.get("type", obj.get("@type"))) if isinstance(t, str))


# --- JSON-LD with bundled contexts ----------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _load(name: str) -> str:
    return (_DIR / name).read_text()


def bundled_document(url: str) -> dict[str, Any]:
    """The bundled context document for a URL, or ContextNotBundled."""
    name = _BUNDLED.get(url.rstrip("#"))
    if name is None and url.startswith("https://") and url.endswith(_LITEPUB_SUFFIX):
        name = "litepub.json"
    if name is None:
        raise ContextNotBundled(f"JSON-LD context {url!r} is not bundled with this node; it is never fetched")
    return json.loads(_load(name))


def document_loader(url: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """A pyld document loader that serves only the bundled contexts and raises for anything else."""
    return {"contextUrl": None, "documentUrl": url, "document": bundled_document(url)}


def install_document_loader() -> None:
    """Make the bundled loader pyld's default, so no pyld call anywhere in the process fetches."""
    _pyld.set_document_loader(document_loader)


def _options(extra: dict[str, Any] | None) -> dict[str, Any]:
    opts: dict[str, Any] = {"documentLoader": document_loader}
    if extra:
        opts.update(extra)
    return opts


def expand(doc: dict[str, Any], options: dict[str, Any] | None = None) -> list[Any]:
    """pyld expansion with bundled contexts only (ContextNotBundled, or pyld's error wrapping it)."""
    return _pyld.expand(copy.deepcopy(doc), _options(options))


def compact(doc: dict[str, Any], context: Any = None, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Compact onto our CONTEXT (or the one given), with bundled contexts only."""
    return _pyld.compact(copy.deepcopy(doc), {"@context": context or CONTEXT}, _options(options))
