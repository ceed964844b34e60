"""Inboxes: verify the signature and the ids, store the activity once, answer 202; a worker applies it."""
from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

import asyncpg
from aiohttp import web

from node.platform import appkeys
from node.platform.errors import BadRequest, Forbidden, NotFound, PayloadTooLarge, ReefError, Unauthorized

from . import content_store as cs
from node.platform.polling import PollingWorker, backoff

from . import gate, handlers, policy, inbox_store, urls
from .fetch import FetchError, FetchGone, FetchRefused
from .inbound import AlreadyDone, Inbound, Permanent, Transient
from .jsonld import first_id, get_type
from .signatures import SignatureError

log = logging.getLogger(__name__)

# Activities whose embedded object the sender claims to have written: it must live on the sender's host.
_AUTHORED = ("Create", "Update", "Delete")


def check_activity(activity: Any, signer: str) -> dict[str, Any]:
    """The activity, if it may be stored: shaped as one, its actor the signer, its ids on the signer's host."""
    if not isinstance(activity, dict):
        raise BadRequest("The body is not an ActivityPub activity.", "POST one JSON object with id, type and actor.")
    activity_id, type_, actor = activity.get("id"), get_type(activity), first_id(activity.get("actor"))
    if not isinstance(activity_id, str) or not activity_id or not type_ or not actor:
        raise BadRequest("An activity needs an id, a type and an actor.", "Send the activity's id, type and actor.")
    if actor != signer:
        raise Forbidden(
            f"The activity's actor {actor[:200]} is not the owner of the key that signed it ({signer[:200]}).",
            "Sign with the key of the actor named in the activity.",
        )
    host = urls.host_of(actor)
    if urls.host_of(activity_id) != host:
        raise Forbidden("The activity's id is on another host than its actor.", "Activities are identified on their actor's host.")
    obj = activity.get("object")
    if type_ in _AUTHORED:
        obj_id = first_id(obj)
        if obj_id and urls.host_of(obj_id) != host:
            raise Forbidden(
                f"The object {obj_id[:200]} is on another host than the actor.",
                "Send activities about your own host's objects; others' are read from their origin.",
            )
        author = first_id(obj.get("attributedTo")) if isinstance(obj, dict) else None
        if type_ != "Delete" and author is not None and author != actor and get_type(obj) not in ("Group",):
            raise Forbidden("The object is attributed to someone else than the actor.", "Only authors create and edit.")
    inner_actor = first_id(obj.get("actor")) if isinstance(obj, dict) else None
    if type_ == "Undo" and inner_actor not in (None, actor) and not (
        get_type(obj) in ("Delete", "Remove") and urls.host_of(inner_actor or "") == host
    ):  # (a Group undoes its moderators' removals: the handler checks that it is the content's Group)
        raise Forbidden("An Undo may only undo the actor's own activity.", "Undo your own activities.")
    return activity


async def receive(request: web.Request) -> web.Response:
    """POST /inbox, /u/{name}/inbox, /m/{name}/inbox."""
    gate.require_enabled(request)
    app = request.app
    cfg = app[appkeys.CONFIG]
    if "name" in request.match_info:
        await _require_local(request)
    if request.content_length is not None and request.content_length > cfg.federation.max_document_bytes:
        raise PayloadTooLarge("The activity is too large.", f"At most {cfg.federation.max_document_bytes} bytes.")
    body = await request.read()
    if len(body) > cfg.federation.max_document_bytes:
        raise PayloadTooLarge("The activity is too large.", f"At most {cfg.federation.max_document_bytes} bytes.")
    try:
        activity = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("The body is not JSON.", "POST the activity as application/activity+json.") from None
    try:
        signer = await gate.verify_request(app, "POST", gate.request_url(request), request.headers, body)
    except gate.SignerBlocked as exc:
        raise Forbidden(str(exc), "This node does not federate with your host.") from None
    except SignatureError as exc:
        raise Unauthorized(f"Signature rejected: {exc}", "Sign the POST (draft-cavage or RFC 9421) with a current key.") from None
    except FetchRefused as exc:
        raise Forbidden(f"Your key cannot be read: {exc}", "This node does not federate with your host.") from None
    except FetchGone:
        if isinstance(activity, dict) and get_type(activity) == "Delete" and first_id(activity.get("object")) == first_id(activity.get("actor")):
            return web.Response(status=202)  # an account deleting itself: nothing of it is kept to delete
        raise Unauthorized("The signing key is gone (410).", "The actor was deleted.") from None
    except FetchError as exc:
        raise Unauthorized(f"The signing key could not be fetched: {exc}", "Make the key id dereferenceable.") from None
    check_activity(activity, signer)
    if policy.is_url_blocked(cfg, signer):
        raise Forbidden("Your host is blocked by this node.", "This node does not federate with your host.")
    async with app[appkeys.POOL].acquire() as conn:
        new = await inbox_store.insert_inbox_activity(conn, activity["id"], signer, get_type(activity) or "", activity)
        if new:
            await inbox_store.wake_processors(conn)
    if new:
        log.info("received %s %s from %s", get_type(activity), activity["id"], signer)
    return web.Response(status=202)


async def _require_local(request: web.Request) -> None:
    name = request.match_info["name"]
    async with request.app[appkeys.POOL].acquire() as conn:
        if request.path.startswith("/u/"):
            found = await cs.get_agent_row_by_name(conn, name)
        else:
            found = await cs.get_submolt_row_by_name(conn, name)
    if found is None:
        raise NotFound(f"No inbox {request.path}.", "Post to the shared inbox /inbox, or to an existing actor's inbox.")


# --- the processor -----------------------------------------------------------------------------


class InboxProcessor(PollingWorker):
    """Applies stored activities in the order received; transient failures retry with backoff, permanent
    ones are recorded on the row. Several processors (processes) share the queue through leases."""

    task_name = "reef-inbox"

    def __init__(
        self, app: web.Application, *, batch_size: int = 20, poll_seconds: float = 5.0, lease_seconds: float = 300.0,
        retry_base_seconds: float = 30.0, max_attempts: int = 12,
    ) -> None:
        self.app = app
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.lease_seconds = lease_seconds
        self.retry_base_seconds = retry_base_seconds
        self.max_attempts = max_attempts
        super().__init__()

    async def seconds_until_due(self) -> float | None:
        async with self.app[appkeys.POOL].acquire() as conn:
            return await inbox_store.seconds_until_inbox_due(conn)

    async def run_once(self) -> int:
        async with self.app[appkeys.POOL].acquire() as conn:
            items = await inbox_store.claim_inbox_batch(conn, self.batch_size, self.lease_seconds)
        for i, item in enumerate(items):
            if self._stopping:  # the rest are given back, so that the next process takes them at once
                async with self.app[appkeys.POOL].acquire() as conn:
                    await inbox_store.release_inbox_leases(conn, [it.id for it in items[i:]])
                break
            await self.process(item)
        return len(items)

    async def process(self, item: inbox_store.InboxItem) -> None:
        ctx = Inbound(self.app, item.id)
        error: str | None = None
        retry = False
        try:
            await handlers.dispatch(ctx, item.body)
        except AlreadyDone:
            # Applied before: by another worker, or (an Announce) its inner activity already came directly or
            # through another Group. Either way this item is done; leaving it leased would retry it forever.
            pass
        except Permanent as exc:
            error = str(exc)
        except ReefError as exc:
            error = exc.error
        except (Transient, FetchError, OSError, asyncpg.PostgresError) as exc:
            error, retry = f"{exc.__class__.__name__}: {exc}", True
        except Exception as exc:  # a bug must not wedge the queue: record it with its traceback in the log
            log.exception("inbox activity %s (%s) failed", item.ap_id, item.type)
            error = f"{exc.__class__.__name__}: {exc}"
        metrics = self.app.get(appkeys.METRICS)
        if metrics is not None:
            outcome = "retry" if retry and item.attempts < self.max_attempts else ("failed" if error else "ok")
            metrics.inbox_processed.labels(outcome).inc()
            if outcome != "retry":
                metrics.inbox_delay.observe((dt.datetime.now(dt.timezone.utc) - item.received_at).total_seconds())
        if ctx.committed:
            return
        async with self.app[appkeys.POOL].acquire() as conn:
            if retry and item.attempts < self.max_attempts:
                delay = backoff(self.retry_base_seconds, 6 * 3600.0, item.attempts)
                await inbox_store.schedule_inbox_retry(conn, item.id, delay, error or "")
                log.info("inbox activity %s will be retried in %.0f s: %s", item.ap_id, delay, error)
            else:
                await inbox_store.mark_inbox_processed(conn, item.id, error)
                if error:
                    log.info("inbox activity %s (%s) not applied: %s", item.ap_id, item.type, error)

