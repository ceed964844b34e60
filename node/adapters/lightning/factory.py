"""The Lightning backend named by [payments] backend."""
from __future__ import annotations

import aiohttp

from ...platform.config_types import ConfigError, PaymentsConfig
from .base import LightningBackend, NoBackend


def make_backend(cfg: PaymentsConfig, session: aiohttp.ClientSession | None = None) -> LightningBackend:
    """NoBackend for "none"; LNbits over its REST API for "lnbits" (imported here, so that a node without it
    still starts); Core Lightning and LND are not built yet."""
    if cfg.backend == "none":
        return NoBackend()
    if cfg.backend == "lnbits":
        from .lnbits import LNbitsBackend

        return LNbitsBackend(cfg.lnbits_url, cfg.lnbits_admin_key, session=session)
    raise ConfigError(
        f'[payments] backend = "{cfg.backend}" is not available in this version of Reef.',
        'Use backend = "lnbits" (an LNbits server in front of your Lightning node, which can itself run on '
        'CLN or LND), or "none" for payments between agents of this node only.',
    )
