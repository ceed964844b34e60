"""Durable delivery: due rows taken with FOR UPDATE SKIP LOCKED, signed, POSTed, retried with backoff."""
from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import logging
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Callable

import aiohttp
import asyncpg
from opentelemetry.trace import SpanKind, Status, StatusCode

from node.platform.config import Config
from node.platform.polling import PollingWorker, backoff

from . import policy
from . import delivery_store
from .fetch import AddressRefused, Fetcher, FetchRefused
from .keys import SigningKey, signing_key_for
from .signatures import sign_request

log = logging.getLogger(__name__)

CONTENT_TYPE = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    """Retry policy. Defaults: 30 s doubling to 6 h, for 4 days; a host is down after 10 failures in a
    row and then probed once an hour. Tests shrink these instead of sleeping."""

    retry_base_seconds: float = 30.0
    retry_cap_seconds: float = 6 * 3600.0
    give_up_after_seconds: float = 4 * 86400.0
    jitter: float = 0.2  # +-20 %, so that retries after an outage do not arrive all at once
    down_after_failures: int = 10
    probe_interval_seconds: float = 3600.0
    batch_size: int = 100
    loops: int = 2
    poll_seconds: float = 5.0
    stop_grace_seconds: float | None = None  # None: the delivery timeout plus 5 s

    @classmethod
    def from_config(cls, cfg: Config) -> "DeliverySettings":
        """The retry policy an admin set in [federation] (the rest as defaulted here)."""
        f = cfg.federation
        return cls(
            retry_base_seconds=float(f.delivery_backoff_seconds),
            retry_cap_seconds=float(f.delivery_backoff_max_seconds),
            give_up_after_seconds=f.delivery_max_age_hours * 3600.0,
            down_after_failures=f.host_down_after_failures,
            probe_interval_seconds=float(f.host_probe_interval_seconds),
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one POST came to: delivered, retry (transient), failed (permanent) or gone (410)."""

    result: str
    status: int | None = None
    error: str = ""
    host_failed: bool = False  # counts towards marking the host down (no answer, or 5xx)
    retry_after: float | None = None


def backoff_seconds(settings: DeliverySettings, attempts: int, rand: Callable[[], float] = random.random) -> float:
    """Delay before the next try after `attempts` failed ones (the node's one backoff rule, with this
    delivery's base, cap and jitter)."""
    return backoff(settings.retry_base_seconds, settings.retry_cap_seconds, attempts, jitter=settings.jitter, rand=rand)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        at = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.timezone.utc)
    return max(0.0, (at - dt.datetime.now(dt.timezone.utc)).total_seconds())


def classify(status: int, retry_after: str | None = None) -> Outcome:
    if 200 <= status < 300:
        return Outcome("delivered", status)
    if status == 410:
        return Outcome("gone", status, "410 Gone")
    if status in (408, 429):
        # The host is alive and asks us to slow down: back off, but do not count it towards "down".
        return Outcome("retry", status, f"answered {status}", retry_after=_retry_after(retry_after))
    if 400 <= status < 500:
        return Outcome("failed", status, f"refused with {status}")
    return Outcome("retry", status, f"answered {status}", host_failed=status >= 500)


class DeliveryWorker(PollingWorker):
    """Sends due deliveries; several loops may run in one process and several processes on one database."""

    task_name = "reef-delivery"

    def __init__(self, pool: asyncpg.Pool, cfg: Config, fetcher: Fetcher, settings: DeliverySettings | None = None) -> None:
        self.pool = pool
        self.cfg = cfg
        self.fetcher = fetcher
        self.settings = settings or DeliverySettings.from_config(cfg)
        self._keys: dict[str, SigningKey] = {}
        self._host_slots: dict[str, asyncio.Semaphore] = {}
        self.loops = self.settings.loops
        self.poll_seconds = self.settings.poll_seconds
        super().__init__()
        self.sent = 0  # POSTs answered 2xx by this worker (for logs and benchmarks)
        self.outcomes: Counter[str] = Counter()  # recorded outcomes by result, since start
        self.metrics: Any = None  # node.platform.metrics.Metrics (set by federation.workers)
        self.tracer: Any = None  # an OpenTelemetry tracer when [tracing] is on
        self._progress = asyncio.Condition()

    # --- the loop (node.platform.polling) -------------------------------------------------------

    async def seconds_until_due(self) -> float | None:
        async with self.pool.acquire() as conn:
            return await delivery_store.seconds_until_delivery_due(conn)

    async def stop(self, grace: float | None = None) -> None:
        """Finish the batches in flight (their POSTs end within the delivery timeout), then stop.
        Past the grace period the loops are cancelled and give their unfinished rows back."""
        if grace is None:
            grace = self.settings.stop_grace_seconds
        if grace is None:
            grace = self.cfg.federation.delivery_timeout_seconds + 5
        await super().stop(grace)

    # --- one batch -----------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Lease up to batch_size due deliveries, send them at once, record each outcome as it comes.

        A row is marked delivered only after a 2xx. If this worker is stopped mid-way, the unfinished rows
        are given back at once; if the process dies, they are due again when their lease runs out. Either
        way nothing is lost (a receiver may see an activity twice; inboxes deduplicate by id)."""
        s = self.settings
        lease = self.cfg.federation.delivery_timeout_seconds + 30.0
        async with self.pool.acquire() as conn:
            due = await delivery_store.claim_due_deliveries(
                conn, s.batch_size, self.cfg.federation.delivery_concurrency_per_host, lease, s.probe_interval_seconds
            )
            if not due:
                return 0
            pending = {d.id for d in due}
            host_results: dict[str, list[Outcome]] = defaultdict(list)
            try:
                for next_done in asyncio.as_completed([self._send_one(d) for d in due]):
                    d, outcome = await next_done
                    await self._record(conn, d, outcome)
                    pending.discard(d.id)
                    host_results[d.host].append(outcome)
                    if self.metrics is not None:
                        self.metrics.deliveries.labels(outcome.result).inc()
                    async with self._progress:
                        self.outcomes[outcome.result] += 1
                        self._progress.notify_all()
            except BaseException:
                if pending:
                    await asyncio.shield(self._release(sorted(pending)))
                raise
            came_back = await self._update_hosts(conn, host_results)
        if came_back:
            self.wake()
        return len(due)

    async def wait_for_outcomes(self, predicate: Callable[[Counter[str]], bool], timeout: float = 15.0) -> None:
        """Wait until the recorded outcomes satisfy predicate (for tests and tools; woken per outcome)."""
        async with asyncio.timeout(timeout):
            async with self._progress:
                await self._progress.wait_for(lambda: predicate(self.outcomes))

    async def _release(self, ids: list[int]) -> None:
        async with self.pool.acquire() as conn:
            await delivery_store.release_leases(conn, ids)
        log.info("delivery worker stopping: %d unfinished deliveries given back", len(ids))

    async def _send_one(self, d: delivery_store.DueDelivery) -> tuple[delivery_store.DueDelivery, Outcome]:
        started = time.perf_counter()
        if self.tracer is None:
            outcome = await self._send(d)
        else:
            # The POST's traceparent (injected by the fetcher's session) is this span's: the receiver's trace
            # continues it.
            with self.tracer.start_as_current_span(
                "federation.deliver", kind=SpanKind.CLIENT,
                attributes={"server.address": d.host, "url.full": d.inbox_url, "reef.delivery.id": d.id,
                            "reef.delivery.attempt": d.attempts + 1},
            ) as span:
                outcome = await self._send(d)
                span.set_attribute("reef.delivery.outcome", outcome.result)
                if outcome.status is not None:
                    span.set_attribute("http.response.status_code", outcome.status)
                if outcome.result != "delivered":
                    span.set_status(Status(StatusCode.ERROR, outcome.error or outcome.result))
        if self.metrics is not None:
            self.metrics.delivery_seconds.observe(time.perf_counter() - started)
        return d, outcome

    async def _record(self, conn: asyncpg.Connection, d: delivery_store.DueDelivery, o: Outcome) -> None:
        s = self.settings
        if o.result == "delivered":
            self.sent += 1
            await delivery_store.mark_delivered(conn, d.id, o.status or 0)
        elif o.result == "gone":
            async with conn.transaction():
                await delivery_store.mark_delivery_failed(conn, d.id, o.status, o.error)
                dropped = await delivery_store.fail_pending_to_inbox(conn, d.inbox_url, 410, "the inbox answered 410 Gone")
                await delivery_store.mark_inbox_owner_gone(conn, d.inbox_url)
            log.info("inbox %s is gone; dropped %d pending deliveries", d.inbox_url, dropped + 1)
        elif o.result == "failed":
            await delivery_store.mark_delivery_failed(conn, d.id, o.status, o.error)
            log.info("delivery %d to %s failed for good: %s", d.id, d.inbox_url, o.error)
        else:
            age = (dt.datetime.now(dt.timezone.utc) - d.created_at).total_seconds()
            if age >= s.give_up_after_seconds:
                await delivery_store.mark_delivery_failed(
                    conn, d.id, o.status, f"gave up after {d.attempts + 1} attempts: {o.error}"
                )
                return
            delay = backoff_seconds(s, d.attempts + 1)
            if o.retry_after is not None:
                delay = min(s.retry_cap_seconds, max(delay, o.retry_after))
            await delivery_store.schedule_delivery_retry(conn, d.id, delay, o.status, o.error)

    async def _update_hosts(self, conn: asyncpg.Connection, results: dict[str, list[Outcome]]) -> list[str]:
        """Host states after a batch: any answer marks a host up (and releases its backlog if it was down);
        failures add up to marking it down."""
        came_back: list[str] = []
        s = self.settings
        async with conn.transaction():  # hosts in sorted order: concurrent workers cannot deadlock
            for host in sorted(results):
                outs = results[host]
                # Any real answer (2xx, 4xx, even 429) shows the host is up; 5xx and silence count against it.
                if any(o.status is not None and not o.host_failed for o in outs):
                    if await delivery_store.record_host_success(conn, host):
                        came_back.append(host)
                    continue
                failures = sum(1 for o in outs if o.host_failed)
                if failures and await delivery_store.record_host_failures(
                    conn, host, failures, s.down_after_failures, s.probe_interval_seconds
                ):
                    log.warning("peer host %s marked down after %d failures in a row", host, s.down_after_failures)
        for host in came_back:
            released = await delivery_store.release_host_backlog(conn, host)
            log.info("peer host %s is back; %d waiting deliveries are due again", host, released)
        return came_back

    # --- one POST -------------------------------------------------------------------------------

    async def _signing_key(self, actor_url: str) -> SigningKey:
        key = self._keys.get(actor_url)
        if key is None:
            key = await signing_key_for(self.pool, self.cfg, actor_url)
            self._keys[actor_url] = key
        return key

    def _slot(self, host: str) -> asyncio.Semaphore:
        slot = self._host_slots.get(host)
        if slot is None:
            slot = self._host_slots[host] = asyncio.Semaphore(self.cfg.federation.delivery_concurrency_per_host)
        return slot

    async def _send(self, d: delivery_store.DueDelivery) -> Outcome:
        if not policy.federates_with(self.cfg, d.host):
            return Outcome("failed", None, f"host {d.host} is refused by this node's [federation] settings")
        try:
            self.fetcher.check_url(d.inbox_url)
            key = await self._signing_key(d.actor_url)
        except FetchRefused as exc:
            return Outcome("failed", None, str(exc))
        except LookupError as exc:
            return Outcome("failed", None, f"cannot sign: {exc}")
        body = d.body_text.encode()
        async with self._slot(d.host):
            # Signed inside the slot, so the Date is fresh however long the queue for this host was.
            headers = sign_request(
                "POST", d.inbox_url, key_id=key.key_id, private_key_pem=key.private_key_pem, body=body,
                content_type=CONTENT_TYPE, headers={"Accept": "application/activity+json, application/json"},
            )
            try:
                async with asyncio.timeout(self.cfg.federation.delivery_timeout_seconds):
                    async with self.fetcher.session.post(
                        d.inbox_url, data=body, headers=headers, allow_redirects=False
                    ) as resp:
                        await resp.content.readany()  # a little of the answer, for keep-alive; never all of it
                        return classify(resp.status, resp.headers.get("Retry-After"))
            except TimeoutError:
                return Outcome(
                    "retry", None, f"no answer within {self.cfg.federation.delivery_timeout_seconds} s", host_failed=True
                )
            except aiohttp.ClientConnectorError as exc:
                if isinstance(exc.os_error, AddressRefused):
                    return Outcome("failed", None, str(exc.os_error))
                return Outcome("retry", None, f"cannot connect: {exc.os_error}", host_failed=True)
            except aiohttp.ClientError as exc:
                return Outcome("retry", None, f"{exc.__class__.__name__}: {exc}", host_failed=True)
