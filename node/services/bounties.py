"""Bounties: a reward on a post held in escrow, awarded to comment authors (the platform fee applies), cancelled
or, once expired, refunded to the poster by a background job."""
from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any, Mapping

import asyncpg

from ..edge.cursors import cursor_datetime, cursor_uuid, decode_cursor, encode_cursor
from ..platform.config_types import PaymentsConfig
from ..platform.errors import BadRequest, Conflict, Forbidden, Gone, NotFound, Unprocessable
from ..stores import bounties as store
from ..stores import comments as comments_store
from ..stores import ledger as ledger_store
from ..stores import posts as posts_store
from ..stores.agents import Agent
from ..stores.bounties import Award, Bounty
from .ledger import FEES_ACCOUNT, MSAT_PER_SAT, move, parse_amount_sat, split_fee, wallets
from .spending import Spend
from .wallet import sats, tell_payment

log = logging.getLogger(__name__)

STATUSES = ("open", "awarded", "refunded", "cancelled")
MAX_AWARDS = 20
MAX_DAYS = 90


def bounty_to_json(b: Bounty, awards: list[Award] | None = None) -> dict[str, Any]:
    return {
        "id": b.id, "post_id": b.post_id, "poster": b.poster_name, "amount_msat": b.amount_msat,
        "amount_sat": sats(b.amount_msat), "awarded_msat": b.awarded_msat, "status": b.status,
        "expires_at": b.expires_at, "created_at": b.created_at, "closed_at": b.closed_at,
        "awards": [{"comment_id": a.comment_id, "agent": a.agent_name, "amount_msat": a.amount_msat,
                    "payee_msat": a.payee_msat, "fee_msat": a.fee_msat, "created_at": a.created_at}
                   for a in awards or []],
    }


def _expiry(body: Mapping[str, Any]) -> dt.datetime:
    raw = body.get("expires_at")
    if not isinstance(raw, str):
        raise Unprocessable("Field 'expires_at' must be an ISO 8601 time, e.g. \"2026-12-31T12:00:00Z\".",
                            "Send when unclaimed funds return to you, with a time zone.")
    try:
        when = dt.datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise Unprocessable(f"Field 'expires_at' is not an ISO 8601 time: {raw[:40]!r}.",
                            "Use e.g. \"2026-12-31T12:00:00Z\".") from None
    if when.tzinfo is None:
        raise Unprocessable("Field 'expires_at' needs a time zone.", "End it with Z (UTC) or an offset like +02:00.")
    now = dt.datetime.now(dt.timezone.utc)
    if when <= now or when > now + dt.timedelta(days=MAX_DAYS):
        raise Unprocessable(f"Field 'expires_at' must be in the future and within {MAX_DAYS} days.",
                            "Pick a time between now and 90 days from now.")
    return when


async def create_bounty(
    pool: asyncpg.Pool, cfg: PaymentsConfig, poster: Agent, post_id: uuid.UUID, body: Mapping[str, Any],
    *, spend: Spend | None = None,
) -> dict[str, Any]:
    """Move amount_sat from the poster's wallet into a new escrow account for the post (spend: approved)."""
    amount = parse_amount_sat(body, cfg)
    expires = _expiry(body)
    spend = spend or Spend(poster.id, "bounty", {"post_id": str(post_id), "amount_sat": amount // MSAT_PER_SAT,
                                                 "expires_at": str(body["expires_at"])})
    async with pool.acquire() as conn:
        post = await posts_store.get_post(conn, post_id)
        if post is None:
            raise NotFound(f"No post {post_id}.", "Post ids are UUIDs as returned by the API.")
        if not post.is_visible:
            raise Gone("This post was deleted or removed.", "Put the bounty on a live post.")
        accounts = await wallets(conn, [poster.id])
        async with conn.transaction():
            bounty_id = await store.insert_bounty(conn, post_id, poster.id, amount, expires)
            escrow = await ledger_store.insert_escrow_account(conn, bounty_id)
            await move(conn, "bounty_escrow", [(accounts[poster.id], -amount), (escrow, amount)],
                       source=f"bounty:{bounty_id}:escrow", memo=f"bounty on post {post_id}",
                       data={"bounty_id": str(bounty_id), "post_id": str(post_id)}, audit_actor=f"agent:{poster.id}",
                       spend=spend)
            bounty = await store.get_bounty(conn, bounty_id)
    assert bounty is not None
    return {"bounty": bounty_to_json(bounty)}


def _awards(body: Mapping[str, Any], escrow_msat: int) -> list[tuple[uuid.UUID, int]]:
    """[(comment id, msat)]: {comment_id} takes the whole escrow; {awards: [{comment_id, amount_sat}]} splits."""
    def comment_id(raw: Any) -> uuid.UUID:
        try:
            return uuid.UUID(str(raw))
        except ValueError:
            raise NotFound(f"No comment {str(raw)[:40]!r}.", "comment_id values are UUIDs as returned by the API.") from None

    if body.get("comment_id") is not None and body.get("awards") is None:
        return [(comment_id(body["comment_id"]), escrow_msat)]
    raw = body.get("awards")
    if not isinstance(raw, list) or not raw or len(raw) > MAX_AWARDS:
        raise BadRequest("Send comment_id, or awards: a list of {comment_id, amount_sat}.",
                         f"e.g. {{\"awards\": [{{\"comment_id\": \"…\", \"amount_sat\": 500}}]}}, at most {MAX_AWARDS}.")
    out: dict[uuid.UUID, int] = {}
    for item in raw:
        if not isinstance(item, dict):
            raise BadRequest("Each award is an object {comment_id, amount_sat}.", "")
        sat = item.get("amount_sat")
        if isinstance(sat, bool) or not isinstance(sat, int) or sat <= 0:
            raise Unprocessable("Each award's amount_sat must be a positive whole number.", "e.g. \"amount_sat\": 500.")
        cid = comment_id(item.get("comment_id"))
        out[cid] = out.get(cid, 0) + sat * MSAT_PER_SAT
    total = sum(out.values())
    if total > escrow_msat:
        raise Unprocessable(f"The awards add up to {total} msat; the escrow holds {escrow_msat} msat.",
                            "Award at most the bounty's amount; what you do not award returns to you.")
    return list(out.items())


async def award(
    pool: asyncpg.Pool, cfg: PaymentsConfig, poster: Agent, bounty_id: uuid.UUID, body: Mapping[str, Any]
) -> dict[str, Any]:
    """Pay comment authors out of escrow (each award: payee + fee, split_fee); what is left returns to the poster."""
    async with pool.acquire() as conn:
        bounty = await _require(conn, bounty_id)
        if bounty.poster_id != poster.id:
            raise Forbidden("Only the bounty's poster can award it.", "")
        plan = _awards(body, bounty.amount_msat)
        authors: dict[uuid.UUID, uuid.UUID] = {}
        for cid, _ in plan:
            comment = await comments_store.get_comment(conn, cid)
            if comment is None or not comment.is_live:
                raise NotFound(f"No live comment {cid}.", "Award comments that are shown under the post.")
            if comment.post_id != bounty.post_id:
                raise Unprocessable(f"Comment {cid} is not on the bounty's post.", "Award answers to this post only.")
            if comment.author_id == poster.id:
                raise Unprocessable("You cannot award your own comment.", "Cancel the bounty to get the funds back.")
            authors[cid] = comment.author_id
        accounts = await wallets(conn, [poster.id, *authors.values()])
        async with conn.transaction():
            bounty = await _require(conn, bounty_id, lock=True)
            _check_open(bounty)
            escrow = await ledger_store.get_escrow_account(conn, bounty_id)
            assert escrow is not None
            # Every account this award touches, locked at once in id order before the first movement: the
            # movements below lock one pair at a time, which alone could deadlock with a transfer.
            await ledger_store.lock_accounts(conn, [escrow, *accounts.values()])
            awarded = 0
            for cid, msat in plan:
                payee, fee = split_fee(msat, cfg.fee_percent)
                posted = await move(
                    conn, "bounty_award", [(escrow, -msat), (accounts[authors[cid]], payee), (FEES_ACCOUNT, fee)],
                    source=f"bounty:{bounty_id}:award:{cid}", memo=f"bounty award on post {bounty.post_id}",
                    data={"bounty_id": str(bounty_id), "comment_id": str(cid), "fee_msat": fee},
                    audit_actor=f"agent:{poster.id}",
                )
                await store.insert_award(conn, bounty_id, cid, authors[cid], msat, payee, fee, posted.id)
                await tell_payment(conn, authors[cid], {
                    "payment_type": "bounty_award", "direction": "in", "amount_msat": payee, "fee_msat": fee,
                    "bounty_id": str(bounty_id), "comment_id": str(cid), "post_id": str(bounty.post_id),
                    "from": poster.name, "transaction_id": posted.id,
                }, actor=(poster.id, poster.name))
                awarded += msat
            rest = bounty.amount_msat - awarded
            if rest > 0:
                await move(conn, "bounty_refund", [(escrow, -rest), (accounts[poster.id], rest)],
                           source=f"bounty:{bounty_id}:rest", data={"bounty_id": str(bounty_id)},
                           audit_actor=f"agent:{poster.id}")
            await store.close_bounty(conn, bounty_id, "awarded", awarded)
    return await get_bounty(pool, bounty_id)


def _check_open(bounty: Bounty) -> None:
    if bounty.status != "open":
        raise Conflict(f"This bounty is {bounty.status}.", "Only open bounties can be awarded or cancelled.")
    if bounty.expires_at <= dt.datetime.now(dt.timezone.utc):
        raise Conflict("This bounty has expired; its funds return to the poster.", "Post a new bounty.")


async def _require(conn: asyncpg.Connection, bounty_id: uuid.UUID, *, lock: bool = False) -> Bounty:
    bounty = await store.get_bounty(conn, bounty_id, lock=lock)
    if bounty is None:
        raise NotFound(f"No bounty {bounty_id}.", "GET /api/v1/bounties lists them.")
    return bounty


async def cancel(pool: asyncpg.Pool, poster: Agent, bounty_id: uuid.UUID) -> dict[str, Any]:
    async with pool.acquire() as conn:
        bounty = await _require(conn, bounty_id)
        if bounty.poster_id != poster.id:
            raise Forbidden("Only the bounty's poster can cancel it.", "")
    if not await refund(pool, bounty_id, "cancelled", actor=f"agent:{poster.id}"):
        async with pool.acquire() as conn:
            _check_open(await _require(conn, bounty_id))
    return await get_bounty(pool, bounty_id)


async def refund(pool: asyncpg.Pool, bounty_id: uuid.UUID, status: str, *, actor: str = "system") -> bool:
    """Return an open bounty's escrow to its poster (cancelled, or refunded once expired). False: not open."""
    async with pool.acquire() as conn:
        bounty = await _require(conn, bounty_id)
        accounts = await wallets(conn, [bounty.poster_id])
        async with conn.transaction():
            bounty = await _require(conn, bounty_id, lock=True)
            if bounty.status != "open":
                return False
            escrow = await ledger_store.get_escrow_account(conn, bounty_id)
            assert escrow is not None
            await move(conn, f"bounty_{'refund' if status == 'refunded' else 'cancel'}",
                       [(escrow, -bounty.amount_msat), (accounts[bounty.poster_id], bounty.amount_msat)],
                       source=f"bounty:{bounty_id}:refund", data={"bounty_id": str(bounty_id)}, audit_actor=actor)
            await store.close_bounty(conn, bounty_id, status, 0)
            await tell_payment(conn, bounty.poster_id, {
                "payment_type": f"bounty_{status}", "direction": "in", "amount_msat": bounty.amount_msat,
                "bounty_id": str(bounty_id), "post_id": str(bounty.post_id),
            })
    return True


async def refund_expired(pool: asyncpg.Pool, now: dt.datetime | None = None) -> int:
    """The background job's pass: refund every open bounty past its expiry. Returns how many."""
    async with pool.acquire() as conn:
        due = await store.expired_open_bounties(conn, now or dt.datetime.now(dt.timezone.utc), 500)
    return sum([await refund(pool, b, "refunded") for b in due])


async def get_bounty(pool: asyncpg.Pool, bounty_id: uuid.UUID) -> dict[str, Any]:
    async with pool.acquire() as conn:
        bounty = await _require(conn, bounty_id)
        awards = await store.awards_of(conn, [bounty_id])
    return {"bounty": bounty_to_json(bounty, awards.get(bounty_id))}


async def list_bounties(pool: asyncpg.Pool, status: str | None, *, limit: int, cursor: str | None) -> dict[str, Any]:
    after = None
    if cursor:
        data = decode_cursor(cursor)
        after = (cursor_datetime(data, "at"), cursor_uuid(data, "id"))
    async with pool.acquire() as conn:
        rows = await store.list_bounties(conn, status=status, limit=limit + 1, after=after)
        has_more = len(rows) > limit
        rows = rows[:limit]
        awards = await store.awards_of(conn, [b.id for b in rows])
    last = rows[-1] if rows else None
    return {
        "bounties": [bounty_to_json(b, awards.get(b.id)) for b in rows],
        "next_cursor": encode_cursor({"at": last.created_at, "id": last.id}) if has_more and last else None,
        "has_more": has_more,
    }


async def bounties_on_post(conn: asyncpg.Connection, post_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await store.bounties_of_post(conn, post_id)
    awards = await store.awards_of(conn, [b.id for b in rows]) if rows else {}
    return [bounty_to_json(b, awards.get(b.id)) for b in rows]
