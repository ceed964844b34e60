"""The web site's middleware: sessions, HTML error pages and security headers, for web routes only.

The API (/api/*) and ActivityPub keep their JSON errors: this middleware only takes requests whose
route is one of the site's (named "web.*"), and GET/HEAD requests that matched no route and do not
ask for JSON (a browser's 404).
"""
from __future__ import annotations

import logging
from typing import Awaitable, Callable

from aiohttp import web

from node.platform.errors import ReefError
from node.edge.middleware import REQUEST_ID
from node.stores.web_accounts import Account

from .render import render, safe_next
from .sessions import SESSION, anonymous, load_session, set_cookie

errlog = logging.getLogger("reef.errors")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: http: data:; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'; manifest-src 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}
_HTTP_TEXT = {
    404: ("Page not found.", "Check the address, or start again from the front page."),
    405: ("That does not work here.", "This address does not take that kind of request."),
    413: ("That was too large.", "Send less text."),
}


class LoginRequired(Exception):
    """Raised by pages for logged-in owners; answered with a redirect to the login form."""


def require_account(request: web.Request) -> Account:
    session = request.get(SESSION)
    if session is None or session.account is None:
        raise LoginRequired()
    return session.account


def is_web_request(request: web.Request) -> bool:
    if request.path.startswith("/api/"):
        return False
    match = request.match_info
    name = getattr(match.route, "name", None) or ""
    if name.startswith("web."):
        return True
    if match.http_exception is not None:  # no route: a browser's 404 gets a page
        return request.method in ("GET", "HEAD") and "json" not in request.headers.get("Accept", "")
    return False


def error_page(request: web.Request, status: int, error: str, hint: str, headers: dict[str, str] | None = None) -> web.Response:
    if request.get(SESSION) is None:
        request[SESSION] = anonymous()
    context = {"status": status, "error": error, "hint": hint, "request_id": request.get(REQUEST_ID, "")}
    keep = {k: v for k, v in (headers or {}).items() if k.lower() not in ("content-type", "content-length")}
    return render(request, "error.html", context, status=status, headers=keep)


@web.middleware
async def web_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not is_web_request(request):
        return await handler(request)
    static = (getattr(request.match_info.route, "name", None) or "") == "web.static"
    try:
        if not static:
            request[SESSION] = await load_session(request)
        response = await handler(request)
    except LoginRequired:
        response = web.Response(status=303, headers={"Location": "/login?next=" + _quote(safe_next(request.path_qs))})
    except ReefError as exc:
        response = error_page(request, exc.status, exc.error, exc.hint, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error, hint = _HTTP_TEXT.get(exc.status, (exc.reason, ""))
        response = error_page(request, exc.status, error, hint, dict(exc.headers))
    except Exception:
        errlog.exception("unhandled error in %s %s", request.method, request.path)
        rid = request.get(REQUEST_ID, "")
        response = error_page(request, 500, "Something went wrong on this node.",
                              f"It is not your fault. Quote request id {rid} when reporting it.")
    set_cookie(request, response)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if not static:
        # Pages differ per visitor (login, CSRF tokens): never kept by shared caches.
        response.headers.setdefault("Cache-Control", "private, no-cache")
        response.headers.setdefault("Vary", "Cookie")
    return response


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")
