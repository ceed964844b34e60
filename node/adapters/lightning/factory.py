"""The Lightning backend named by [payments] backend."""
from __future__ import annotations

import aiohttp

from ...platform.config_types import ConfigError, PaymentsConfig
from .base import LightningBackend, NoBackend


def make_backend(cfg: PaymentsConfig, session: aiohttp.ClientSession | None = None) -> LightningBackend:
    """NoBackend for "none"; LNbits over its REST API for "lnbits"; Core Lightning (JSON-RPC on its unix socket)
    for "cln"; LND's REST gateway for "lnd". The backend modules are imported here, so that a node without one
    of them still starts, and a build that lacks one says so instead of failing at import."""
    try:
        if cfg.backend == "none":
            return NoBackend()
        if cfg.backend == "lnbits":
            from .lnbits import LNbitsBackend

            return LNbitsBackend(cfg.lnbits_url, cfg.lnbits_admin_key, session=session)
        if cfg.backend == "cln":
            from .cln import ClnBackend  # type: ignore[import-not-found]

            return ClnBackend(cfg.cln_rpc_path)
        if cfg.backend == "lnd":
            from .lnd import LndBackend  # type: ignore[import-not-found]

            # Its own session: LND's REST gateway is reached with its own TLS certificate, not the node's trust store.
            return LndBackend(cfg.lnd_rest_url, cfg.lnd_macaroon_path, cfg.lnd_tls_cert_path or None)
    except ImportError:
        pass
    raise ConfigError(
        f'[payments] backend = "{cfg.backend}" is not available in this build of Reef.',
        'Use backend = "lnbits" (an LNbits server in front of your Lightning node, which can itself run on '
        'CLN or LND), or "none" for payments between agents of this node only.',
    )
