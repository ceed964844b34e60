"""Templates (jinja2, autoescaped), versioned static files, and the helpers handlers answer with."""
from __future__ import annotations

import datetime as dt
import hashlib
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import quote, urlencode, urlsplit

import jinja2
from markupsafe import Markup
from aiohttp import web

from node.platform import appkeys

from .csrf import csrf_token
from .sessions import SESSION

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
TEMPLATES_DIR = HERE / "templates"


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    version: str  # a hash of the body: the URL changes when the file does, so it can be cached for a year


def load_assets() -> dict[str, Asset]:
    assets = {}
    for path in sorted(STATIC_DIR.iterdir()):
        if path.is_file():
            body = path.read_bytes()
            ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            assets[path.name] = Asset(body, ctype, hashlib.sha256(body).hexdigest()[:12])
    return assets


ENV = web.AppKey("web_jinja", jinja2.Environment)
ASSETS = web.AppKey("web_assets", dict)


def _ago(value: dt.datetime | None) -> str:
    """'3 hours ago'; the exact time goes in the <time> element's datetime attribute."""
    if value is None:
        return ""
    seconds = (dt.datetime.now(dt.timezone.utc) - value).total_seconds()
    for unit, size in (("year", 31_536_000), ("month", 2_592_000), ("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"


def _iso(value: dt.datetime | None) -> str:
    return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z") if value else ""


def _host(url: str | None) -> str:
    try:
        return urlsplit(url or "").hostname or ""
    except ValueError:
        return ""


def _http_url(url: str | None) -> str:
    """The URL if it is http(s) (links and images from remote instances are not trusted to be)."""
    return url if isinstance(url, str) and url.lower().startswith(("http://", "https://")) else ""


def _segment(value: object) -> str:
    """One path segment: names, name@host, tokens."""
    return quote(str(value), safe="@:._-~")


def _bare_name(name: str, domain: str | None) -> str:
    """A name without its '@host' (shown apart, as a badge)."""
    return name[: -len(domain) - 1] if domain and name.lower().endswith("@" + domain.lower()) else name


def _count(n: int, singular: str, plural: str | None = None) -> str:
    """'1 point', '2 points', '-1 point'."""
    return f"{n} {singular if abs(n) == 1 else (plural or singular + 's')}"


def _excerpt(text: str | None, length: int = 200) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= length else text[: length - 1].rstrip() + "…"


_ALIGN_STYLE = re.compile(r' style="text-align:\s*(left|right|center)"')


def _prose(html: str | None) -> Markup:
    """Stored, sanitised HTML for a page. The sanitiser keeps only `style="text-align:…"` on table cells
    (peers receive it as is); here it becomes a class, since the page's CSP refuses inline styles."""
    return Markup(_ALIGN_STYLE.sub(r' class="align-\1"', html or ""))


def create_env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,  # every template, whatever its name: escaping is never opt-in
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(prose=_prose, ago=_ago, iso=_iso, host=_host, excerpt=_excerpt, http_url=_http_url, seg=_segment, count=_count, bare_name=_bare_name)
    return env


def static_url(app: web.Application, name: str) -> str:
    return f"/static/{app[ASSETS][name].version}/{name}"


def safe_next(value: str | None, default: str = "/") -> str:
    """A same-site path to return to after a form: never another host, never a scheme."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value or any(ord(c) < 32 for c in value):
        return default
    return value


def page_url(path: str, **params: Any) -> str:
    query = {k: v for k, v in params.items() if v not in (None, "")}
    return f"{path}?{urlencode(query)}" if query else path


def render(
    request: web.Request, template: str, context: Mapping[str, Any] | None = None, *, status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    app = request.app
    cfg = app[appkeys.CONFIG]
    session = request.get(SESSION)
    ctx = {
        "site": {"name": cfg.node.name, "description": cfg.node.description, "base_url": cfg.base_url},
        "account": session.account if session else None,
        "csrf_token": csrf_token(request) if session else "",
        "static": lambda name: static_url(app, name),
        "request_path": request.path_qs,
        "current_path": request.path,
        "page_url": page_url,
        "og": {},
        "alternate": None,
        "canonical": None,
    }
    ctx.update(context or {})
    body = app[ENV].get_template(template).render(ctx)
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8", headers=headers)


def redirect(location: str) -> web.Response:
    """303 See Other to a same-site path (relative, so it works behind any proxy and under form-action 'self')."""
    return web.Response(status=303, headers={"Location": safe_next(location)})


async def static_file(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    asset = request.app[ASSETS].get(name)
    if asset is None:
        raise web.HTTPNotFound()
    if request.match_info["version"] == asset.version:
        cache = "public, max-age=31536000, immutable"
    else:  # an old or made-up version: serve the current file, but do not let it stick
        cache = "public, max-age=60"
    return web.Response(
        body=asset.body, content_type=asset.content_type, charset="utf-8" if asset.content_type.startswith("text/") else None,
        headers={"Cache-Control": cache, "ETag": f'"{asset.version}"'},
    )
