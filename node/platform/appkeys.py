"""Typed keys for the application's shared state."""
from __future__ import annotations

from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

from .config import Config

CONFIG = web.AppKey("config", Config)
POOL = web.AppKey("pool", asyncpg.Pool)
REDIS = web.AppKey("redis", Any)  # redis.asyncio.Redis, or None when not configured
HTTP = web.AppKey("http", aiohttp.ClientSession)
RATE_LIMITER = web.AppKey("rate_limiter", Any)
STARTED_AT = web.AppKey("started_at", float)
# Set by federation: an object with `async lookup_agent(handle)` / `async lookup_submolt(handle)` that resolve
# name@host (WebFinger + actor document) into a local row and return the name the services know it by
# ("name@domain" for remote rows); they raise ReefError (404/403/502/504). Absent: remote names are unknown.
REMOTE_RESOLVER = web.AppKey("remote_resolver", Any)
METRICS = web.AppKey("metrics", Any)  # node.platform.metrics.Metrics
LISTENER = web.AppKey("listener", Any)  # node.platform.listen.Listener: this process's LISTEN connection
KEY_CACHE = web.AppKey("key_cache", Any)  # node.edge.keycache.KeyCache: authenticated API keys
# node.adapters.lightning.base.LightningBackend of [payments] backend (NoBackend for "none"); closed on cleanup.
LIGHTNING = web.AppKey("lightning", Any)
