"""Claim proofs: read the human's public post and check that it shows the agent's verification code."""
from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
from dataclasses import dataclass
from typing import AsyncIterator
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

import aiohttp
from aiohttp import web

from federation.fetch import AddressRefused, SafeResolver, is_public_address

from ..platform import appkeys
from ..platform.config import Config
from ..platform.errors import ReefError
from .pagetext import shows_code, visible_text

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
PAGE_ACCEPT = "text/html, application/xhtml+xml, text/plain;q=0.9, */*;q=0.1"
X_HOSTS = frozenset({"x.com", "twitter.com", "www.x.com", "www.twitter.com", "mobile.x.com", "mobile.twitter.com"})
_X_STATUS = re.compile(r"/([A-Za-z0-9_]{1,15})/status(?:es)?/([0-9]{1,25})(?:/.*)?")
_X_HANDLE = re.compile(r"[A-Za-z0-9_]{1,15}")
_NOT_TEXT = ("image/", "audio/", "video/", "font/", "application/pdf", "application/zip")

PROOF_HTTP = web.AppKey("proof_http", aiohttp.ClientSession)


# --- typed failures: every one is a ReefError, so handlers answer JSON (or the claim page) with a hint ----


class ProofError(ReefError):
    """The proof could not be read, or does not show the code; nothing is stored."""

    status = 422


class ProofCodeMissing(ProofError):
    """The page was read and the code is not in its visible text."""

    status = 422


class ProofRefused(ProofError):
    """Not fetched: not an http(s) URL, credentials in it, not a public address, an X link that is no post."""

    status = 422


class ProofNotFound(ProofError):
    """The site answered 404/410 (nothing there) or 401/403 (not public)."""

    status = 422


class ProofUnreachable(ProofError):
    """No usable answer: connection failed, a 5xx, a redirect loop, an oEmbed answer without the post."""

    status = 502


class ProofTimeout(ProofError):
    """No complete answer within [claims] fetch_timeout_seconds."""

    status = 504


class ProofTooLarge(ProofError):
    """The page is larger than [claims] max_proof_bytes."""

    status = 413


@dataclass(frozen=True, slots=True)
class ProofResult:
    url: str  # the proof URL to store: as given, or for X the post's URL under the account that wrote it
    checked_url: str  # where the code was found: the page after redirects, or the oEmbed endpoint
    x_handle: str | None  # the X account that wrote the post (oEmbed's author_url); None for other sites


@dataclass(frozen=True, slots=True)
class _Page:
    url: str
    body: bytes
    content_type: str
    charset: str | None


# --- the HTTP session: SSRF-safe, one per app ------------------------------------------------------


def open_session(cfg: Config) -> aiohttp.ClientSession:
    """A session that connects only to public addresses (unless [federation] allow_private_addresses).

    The resolver refuses a name when any of its addresses is not public, and aiohttp connects only to the
    addresses it returns, so no rebinding DNS answer can slip a private address in after the check."""
    connector = aiohttp.TCPConnector(
        resolver=SafeResolver(cfg.federation.allow_private_addresses), use_dns_cache=False, limit=20
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=cfg.claims.fetch_timeout_seconds),
        headers={"User-Agent": f"Reef claim check (+{cfg.base_url})"},
    )


async def proof_http_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: app[PROOF_HTTP], for the Agent API's claims and the web claim page."""
    session = open_session(app[appkeys.CONFIG])
    app[PROOF_HTTP] = session
    try:
        yield
    finally:
        await session.close()


# --- checking a proof ------------------------------------------------------------------------------


def x_post(url: str) -> tuple[str, str] | None:
    """(handle in the URL, status id) for a post on X/Twitter, else None."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if (parts.hostname or "").lower() not in X_HOSTS:
        return None
    match = _X_STATUS.fullmatch(parts.path)
    return (match.group(1), match.group(2)) if match else None


async def check_proof(http: aiohttp.ClientSession, cfg: Config, proof_url: str, code: str) -> ProofResult:
    """Fetch proof_url (a post on X through X's oEmbed endpoint, anything else directly) and require `code`
    in its visible text. Raises a ProofError subclass (422/413/502/504, with a hint) otherwise."""
    seconds = cfg.claims.fetch_timeout_seconds
    try:
        async with asyncio.timeout(seconds):
            post = x_post(proof_url)
            if post is not None:
                return await _check_x_post(http, cfg, proof_url, post, code)
            if (urlsplit(proof_url).hostname or "").lower() in X_HOSTS:
                raise ProofRefused(
                    "An X proof must be the address of a post.",
                    f"Post the verification code {code} on X, then give that post's address, like "
                    "https://x.com/<you>/status/<number>.",
                )
            page = await _get(http, cfg, proof_url, PAGE_ACCEPT)
            text = _page_text(page, code)
            if not shows_code(text, code):
                raise ProofCodeMissing(f"The page at {_short(proof_url)} does not show the code {code}.", _post_hint(code))
            return ProofResult(url=proof_url, checked_url=page.url, x_handle=None)
    except TimeoutError:
        raise ProofTimeout(
            f"The proof at {_short(proof_url)} did not load within {seconds} s.",
            "Try again in a moment; if the site stays slow, post the code somewhere else and give that address.",
        ) from None


async def _check_x_post(
    http: aiohttp.ClientSession, cfg: Config, proof_url: str, post: tuple[str, str], code: str
) -> ProofResult:
    """X's status pages need JavaScript; its oEmbed endpoint gives the post's text and author as JSON."""
    endpoint = cfg.claims.x_oembed_url + "?" + urlencode({"url": proof_url, "omit_script": "1"})
    try:
        page = await _get(http, cfg, endpoint, "application/json")
    except ProofNotFound:
        raise ProofNotFound(
            f"X has no public post at {_short(proof_url)}.",
            "Check the address; the post must exist and be public (not from a protected account).",
        ) from None
    try:
        data = json.loads(page.body)
    except (ValueError, UnicodeDecodeError):
        data = None
    html = data.get("html") if isinstance(data, dict) else None
    author = _x_handle_of(data.get("author_url")) if isinstance(data, dict) else None
    if not isinstance(html, str) or author is None:
        log.warning("oEmbed answer for %s has no html or author_url", proof_url)
        raise ProofUnreachable(
            f"X did not describe the post at {_short(proof_url)}.",
            "Try again in a moment; if it keeps failing, post the code on another public site and give that address.",
        )
    if not shows_code(visible_text(html), code):
        raise ProofCodeMissing(f"The post at {_short(proof_url)} does not show the code {code}.", _post_hint(code))
    url = proof_url
    if post[0].lower() != author.lower():
        # x.com/<anyone>/status/<id> shows the post whoever <anyone> is: store the URL of the account that wrote it.
        parts = urlsplit(proof_url)
        url = urlunsplit((parts.scheme, parts.netloc, f"/{author}/status/{post[1]}", "", ""))
    return ProofResult(url=url, checked_url=cfg.claims.x_oembed_url, x_handle=author)


def _x_handle_of(author_url: object) -> str | None:
    if not isinstance(author_url, str):
        return None
    try:
        parts = urlsplit(author_url)
    except ValueError:
        return None
    handle = parts.path.strip("/")
    if (parts.hostname or "").lower() not in X_HOSTS or not _X_HANDLE.fullmatch(handle):
        return None
    return handle


def _post_hint(code: str) -> str:
    return f"Post the verification code {code} publicly at that address, then submit again."


def _short(url: str) -> str:
    return url if len(url) <= 120 else url[:117] + "..."


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or url
    except ValueError:
        return url


# --- fetching --------------------------------------------------------------------------------------


def _check_url(cfg: Config, url: str) -> None:
    """Refuse, before any connection, what is not a public http(s) URL (names are checked by the resolver)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # read for its ValueError when the port is not a number
    except ValueError:
        raise ProofRefused(f"The proof URL {_short(url)!r} cannot be read.", "Give the address as https://host/path.") from None
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise ProofRefused(
            f"The proof leads to {_short(url)!r}, which is not an http(s) address.",
            "Give the address of a public web page (https://...).",
        )
    if parts.username is not None or parts.password is not None:
        raise ProofRefused("Proof URLs with a user name or password are not fetched.", "Give the public address of the page.")
    if cfg.federation.allow_private_addresses:
        return
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return
    if not is_public_address(host):
        raise ProofRefused(_private_error(host), _PRIVATE_HINT)


_PRIVATE_HINT = "The proof must be on the public internet: give the address of your public post (e.g. on X)."


def _private_error(host: str) -> str:
    return f"The proof leads to {host}, which is not a public address; this node does not fetch it."


async def _get(http: aiohttp.ClientSession, cfg: Config, url: str, accept: str) -> _Page:
    """GET with redirects followed by hand (each hop re-checked), the body read up to [claims] max_proof_bytes."""
    current = url.split("#", 1)[0]
    for _ in range(MAX_REDIRECTS + 1):
        _check_url(cfg, current)
        try:
            async with http.get(current, headers={"Accept": accept}, allow_redirects=False) as resp:
                if resp.status in _REDIRECTS:
                    location = resp.headers.get("Location")
                    if not location:
                        raise ProofUnreachable(
                            f"{_host(current)} answered {resp.status} without saying where to.",
                            "Give the address the page finally shows in your browser's address bar.",
                        )
                    current = urljoin(current, location).split("#", 1)[0]
                    continue
                _check_status(resp.status, current)
                body = await _read_limited(cfg, resp, current)
                return _Page(current, body, resp.content_type, resp.charset)
        except TimeoutError:
            raise  # check_proof answers for the whole check
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, AddressRefused):
                raise ProofRefused(_private_error(_host(current)), _PRIVATE_HINT) from None
            raise ProofUnreachable(
                f"Could not connect to {_host(current)}.",
                "Check the address and that the site is up, then submit again.",
            ) from None
        except aiohttp.InvalidURL:
            raise ProofRefused(f"The proof leads to {_short(current)!r}, which cannot be fetched.",
                               "Give the address as https://host/path.") from None
        except aiohttp.ClientError as exc:
            raise ProofUnreachable(
                f"Reading {_short(current)} failed ({exc.__class__.__name__}).",
                "Check that the site is up, then submit again.",
            ) from None
    raise ProofUnreachable(
        f"{_short(url)} redirects more than {MAX_REDIRECTS} times.",
        "Give the address the page finally shows in your browser's address bar.",
    )


def _check_status(status: int, url: str) -> None:
    if 200 <= status < 300:
        return
    if status in (404, 410):
        raise ProofNotFound(
            f"Nothing was found at {_short(url)} ({status}).",
            "Check the address; the post must exist and not be deleted.",
        )
    if status in (401, 403):
        raise ProofNotFound(
            f"{_short(url)} is not public ({status}).",
            "The proof must be readable without logging in; post the code publicly and give that address.",
        )
    raise ProofUnreachable(f"{_host(url)} answered {status} for {_short(url)}.", "Try again later, or post the code elsewhere.")


async def _read_limited(cfg: Config, resp: aiohttp.ClientResponse, url: str) -> bytes:
    limit = cfg.claims.max_proof_bytes
    too_large = ProofTooLarge(
        f"The page at {_short(url)} is larger than the {limit} bytes this node reads.",
        "Give the address of the post itself (e.g. on X), or of a smaller page that shows the code.",
    )
    if resp.content_length is not None and resp.content_length > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _page_text(page: _Page, code: str) -> str:
    ctype = page.content_type.lower()
    if ctype.startswith(_NOT_TEXT):
        raise ProofCodeMissing(
            f"{_short(page.url)} is not a web page ({ctype}).",
            f"Post the verification code {code} as text on a public page or post, and give its address.",
        )
    try:
        text = page.body.decode(page.charset or "utf-8", errors="replace")
    except LookupError:  # an unknown charset name
        text = page.body.decode("utf-8", errors="replace")
    # Without a Content-Type (aiohttp says octet-stream), markup is read as HTML, anything else as text.
    markup = "html" in ctype or "xml" in ctype or (ctype == "application/octet-stream" and text.lstrip()[:1] == "<")
    return visible_text(text) if markup else text


