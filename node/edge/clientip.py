"""The client's address: the TCP peer, or behind [server] trusted_proxies the rightmost untrusted forwarded hop.

Rules, as production proxies apply them (nginx real_ip_recursive, Rails, Caddy):
- A peer that is not a trusted proxy is the client; its X-Forwarded-For and Forwarded are ignored.
- From a trusted peer the forwarded hops are walked from the right (the proxy nearest to us wrote the
  rightmost entry), skipping trusted proxies; the first untrusted address is the client. The leftmost
  entry is never taken on its own: the client writes it and can forge it.
- X-Forwarded-For is read when present, else RFC 7239 Forwarded `for=` (it is only read when no
  X-Forwarded-For arrived, since common proxies append X-Forwarded-For and pass a client's Forwarded
  through untouched). The proxy in front must append to (or overwrite) the header it is read from.
- A hop that names no address ("unknown", an obfuscated "_identifier", garbage, a Forwarded element
  without for=) ends the walk: the client is behind it, so the nearest valid hop (a trusted proxy) answers.
- A peer without an IP address (a Unix socket; `reef run` listens on TCP only) is "unknown": it cannot
  be listed in trusted_proxies, so its headers are never read and all such requests share one identity.
- Addresses come back in canonical form, IPv4-mapped IPv6 (::ffff:192.0.2.1) as plain IPv4.
"""
from __future__ import annotations

import functools
import ipaddress
from typing import Iterable, Sequence

from aiohttp import web

from ..platform import appkeys

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

CLIENT_IP = web.RequestKey("client_ip", str)  # request[CLIENT_IP]: client_ip()'s answer, worked out once
UNKNOWN = "unknown"


@functools.lru_cache(maxsize=8)
def trusted_networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    """[server] trusted_proxies parsed, once per distinct list (the config holds one for the process's life)."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry))
        except ValueError:
            continue  # a loaded config cannot hold one (validated at load); never fail a request over it
    return tuple(networks)


def _unmapped(addr: IPAddress) -> IPAddress:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def parse_hop(value: str | None) -> IPAddress | None:
    """One forwarded hop as an address: 192.0.2.1, 192.0.2.1:80, 2001:db8::1, [2001:db8::1]:4711.

    None for anything else: empty, "unknown", obfuscated identifiers ("_hidden"), garbage.
    """
    v = (value or "").strip()
    if v.startswith("["):
        end = v.find("]")
        port = v[end + 1:] if end > 0 else ""
        if end < 0 or (port and not (port[0] == ":" and port[1:].isascii() and port[1:].isdigit())):
            return None
        v = v[1:end]
    elif v.count(":") == 1:  # IPv4 with a port (bare IPv6 has at least two colons)
        v, _, port = v.partition(":")
        if not (port.isascii() and port.isdigit()):
            return None
    try:
        return _unmapped(ipaddress.ip_address(v))
    except ValueError:
        return None


def is_trusted(addr: IPAddress, networks: Iterable[Network]) -> bool:
    return any(addr in net for net in networks)  # a network of the other IP version never contains it


def forwarded_hops(request: web.Request) -> list[str | None]:
    """The hops the proxies reported, client side first: X-Forwarded-For, else Forwarded for= (None: no for=)."""
    lines = request.headers.getall("X-Forwarded-For", ())
    if any(line.strip() for line in lines):
        return [hop for line in lines for hop in line.split(",")]
    return [element.get("for") for element in request.forwarded]


def rightmost_untrusted(peer: IPAddress, hops: Sequence[str | None], networks: Sequence[Network]) -> IPAddress:
    """The client behind `peer`: walking hops from the right, the first address not in networks.

    An untrusted peer is the client. When every hop is trusted, the leftmost is (a request from a
    trusted host itself); when a hop names no address, the nearest valid hop to its right is.
    """
    addr = peer
    if not is_trusted(addr, networks):
        return addr
    for raw in reversed(hops):
        hop = parse_hop(raw)
        if hop is None:
            break
        addr = hop
        if not is_trusted(addr, networks):
            break
    return addr


def _resolve(request: web.Request) -> str:
    peer = parse_hop(request.remote)
    if peer is None:
        return UNKNOWN
    entries = request.app[appkeys.CONFIG].server.trusted_proxies
    if not entries:
        return str(peer)
    return str(rightmost_untrusted(peer, forwarded_hops(request), trusted_networks(tuple(entries))))


def client_ip(request: web.Request) -> str:
    """The client's IP address, for per-address limits and the access log; "unknown" without one. Never raises."""
    ip = request.get(CLIENT_IP)
    if ip is None:
        ip = request[CLIENT_IP] = _resolve(request)
    return ip
