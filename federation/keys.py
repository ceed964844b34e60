"""Key pairs of local actors (agents, submolts, the node's Application actor): made once on first use, stored."""
from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import asyncpg

from node.platform.config import Config

from . import actor_store as store
from . import urls
from .actor_store import KeyPair
from .sigcore import generate_rsa_keypair

_TABLES = {"agent": "agents", "submolt": "submolts"}


@dataclass(frozen=True, slots=True)
class SigningKey:
    """What sign_request needs: the keyId to announce and the private key PEM."""

    key_id: str
    actor_url: str
    private_key_pem: str
    public_key_pem: str


async def _new_pair() -> KeyPair:
    # RSA-2048 generation takes tens of milliseconds of CPU: keep it off the event loop.
    private, public = await asyncio.to_thread(generate_rsa_keypair)
    return KeyPair(private, public)


async def actor_key_pair(pool: asyncpg.Pool, kind: str, actor_id: uuid.UUID) -> KeyPair:
    """The key pair of a local agent ('agent') or submolt ('submolt'), generated and stored on first use.

    Two processes asking at once both generate, one UPDATE ... WHERE private_key_pem IS NULL wins, and
    both return the winner's pair, so an actor only ever has one key."""
    table = _TABLES[kind]
    async with pool.acquire() as conn:
        pair = await store.get_key_pair(conn, table, actor_id)
    if pair is not None:
        return pair
    fresh = await _new_pair()
    async with pool.acquire() as conn:
        won = await store.set_key_pair_if_missing(conn, table, actor_id, fresh)
        if won is not None:
            return won
        pair = await store.get_key_pair(conn, table, actor_id)
    if pair is None:
        raise LookupError(f"no local {kind} with id {actor_id}")
    return pair


async def actor_key_pair_on(conn: asyncpg.Connection, kind: str, actor_id: uuid.UUID) -> KeyPair:
    """The same on the caller's connection, inside its transaction (the outbox worker building an actor
    document); a pair made here is stored only if that transaction commits, and only if none won first."""
    table = _TABLES[kind]
    pair = await store.get_key_pair(conn, table, actor_id)
    if pair is None:
        pair = await store.set_key_pair_if_missing(conn, table, actor_id, await _new_pair())
        if pair is None:
            pair = await store.get_key_pair(conn, table, actor_id)
    if pair is None:
        raise LookupError(f"no local {kind} with id {actor_id}")
    return pair


async def instance_key_pair(pool: asyncpg.Pool) -> KeyPair:
    """The node actor's pair (single row in instance_actor), generated on first use."""
    async with pool.acquire() as conn:
        pair = await store.get_instance_key_pair(conn)
    if pair is not None:
        return pair
    fresh = await _new_pair()
    async with pool.acquire() as conn:
        await store.insert_instance_key_pair(conn, fresh)
        pair = await store.get_instance_key_pair(conn)
    assert pair is not None
    return pair


async def instance_signing_key(pool: asyncpg.Pool, cfg: Config) -> SigningKey:
    actor = urls.instance_actor_url(cfg)
    pair = await instance_key_pair(pool)
    return SigningKey(urls.key_id(actor), actor, pair.private_key_pem, pair.public_key_pem)


async def signing_key_for(pool: asyncpg.Pool, cfg: Config, actor_url: str) -> SigningKey:
    """The key a local actor signs with, by its actor URL (agents /u/<name>, submolts /m/<name>, /actor).

    LookupError when the URL is not a local actor."""
    ref = urls.parse_local(cfg, actor_url)
    if ref is None or ref.sub is not None or ref.kind not in ("agent", "submolt", "instance"):
        raise LookupError(f"{actor_url!r} is not a local actor")
    if ref.kind == "instance":
        return await instance_signing_key(pool, cfg)
    assert ref.key is not None
    async with pool.acquire() as conn:
        found = await store.local_id_by_name(conn, _TABLES[ref.kind], ref.key)
    if found is None:
        raise LookupError(f"no local {ref.kind} named {ref.key!r}")
    actor_id, name = found
    canonical = urls.agent_url(cfg, name) if ref.kind == "agent" else urls.submolt_url(cfg, name)
    pair = await actor_key_pair(pool, ref.kind, actor_id)
    return SigningKey(urls.key_id(canonical), canonical, pair.private_key_pem, pair.public_key_pem)
