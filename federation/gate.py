"""What every ActivityPub GET passes: federation on, content negotiation, signatures and blocks, AP JSON out."""
from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable, Mapping

from aiohttp import web

from node.platform import appkeys
from node.platform.errors import Forbidden, NotFound, Unauthorized

from . import policy
from .fetch import FetchError
from .resolve import get_public_key
from .signatures import (
    SignatureError,
    check_freshness,
    parse_signature,
    required_components_present,
    verify_signature,
)
from .sigcore import verify_digest
from .urls import host_of

log = logging.getLogger(__name__)

AP_CONTENT_TYPE = "application/activity+json"
# The web site registers its pages here ({"agent": handler, "submolt": ..., "post": ..., "comment": ...}); until
# it does, browsers asking for an actor or object URL are redirected to its Agent API JSON.
HTML_VIEWS = web.AppKey("federation_html_views", dict)


class SignerBlocked(SignatureError):
    """The signature names a key on a host this node refuses."""


def wants_activity_json(request: web.Request) -> bool:
    """application/activity+json or application/ld+json (with or without the AS profile) in Accept."""
    accept = request.headers.get("Accept", "").lower()
    return "application/activity+json" in accept or "application/ld+json" in accept


def require_enabled(request: web.Request) -> None:
    if not request.app[appkeys.CONFIG].federation.enabled:
        raise NotFound("Federation is disabled on this node.", "This node does not speak ActivityPub ([federation] enabled = false).")


def ap_response(doc: Mapping[str, Any], status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(doc, ensure_ascii=False),
        status=status,
        content_type=AP_CONTENT_TYPE,
        charset="utf-8",
        headers={"Vary": "Accept"},
    )


def request_url(request: web.Request) -> str:
    """The URL as the client addressed it (its own Host), which is what it signed."""
    scheme = "https" if request.app[appkeys.CONFIG].node.https else "http"
    return f"{scheme}://{request.host}{request.raw_path}"


def has_signature(headers: Mapping[str, str]) -> bool:
    return bool(
        headers.get("Signature") or headers.get("Signature-Input")
        or headers.get("Authorization", "")[:10].lower() == "signature "
    )


async def verify_request(
    app: web.Application, method: str, url: str, headers: Mapping[str, str], body: bytes | None = None
) -> str:
    """Verify a signed request and return the signer's actor URL (the key's owner).

    Checks, in order: signature readable; signer's host not blocked (before any key fetch); the required
    components signed; Date/created within [federation] signature_window_seconds; the digest when a body is
    given; the signature with the cached key, then once more with a refetched key (rotation). Raises
    SignatureError (SignerBlocked for a refused host) or FetchError when the key cannot be had."""
    cfg = app[appkeys.CONFIG]
    parsed = parse_signature(method, url, headers)
    if policy.is_url_blocked(cfg, parsed.key_id):
        raise SignerBlocked(f"host {host_of(parsed.key_id) or '?'} is blocked by this node")
    required_components_present(parsed, method)
    check_freshness(parsed, headers, window=cfg.federation.signature_window_seconds)
    if body is not None:
        verify_digest(headers, body)
    owner, pem = await get_public_key(app, parsed.key_id)
    try:
        verify_signature(parsed, pem)
    except SignatureError:
        owner, fresh = await get_public_key(app, parsed.key_id, refresh=True)
        if fresh == pem:
            raise
        verify_signature(parsed, fresh)
    return owner


async def check_get(request: web.Request, *, exempt: bool = False) -> str | None:
    """Signature rules for an ActivityPub GET; the verified signer's actor URL, or None.

    Signed by a blocked host: 403. [federation] authorized_fetch: a valid signature is required (401), except
    on exempt routes (the node actor, WebFinger, NodeInfo), which peers need before they can sign."""
    app = request.app
    fed = app[appkeys.CONFIG].federation
    if not has_signature(request.headers):
        if fed.authorized_fetch and not exempt:
            raise Unauthorized(
                "This node requires signed requests (authorized fetch).",
                "Sign the GET with an HTTP signature (draft-cavage or RFC 9421) of your actor's key.",
            )
        return None
    try:
        parsed = parse_signature("GET", request_url(request), request.headers)
    except SignatureError:
        parsed = None
    if parsed is not None and policy.is_url_blocked(app[appkeys.CONFIG], parsed.key_id):
        raise Forbidden("Your host is blocked by this node.", "Nothing on this node is served to your host.")
    if exempt or not fed.authorized_fetch:
        return None
    try:
        return await verify_request(app, "GET", request_url(request), request.headers)
    except (SignatureError, FetchError) as exc:
        log.info("refused signed GET %s: %s", request.path, exc)
        raise Unauthorized(f"Signature rejected: {exc}", "Sign with a current key your actor document publishes.") from None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def html_or_redirect(request: web.Request, kind: str, api_path: str) -> web.StreamResponse:
    """A browser's request: the web site's page when one is registered, else a 302 to the Agent API JSON."""
    views = request.app.get(HTML_VIEWS) or {}
    view: Handler | None = views.get(kind)
    if view is not None:
        return await view(request)
    raise web.HTTPFound(api_path, headers={"Vary": "Accept"})
