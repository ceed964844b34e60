"""The Redis bus on its own: an idle channel is not a lost connection; batches reach the other process in order."""
from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from node.realtime.bus import RedisBus


class RecordingHub:
    """What the bus needs of a hub, recording what it is given."""

    def __init__(self) -> None:
        self.sessions: dict[uuid.UUID, Any] = {}
        self.events: list[tuple[list[tuple[uuid.UUID, int]], str, dict]] = []
        self.resyncs = 0

    def deliver_events(self, deliveries, type_, payload) -> None:
        self.events.append((deliveries, type_, payload))

    def deliver_frame(self, agent_ids, frame) -> None:
        pass

    def resync_all(self) -> None:
        self.resyncs += 1


@pytest.fixture
async def buses(redis_url: str, redis_client: Any):
    namespace = uuid.uuid4().hex[:12]
    hubs = (RecordingHub(), RecordingHub())
    pair = [RedisBus(h, redis_url, namespace, socket_timeout=0.5) for h in hubs]
    for bus in pair:
        await bus.start()
    yield pair, hubs
    for bus in pair:
        await bus.stop()


async def test_an_idle_channel_is_not_a_reconnection(buses) -> None:
    """Nothing published for several socket timeouts: still the first subscription, no resync of every stream."""
    (a, b), (hub_a, hub_b) = buses
    await asyncio.sleep(2.0)  # four times the socket timeout
    assert (a.subscriptions, b.subscriptions) == (1, 1)
    assert (hub_a.resyncs, hub_b.resyncs) == (1, 1)  # the one after the first subscription
    # And the channel still works.
    agent = uuid.uuid4()
    await a.publish_events([(agent, 1)], "dm", {"content": "after a quiet spell"})
    for _ in range(100):
        if hub_b.events:
            break
        await asyncio.sleep(0.02)
    assert hub_b.events == [([(agent, 1)], "dm", {"content": "after a quiet spell"})]


async def test_a_burst_arrives_in_order_in_few_publishes(buses) -> None:
    (a, b), (_, hub_b) = buses
    agent = uuid.uuid4()
    for i in range(1, 301):
        await a.publish_events([(agent, i)], "dm", {"n": i})
    await a.flush()
    for _ in range(200):
        if len(hub_b.events) == 300:
            break
        await asyncio.sleep(0.02)
    assert [e[0][0][1] for e in hub_b.events] == list(range(1, 301))
    assert a.publish_failures == 0
