"""Fixtures of the ActivityPub tests: in-process peers that record what they receive, and a node with workers."""
from __future__ import annotations

from typing import AsyncIterator

import pytest

from ap_peer import Node, Peer, start_node


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    p = await Peer.start()
    yield p
    await p.close()


@pytest.fixture
async def peer2() -> AsyncIterator[Peer]:
    p = await Peer.start()
    yield p
    await p.close()


@pytest.fixture
async def node(aiohttp_server, aiohttp_client, make_config) -> Node:
    return await start_node(aiohttp_server, aiohttp_client, make_config)
