"""CSRF tokens: an HMAC of the session token, in a hidden field of every form; checked on every POST."""
from __future__ import annotations

import hashlib
import hmac
from typing import Mapping
from urllib.parse import urlsplit

from aiohttp import web

from node.platform import appkeys
from node.platform.errors import Forbidden

from .sessions import SECRET, SESSION

FIELD = "csrf_token"


def csrf_token(request: web.Request) -> str:
    """The token for this visitor's forms (the same for the whole session)."""
    session = request[SESSION]
    return hmac.new(request.app[SECRET], f"csrf:{session.token}".encode(), hashlib.sha256).hexdigest()[:40]


def _same_origin(request: web.Request) -> bool:
    """A browser says where a form came from; when it names a site, it must be this one. ("null", sent
    under strict referrer policies and privacy settings, names none: the token alone decides.)"""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return True
    host = urlsplit(origin).netloc.lower()
    return host in (request.host.lower(), request.app[appkeys.CONFIG].domain.lower())


def check_csrf(request: web.Request, form: Mapping[str, str]) -> None:
    """Refuse (403) a POST whose token is missing or wrong, or that another site's page sent."""
    sent = form.get(FIELD, "")
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), csrf_token(request).encode()) or not _same_origin(request):
        raise Forbidden(
            "This form has expired or did not come from this site.",
            "Go back, reload the page, and submit the form again.",
        )
