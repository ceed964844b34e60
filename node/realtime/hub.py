"""The open streams of this process: per-agent sessions, ordered gap-free delivery, bounded send queues."""
from __future__ import annotations

import asyncio
import collections
import json
import logging
import uuid
from typing import Any, Awaitable, Callable, Protocol

import asyncpg

from ..stores import stream as stream_store

log = logging.getLogger(__name__)

CLOSE_SLOW_CONSUMER = 4008
CLOSE_GOING_AWAY = 1001
REPLAY_BATCH = 500
# Live events that may wait while a session replays from the database; past that the replay simply
# reads them from the database too.
PENDING_LIMIT = 1000


class Socket(Protocol):
    """What a session needs of a WebSocket (aiohttp's WebSocketResponse fits)."""

    async def send_str(self, data: str) -> None: ...

    async def close(self, *, code: int = ..., message: bytes = ...) -> bool: ...


def event_frame(event_id: int, type_: str, payload: dict[str, Any]) -> str:
    frame = {"type": type_, "id": event_id}
    frame.update(payload)
    return json.dumps(frame, ensure_ascii=False)


class Session:
    """One open stream: delivers an agent's events in id order, once, and frames in a bounded queue."""

    def __init__(
        self,
        hub: "Hub",
        agent_id: uuid.UUID,
        agent_name: str,
        ws: Socket,
        *,
        since: int | None,
        queue_size: int,
        abort: Callable[[], None] | None = None,
    ) -> None:
        self.hub = hub
        self.agent_id = agent_id
        self.agent_name = agent_name
        self.ws = ws
        self.since = since
        self.queue_size = queue_size
        self.abort = abort
        self.last_id = since or 0  # the highest event id queued for sending
        # Set when events after since were already deleted (retention): the id the replay resumed from.
        self.oldest_id: int | None = None
        self.queue: collections.deque[str] = collections.deque()
        self.writer: asyncio.Task[None] | None = None
        self.syncing = False
        self.sync_task: asyncio.Task[None] | None = None
        self.pending: list[tuple[int, str]] = []
        self.resync = False
        self.closed = False
        self.close_code: int | None = None
        self.ready = asyncio.Event()  # set once the first replay is done and live delivery is on
        self.done = asyncio.Event()  # set once the session is closed, by either side

    # --- sending ---

    def push(self, text: str) -> bool:
        """Queue a frame; a full queue closes the session as a slow consumer. False if not queued."""
        if self.closed:
            return False
        if len(self.queue) >= self.queue_size:
            self.kill(CLOSE_SLOW_CONSUMER, f"slow consumer: more than {self.queue_size} frames waiting")
            return False
        self.queue.append(text)
        if self.writer is None:
            self.writer = asyncio.get_running_loop().create_task(self._write())
        return True

    def push_frame(self, frame: dict[str, Any]) -> bool:
        return self.push(json.dumps(frame, ensure_ascii=False))

    async def _write(self) -> None:
        try:
            while self.queue and not self.closed:
                await self.ws.send_str(self.queue.popleft())
        except (ConnectionError, RuntimeError) as exc:  # the peer went away; the reader sees it too
            log.debug("stream send failed for %s: %s", self.agent_name, exc)
            self.kill(CLOSE_GOING_AWAY, "send failed")
        finally:
            self.writer = None

    def kill(self, code: int, reason: str) -> None:
        """Close the socket with code and reason, without waiting on a client that does not read."""
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        self.done.set()
        self.queue.clear()
        self.pending.clear()
        if self.writer is not None and self.writer is not asyncio.current_task():
            self.writer.cancel()
        if self.sync_task is not None and self.sync_task is not asyncio.current_task():
            self.sync_task.cancel()
        if code == CLOSE_SLOW_CONSUMER:
            log.warning("closing the stream of %s: %s", self.agent_name, reason)
            if self.hub.metrics is not None:
                self.hub.metrics.ws_drops.labels("slow_consumer").inc()
        self.hub.spawn(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        try:
            await asyncio.wait_for(self.ws.close(code=code, message=reason.encode()[:120]), self.hub.close_timeout)
        except (asyncio.TimeoutError, ConnectionError, RuntimeError):
            pass  # handled below: the transport is dropped
        finally:
            if self.abort is not None:
                # A client that never reads would keep the buffered bytes (and the socket) forever.
                asyncio.get_running_loop().call_later(self.hub.close_timeout, self.abort)

    # --- events ---

    def on_event(self, event_id: int, text: str) -> None:
        """A live event for this agent, from the bus: deliver in order, skip duplicates, repair gaps."""
        if self.closed:
            return
        if self.syncing:
            if len(self.pending) < PENDING_LIMIT:
                self.pending.append((event_id, text))
            else:
                self.resync = True
            return
        if event_id <= self.last_id:
            return
        if event_id == self.last_id + 1:
            if self.push(text):
                self.last_id = event_id
            return
        self.start_sync()  # an event is missing (lost, or its publish is still on the way)

    def start_sync(self) -> None:
        if self.closed:
            return
        if self.syncing:
            self.resync = True
            return
        self.syncing = True
        self.sync_task = asyncio.get_running_loop().create_task(self._sync())

    async def _sync(self) -> None:
        """Read what is missing from the database, then the live events that arrived meanwhile."""
        try:
            # Retention: with a since older than the events kept, the client missed some for good. Ids have
            # no gaps, so a gap in the first replay is exactly that; checked there, with no extra query.
            check_truncated = not self.ready.is_set() and self.since is not None
            last = 0
            if not self.ready.is_set():
                async with self.hub.pool.acquire() as conn:
                    last = (await stream_store.last_event_ids(conn, [self.agent_id])).get(self.agent_id, 0)
                # No since: live from now. A since past the newest event (another node's, or a bug) is
                # clamped, or the events numbered up to it would be skipped.
                if self.since is None or self.since > last:
                    self.last_id = last
            while not self.closed:
                self.resync = False
                async with self.hub.pool.acquire() as conn:
                    events = await stream_store.list_events(conn, self.agent_id, self.last_id, REPLAY_BATCH)
                if check_truncated and not events and last > self.last_id:
                    # Every event after since, up to the last, is gone: step over them.
                    self.oldest_id = self.oldest_id or last + 1
                    self.last_id = last
                for ev in events:
                    if ev.id <= self.last_id:
                        continue
                    if check_truncated and self.oldest_id is None and ev.id > self.last_id + 1:
                        self.oldest_id = ev.id
                    if not ev.visible:
                        self.last_id = ev.id  # no longer for this agent; step over it
                        continue
                    # Replay waits for room (it stalls only this client); live frames never wait.
                    while len(self.queue) >= self.queue_size and not self.closed:
                        await self._wait_room()
                    if not self.push(event_frame(ev.id, ev.type, ev.payload)):
                        return
                    self.last_id = ev.id
                if len(events) == REPLAY_BATCH:
                    continue
                # No await from here to the end of the loop body: live delivery resumes atomically.
                pending, self.pending = self.pending, []
                gap = False
                for event_id, text in sorted(pending, key=lambda p: p[0]):
                    if event_id <= self.last_id:
                        continue
                    if event_id != self.last_id + 1:
                        gap = True
                        break
                    if not self.push(text):
                        return
                    self.last_id = event_id
                if gap or self.resync:
                    continue
                self.syncing = False
                if not self.ready.is_set():
                    self.ready.set()
                    self.hub.on_ready(self)
                return
        except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
            log.warning("stream replay failed for %s: %s", self.agent_name, exc)
            self.kill(1011, "replay failed; reconnect with since")
        finally:
            self.sync_task = None
            if self.closed:
                self.syncing = False

    async def _wait_room(self) -> None:
        writer = self.writer
        if writer is None:
            await asyncio.sleep(0)
            return
        await asyncio.wait([writer], timeout=1.0)


class Hub:
    """Sessions by agent; the bus calls deliver_* for every event and frame published anywhere."""

    def __init__(self, pool: asyncpg.Pool, *, close_timeout: float = 5.0) -> None:
        self.pool = pool
        self.close_timeout = close_timeout
        self.sessions: dict[uuid.UUID, set[Session]] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.on_first: Callable[[Session], Awaitable[None]] | None = None  # presence hooks
        self.on_last: Callable[[Session], Awaitable[None]] | None = None
        self.ready_hook: Callable[[Session], None] | None = None
        self.closing = False  # set at shutdown: no new background work
        self.metrics: Any = None  # node.platform.metrics.Metrics: open sockets and queue drops

    def spawn(self, coro: Awaitable[Any]) -> None:
        if self.closing:
            if asyncio.iscoroutine(coro):
                coro.close()
            return
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    @property
    def connection_count(self) -> int:
        return sum(len(s) for s in self.sessions.values())

    def add(self, session: Session) -> None:
        """Register first (live events are captured from now on), then replay from the database."""
        group = self.sessions.setdefault(session.agent_id, set())
        group.add(session)
        if self.metrics is not None:
            self.metrics.ws_open.inc()
        session.start_sync()
        if len(group) == 1 and self.on_first is not None:
            self.spawn(self.on_first(session))

    def remove(self, session: Session) -> None:
        if not session.closed:
            session.closed = True
            session.done.set()
            session.queue.clear()
            for task in (session.writer, session.sync_task):
                if task is not None and task is not asyncio.current_task():
                    task.cancel()
        group = self.sessions.get(session.agent_id)
        if group is None or session not in group:
            return
        group.discard(session)
        if self.metrics is not None:
            self.metrics.ws_open.dec()
        if not group:
            del self.sessions[session.agent_id]
            if self.on_last is not None:
                self.spawn(self.on_last(session))

    def on_ready(self, session: Session) -> None:
        # The client knows it is live from here, and the id to reconnect with.
        frame: dict[str, Any] = {"type": "ready", "agent": session.agent_name, "last_id": session.last_id}
        if session.oldest_id is not None:
            # Events after the client's since were deleted (retention): it should re-read through REST.
            frame.update(truncated=True, oldest_id=session.oldest_id)
        session.push_frame(frame)
        if self.ready_hook is not None:
            self.ready_hook(session)

    def is_connected(self, agent_id: uuid.UUID) -> bool:
        return agent_id in self.sessions

    def deliver_events(self, deliveries: list[tuple[uuid.UUID, int]], type_: str, payload: dict[str, Any]) -> None:
        for agent_id, event_id in deliveries:
            group = self.sessions.get(agent_id)
            if not group:
                continue
            text = event_frame(event_id, type_, payload)
            for session in list(group):
                session.on_event(event_id, text)

    def deliver_frame(self, agent_ids: list[uuid.UUID], frame: dict[str, Any]) -> None:
        """An ephemeral frame (typing, presence): not stored, no id, dropped for agents not connected."""
        text = None
        for agent_id in agent_ids:
            group = self.sessions.get(agent_id)
            if not group:
                continue
            text = text or json.dumps(frame, ensure_ascii=False)
            for session in list(group):
                # While a session replays, its queue may be full of replayed events: skip, don't close.
                if session.ready.is_set() and not (session.syncing and len(session.queue) >= session.queue_size):
                    session.push(text)
                elif self.metrics is not None:
                    self.metrics.ws_drops.labels("frame_skipped").inc()

    def resync_all(self) -> None:
        """After a bus outage: every session re-reads its events from the database."""
        for group in list(self.sessions.values()):
            for session in list(group):
                session.start_sync()

    async def check_all(self) -> int:
        """Compare each session with the committed last ids; resync the ones behind. Returns how many."""
        agent_ids = list(self.sessions)
        if not agent_ids:
            return 0
        behind = 0
        for start in range(0, len(agent_ids), 5000):
            chunk = agent_ids[start:start + 5000]
            async with self.pool.acquire() as conn:
                last = await stream_store.last_event_ids(conn, chunk)
            for agent_id, last_id in last.items():
                for session in list(self.sessions.get(agent_id, ())):
                    if session.last_id < last_id and not session.syncing:
                        behind += 1
                        session.start_sync()
        return behind

    async def close_all(self, code: int = CLOSE_GOING_AWAY, reason: str = "node shutting down") -> None:
        for group in list(self.sessions.values()):
            for session in list(group):
                session.kill(code, reason)
        self.closing = True
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=self.close_timeout + 1)
