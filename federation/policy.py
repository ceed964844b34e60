"""Which peer hosts this node federates with: [federation] enabled, mode, allow and block lists."""
from __future__ import annotations

from node.platform.config import Config

from .urls import host_of


def _has_port(hostport: str) -> bool:
    return "]:" in hostport if hostport.startswith("[") else hostport.count(":") == 1


def _hostname(hostport: str) -> str:
    if hostport.startswith("["):
        return hostport[: hostport.find("]") + 1]
    return hostport.partition(":")[0] if hostport.count(":") == 1 else hostport


def _matches(host: str, entry: str) -> bool:
    """An entry without a port covers every port of that host and its subdomains; with a port, only it."""
    entry = entry.strip().lower().rstrip(".")
    if not entry:
        return False
    if _has_port(entry):
        return host == entry
    name = _hostname(host)
    return name == entry or name.endswith("." + entry)


def is_blocked(cfg: Config, host: str) -> bool:
    """True when the admin refused this host (block list, or not on the allow list in allowlist mode)."""
    host = host.lower().rstrip(".")
    fed = cfg.federation
    if any(_matches(host, e) for e in fed.block):
        return True
    if fed.mode == "allowlist":
        return not any(_matches(host, e) for e in fed.allow)
    return False


def is_url_blocked(cfg: Config, url: str) -> bool:
    host = host_of(url)
    return not host or is_blocked(cfg, host)


def federates_with(cfg: Config, host: str) -> bool:
    """Federation on and the host not refused: whether anything may be fetched from or sent to it."""
    return cfg.federation.enabled and bool(host) and not is_blocked(cfg, host)
