"""Events announced with pg_notify (by services that publish at commit), delivered to this process's hub."""
from __future__ import annotations

import json
import logging
import uuid

from .hub import Hub

log = logging.getLogger(__name__)


def subscriber(hub: Hub, channel: str):
    """The (on_notify, on_connect) pair for node.platform.listen.Listener.subscribe."""

    def on_notify(payload: str) -> None:
        try:
            message = json.loads(payload)
            if "e" in message:
                deliveries = [(uuid.UUID(a), int(i)) for a, i in message["e"]]
                hub.deliver_events(deliveries, message["t"], message["p"])
            else:  # too large to carry: the named agents re-read their events
                for agent in message.get("r", []):
                    for session in list(hub.sessions.get(uuid.UUID(agent), ())):
                        session.start_sync()
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring a malformed %s notification: %s", channel, exc)

    def on_connect(first: bool) -> None:
        if not first:  # what was announced while the connection was away is in the database
            log.info("listening on %s again; resyncing open streams", channel)
            hub.resync_all()

    return on_notify, on_connect
