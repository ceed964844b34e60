"""The realtime bus: in-process for one node process, Redis pub/sub across several; plus who is online."""
from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any

from redis.exceptions import RedisError

from .hub import Hub

log = logging.getLogger(__name__)

PRESENCE_TTL = 60  # seconds a process's presence set outlives its last refresh (a crashed process)
PRESENCE_REFRESH = 20
MAX_BATCH = 200  # messages per PUBLISH
MAX_OUTGOING = 10_000  # messages waiting for Redis before the oldest are dropped (PostgreSQL has them)


class LocalBus:
    """One process: publishing is delivering to this process's hub."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def publish_events(self, deliveries: list[tuple[uuid.UUID, int]], type_: str, payload: dict[str, Any]) -> None:
        """Tell the sessions of each recipient about its committed event (call after commit)."""
        if deliveries:
            self.hub.deliver_events(deliveries, type_, payload)

    async def publish_frame(self, agent_ids: list[uuid.UUID], frame: dict[str, Any]) -> None:
        """An ephemeral frame (typing, presence) to whichever of agent_ids are connected."""
        if agent_ids:
            self.hub.deliver_frame(agent_ids, frame)

    async def presence_join(self, agent_id: uuid.UUID) -> bool:
        """This process got its first session of agent_id; True if the agent was offline everywhere."""
        return True

    async def presence_leave(self, agent_id: uuid.UUID) -> bool:
        """This process closed its last session of agent_id; True if the agent is now offline everywhere."""
        return True

    async def online(self, agent_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        return {a for a in agent_ids if self.hub.is_connected(a)}


class RedisBus(LocalBus):
    """Redis pub/sub on one channel per node (processes sharing a database share it).

    Sessions of this process get events directly; Redis carries them to the other processes. After any
    (re)subscription every session re-reads its events from PostgreSQL, so what was published while
    Redis was away is not lost.
    """

    def __init__(self, hub: Hub, url: str, namespace: str, *, socket_timeout: float = 5.0) -> None:
        super().__init__(hub)
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.url = url
        self.socket_timeout = socket_timeout
        self.origin = uuid.uuid4().hex
        self.channel = f"reef:{namespace}:stream"
        self.procs_key = f"reef:{namespace}:procs"
        self.presence_prefix = f"reef:{namespace}:presence:"
        self.presence_key = self.presence_prefix + self.origin
        # Its own client: no retries with long backoffs inside a request (a publish that fails is
        # logged; the subscribers recover from PostgreSQL), and the one pub/sub connection.
        self.redis = aioredis.from_url(
            url, socket_connect_timeout=2, socket_timeout=socket_timeout, retry=Retry(NoBackoff(), 1), health_check_interval=15
        )
        self.subscribed = asyncio.Event()
        self.subscriptions = 0  # how many times the channel was (re)subscribed: 1 + reconnects
        self.publish_failures = 0
        self.tasks: list[asyncio.Task[None]] = []
        self.outgoing: list[dict[str, Any]] = []
        self.writer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.tasks = [loop.create_task(self._listen()), loop.create_task(self._presence_loop())]
        try:
            await asyncio.wait_for(self.subscribed.wait(), 5)
        except asyncio.TimeoutError:
            log.warning("Redis at %s is not answering; realtime events reach other processes once it is back", self.url)

    async def stop(self) -> None:
        try:
            await asyncio.wait_for(self.flush(), 2)
        except asyncio.TimeoutError:
            log.warning("realtime events not handed to Redis at shutdown; other processes re-read them")
        if self.writer is not None:
            self.writer.cancel()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        try:
            await self.redis.delete(self.presence_key)
            await self.redis.zrem(self.procs_key, self.origin)
        except (OSError, RedisError) as exc:
            log.debug("could not clear presence on shutdown: %s", exc)
        await self.redis.aclose()

    async def _publish(self, message: dict[str, Any]) -> None:
        """Queue a message for the other processes; one writer sends what queued up meanwhile as one batch.

        The caller does not wait for Redis (this process's sessions were served directly), and under load
        one PUBLISH carries many events instead of one round trip each. Order is kept: one writer, FIFO.
        """
        self.outgoing.append(message)
        if len(self.outgoing) > MAX_OUTGOING:
            # Redis is too slow or away: drop the oldest; the other processes re-read them from PostgreSQL
            # (the next event of each agent shows the gap, and the sweep catches the rest).
            del self.outgoing[: len(self.outgoing) - MAX_OUTGOING]
            self.publish_failures += 1
        if self.writer is None or self.writer.done():
            self.writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        while self.outgoing:
            batch, self.outgoing = self.outgoing[:MAX_BATCH], self.outgoing[MAX_BATCH:]
            data = json.dumps({"o": self.origin, "b": batch}, ensure_ascii=False)
            try:
                await self.redis.publish(self.channel, data)
            except (OSError, asyncio.TimeoutError, RedisError) as exc:
                self.publish_failures += 1
                log.warning("realtime publish to Redis failed (%s); other processes recover from PostgreSQL", exc)

    async def flush(self) -> None:
        """Wait until everything queued so far was handed to Redis (or failed)."""
        while self.writer is not None and not self.writer.done():
            await asyncio.wait([self.writer])

    async def publish_events(self, deliveries: list[tuple[uuid.UUID, int]], type_: str, payload: dict[str, Any]) -> None:
        if not deliveries:
            return
        self.hub.deliver_events(deliveries, type_, payload)
        await self._publish({"e": [[str(a), i] for a, i in deliveries], "t": type_, "p": payload})

    async def publish_frame(self, agent_ids: list[uuid.UUID], frame: dict[str, Any]) -> None:
        if not agent_ids:
            return
        self.hub.deliver_frame(agent_ids, frame)
        await self._publish({"a": [str(a) for a in agent_ids], "f": frame})

    def _handle(self, data: bytes) -> None:
        try:
            envelope = json.loads(data)
            if envelope.get("o") == self.origin:
                return
            for message in envelope.get("b", ()):
                self._deliver(message)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("ignoring a malformed realtime message from Redis: %s", exc)

    def _deliver(self, message: dict[str, Any]) -> None:
        try:
            if "e" in message:
                deliveries = [(uuid.UUID(a), int(i)) for a, i in message["e"]]
                self.hub.deliver_events(deliveries, message["t"], message["p"])
            elif "a" in message:
                self.hub.deliver_frame([uuid.UUID(a) for a in message["a"]], message["f"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("ignoring a malformed realtime message from Redis: %s", exc)

    async def _listen(self) -> None:
        backoff = 0.05
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                while True:
                    # A bounded wait: an idle channel is not an error. (Blocking without a timeout ran into the
                    # socket timeout whenever nothing was published for 5 s, and every such "reconnect" made
                    # every open stream re-read its events from PostgreSQL.) Health checks PING meanwhile.
                    msg = await pubsub.get_message(timeout=min(1.0, self.socket_timeout / 2))
                    if msg is None:
                        continue
                    if msg["type"] == "subscribe":
                        # Subscribed (again): anything published before now is in PostgreSQL.
                        self.subscriptions += 1
                        self.subscribed.set()
                        backoff = 0.05
                        if self.subscriptions > 1:
                            log.info("realtime bus resubscribed to Redis; resyncing open streams")
                            await self._refresh_presence()
                        self.hub.resync_all()
                    elif msg["type"] == "message":
                        self._handle(msg["data"])
            except (OSError, asyncio.TimeoutError, RedisError) as exc:
                if self.subscribed.is_set():
                    log.warning("realtime bus lost Redis (%s); reconnecting", exc)
                self.subscribed.clear()
            finally:
                try:
                    await pubsub.aclose()
                except (OSError, RedisError):
                    pass  # the connection is already gone
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 1.0)

    # --- presence: one set of connected agents per process, refreshed, expiring if the process dies ---

    async def _refresh_presence(self) -> None:
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.zadd(self.procs_key, {self.origin: time.time()})
            pipe.delete(self.presence_key)
            agents = [str(a) for a in self.hub.sessions]
            if agents:
                pipe.sadd(self.presence_key, *agents)
            pipe.expire(self.presence_key, PRESENCE_TTL)
            await pipe.execute()
        except (OSError, asyncio.TimeoutError, RedisError) as exc:
            log.debug("presence refresh failed: %s", exc)

    async def _presence_loop(self) -> None:
        while True:
            await self._refresh_presence()
            await asyncio.sleep(PRESENCE_REFRESH)

    async def _elsewhere(self, agent_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        """Which agents have a session on another live process."""
        procs = await self.redis.zrangebyscore(self.procs_key, time.time() - PRESENCE_TTL, "+inf")
        others = [p.decode() for p in procs if p.decode() != self.origin]
        if not others or not agent_ids:
            return set()
        members = [str(a) for a in agent_ids]
        pipe = self.redis.pipeline(transaction=False)
        for proc in others:
            pipe.smismember(self.presence_prefix + proc, members)
        found: set[uuid.UUID] = set()
        for flags in await pipe.execute():
            found.update(a for a, flag in zip(agent_ids, flags) if flag)
        return found

    async def presence_join(self, agent_id: uuid.UUID) -> bool:
        try:
            await self.redis.sadd(self.presence_key, str(agent_id))
            return agent_id not in await self._elsewhere([agent_id])
        except (OSError, asyncio.TimeoutError, RedisError):
            return True

    async def presence_leave(self, agent_id: uuid.UUID) -> bool:
        try:
            await self.redis.srem(self.presence_key, str(agent_id))
            return agent_id not in await self._elsewhere([agent_id])
        except (OSError, asyncio.TimeoutError, RedisError):
            return True

    async def online(self, agent_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        local = {a for a in agent_ids if self.hub.is_connected(a)}
        try:
            return local | await self._elsewhere([a for a in agent_ids if a not in local])
        except (OSError, asyncio.TimeoutError, RedisError):
            return local
