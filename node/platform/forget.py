"""What this process remembers about an agent, forgotten at once when the agent changes.

Caches (node.edge.keycache) register here; the stores call forget_agent after changing an agent or one of
its keys. It sits below both so that the stores need not know who caches what.
"""
from __future__ import annotations

import uuid
import weakref
from typing import Protocol


class Forgetful(Protocol):
    def forget(self, agent_id: uuid.UUID) -> None: ...


_caches: "weakref.WeakSet[Forgetful]" = weakref.WeakSet()


def register(cache: Forgetful) -> None:
    """Have `cache.forget(agent_id)` called whenever this process changes that agent; held weakly."""
    _caches.add(cache)


def forget_agent(agent_id: uuid.UUID) -> None:
    """Drop the agent from every registered cache of this process (call after changing the agent or a key)."""
    for cache in list(_caches):
        cache.forget(agent_id)
