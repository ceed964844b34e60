"""Fetching remote ActivityPub documents safely: SSRF checks pinned to the connection, signed GETs, limits."""
from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import aiohttp
import asyncpg
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from node.platform import tracing
from node.platform.config import Config

from . import policy
from .keys import SigningKey, instance_signing_key
from .signatures import sign_request
from .urls import host_of

log = logging.getLogger(__name__)

AP_ACCEPT = 'application/activity+json, application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
JRD_ACCEPT = "application/jrd+json, application/json"
MAX_REDIRECTS = 3
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


# --- typed failures: callers decide retries from the type ----------------------------------------


class FetchError(Exception):
    """A remote fetch failed (other HTTP status, bad JSON, wrong id host, too large...)."""

    def __init__(self, message: str, *, url: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class FetchGone(FetchError):
    """410: the object or actor was deleted; stop asking."""


class FetchNotFound(FetchError):
    """404: nothing there (may appear later)."""


class FetchRefused(FetchError):
    """Not attempted: federation off, host blocked or not allowed, private address, bad URL."""


class FetchTimeout(FetchError):
    """No complete answer within [federation] fetch_timeout_seconds."""


class FetchTooLarge(FetchError):
    """The document is larger than [federation] max_document_bytes."""


class AddressRefused(OSError):
    """Raised inside the resolver so that aiohttp never opens a connection to a refused address."""


# --- addresses -----------------------------------------------------------------------------------


def is_public_address(address: str) -> bool:
    """False for loopback, private, link-local, multicast, reserved, unspecified and shared addresses."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            ip = mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified or ip.is_loopback)


def _ip_literal(host: str) -> str | None:
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        return None
    return bare


class SafeResolver(AbstractResolver):
    """Resolves with getaddrinfo and refuses the whole name when any address is not public.

    aiohttp connects only to the addresses this returns, so the check and the connection use the same
    answer (no second lookup a rebinding DNS server could change)."""

    def __init__(self, allow_private: bool) -> None:
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, family=family)
        out: list[ResolveResult] = []
        for fam, _, proto, _, sockaddr in infos:
            address = sockaddr[0]
            if not self._allow_private and not is_public_address(address):
                raise AddressRefused(f"{host} resolves to {address}, which is not a public address")
            out.append(
                {"hostname": host, "host": address, "port": sockaddr[1], "family": fam, "proto": proto,
                 "flags": socket.AI_NUMERICHOST}
            )
        if not out:
            raise OSError(f"{host} has no address")
        return out

    async def close(self) -> None:
        return None


# --- the fetcher ---------------------------------------------------------------------------------


class Fetcher:
    """One per app (app[FETCHER]): a pinned, SSRF-safe HTTP session plus signed JSON GETs."""

    def __init__(self, cfg: Config, pool: asyncpg.Pool) -> None:
        self.cfg = cfg
        self.pool = pool
        self._session: aiohttp.ClientSession | None = None
        self._key: SigningKey | None = None

    async def start(self) -> None:
        fed = self.cfg.federation
        connector = aiohttp.TCPConnector(
            resolver=SafeResolver(fed.allow_private_addresses), use_dns_cache=False, limit=100, limit_per_host=16
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=fed.fetch_timeout_seconds),
            headers={"User-Agent": f"Reef (+{self.cfg.base_url})"},
            auto_decompress=True,
            trace_configs=[tracing.client_trace_config()],  # the current span's traceparent, when tracing is on
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> "Fetcher":
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        """The SSRF-safe session; deliveries POST through it too (call check_url first)."""
        if self._session is None:
            raise RuntimeError("Fetcher.start() was not called")
        return self._session

    async def signing_key(self) -> SigningKey:
        """The node actor's key, which signs every GET (servers in secure mode require it)."""
        if self._key is None:
            self._key = await instance_signing_key(self.pool, self.cfg)
        return self._key

    def check_url(self, url: str) -> str:
        """The URL's host[:port] if it may be contacted; FetchRefused (before any connection) if not."""
        if not self.cfg.federation.enabled:
            raise FetchRefused("federation is disabled on this node", url=url)
        try:
            parts = urlsplit(url)
            hostname = parts.hostname
        except ValueError:
            raise FetchRefused(f"unreadable URL {url!r}", url=url) from None
        if parts.scheme not in ("https", "http") or not hostname:
            raise FetchRefused(f"only http(s) URLs are fetched, not {url!r}", url=url)
        if parts.username or parts.password:
            raise FetchRefused("URLs with credentials are not fetched", url=url)
        host = host_of(url)
        if policy.is_blocked(self.cfg, host):
            raise FetchRefused(f"host {host} is blocked by this node's [federation] settings", url=url)
        literal = _ip_literal(hostname)
        if literal is not None and not self.cfg.federation.allow_private_addresses and not is_public_address(literal):
            raise FetchRefused(f"{literal} is not a public address", url=url)
        return host

    async def get_json(
        self, url: str, *, accept: str = AP_ACCEPT, sign: bool = True, check_id: bool = True
    ) -> dict[str, Any]:
        """GET a JSON object, signed by the node actor; redirects re-checked; typed FetchError on failure.

        With check_id, the document's id must be on the host it was served from (after redirects)."""
        parts = urlsplit(url)
        current = urlunsplit((parts.scheme, parts.netloc, parts.path or "/", parts.query, ""))
        try:
            async with asyncio.timeout(self.cfg.federation.fetch_timeout_seconds):
                for _ in range(MAX_REDIRECTS + 1):
                    self.check_url(current)
                    headers = {"Accept": accept}
                    if sign:
                        key = await self.signing_key()
                        headers = sign_request("GET", current, key_id=key.key_id,
                                               private_key_pem=key.private_key_pem, headers=headers)
                    async with self.session.get(current, headers=headers, allow_redirects=False) as resp:
                        if resp.status in _REDIRECTS and resp.headers.get("Location"):
                            current = urljoin(current, resp.headers["Location"]).split("#", 1)[0]
                            continue
                        self._check_status(resp.status, current)
                        body = await self._read_limited(resp, current)
                    return self._parse(body, current, check_id)
                raise FetchError(f"more than {MAX_REDIRECTS} redirects from {url}", url=url)
        except TimeoutError:
            raise FetchTimeout(
                f"{url} did not answer within {self.cfg.federation.fetch_timeout_seconds} s", url=url
            ) from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, AddressRefused):
                raise FetchRefused(str(exc.os_error), url=url) from None
            raise FetchError(f"cannot connect to {host_of(url)}: {exc.os_error}", url=url) from None
        except aiohttp.ClientError as exc:
            raise FetchError(f"fetching {url} failed: {exc.__class__.__name__}: {exc}", url=url) from None

    @staticmethod
    def _check_status(status: int, url: str) -> None:
        if status == 200:
            return
        if status == 410:
            raise FetchGone(f"{url} is gone (410)", url=url, status=status)
        if status == 404:
            raise FetchNotFound(f"{url} was not found (404)", url=url, status=status)
        raise FetchError(f"{url} answered {status}", url=url, status=status)

    async def _read_limited(self, resp: aiohttp.ClientResponse, url: str) -> bytes:
        limit = self.cfg.federation.max_document_bytes
        if resp.content_length is not None and resp.content_length > limit:
            raise FetchTooLarge(f"{url} is {resp.content_length} bytes, over the {limit} allowed", url=url)
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(65536):
            size += len(chunk)
            if size > limit:
                raise FetchTooLarge(f"{url} sent more than the {limit} bytes allowed", url=url)
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _parse(body: bytes, url: str, check_id: bool) -> dict[str, Any]:
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise FetchError(f"{url} did not send JSON", url=url) from None
        if not isinstance(doc, dict):
            raise FetchError(f"{url} sent JSON that is not an object", url=url)
        if check_id:
            doc_id = doc.get("id")
            if not isinstance(doc_id, str) or not doc_id:
                raise FetchError(f"the document at {url} has no id", url=url)
            if host_of(doc_id) != host_of(url):
                raise FetchError(f"the document at {url} claims the id {doc_id} on another host", url=url)
        return doc


FETCHER = web.AppKey("federation_fetcher", Fetcher)


def fetcher_of(app: web.Application) -> Fetcher:
    return app[FETCHER]
