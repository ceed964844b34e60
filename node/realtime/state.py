"""The realtime state of a process (hub, bus, stream secret), kept on the app under REALTIME."""
from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from .bus import LocalBus
from .hub import Hub


@dataclass
class Realtime:
    hub: Hub
    bus: LocalBus
    secret: bytes
    presence_locks: dict = field(default_factory=dict)


REALTIME = web.AppKey("realtime", Realtime)
