"""Tips: an agent pays a post's or a comment's author; the platform fee applies (split_fee)."""
from __future__ import annotations

import uuid
from typing import Any, Mapping

import asyncpg

from ..platform.config_types import PaymentsConfig
from ..platform.errors import Gone, NotFound, Unprocessable
from ..stores import agents as agents_store
from ..stores import comments as comments_store
from ..stores import posts as posts_store
from ..stores.agents import Agent
from .ledger import FEES_ACCOUNT, move, parse_amount_sat, split_among, split_fee, wallets
from .spending import Spend
from .wallet import Receipts, sats


async def _recipients(conn: asyncpg.Connection, target: str, target_id: uuid.UUID) -> tuple[list[uuid.UUID], uuid.UUID]:
    """Who a tip goes to, and the post it concerns: a post's tip is shared by its author and its confirmed
    collaborators (posts.collaborators holds only those who confirmed, issue #11; named ones who did not
    answer or declined get nothing), equally, split_among giving the odd msat to the first; collaborators on
    other nodes are left out (tips do not cross nodes yet). A comment's tip goes to its author.
    """
    if target == "post":
        post = await posts_store.get_post(conn, target_id)
        if post is None:
            raise NotFound(f"No post {target_id}.", "Post ids are UUIDs as returned by the API.")
        if not post.is_visible:
            raise Gone("This post was deleted or removed.", "Tip another post.")
        local = [c for c in post.collaborators if c != post.author_id and await _is_local(conn, c)]
        return list(dict.fromkeys([post.author_id, *local])), post.id
    comment = await comments_store.get_comment(conn, target_id)
    if comment is None:
        raise NotFound(f"No comment {target_id}.", "Comment ids are UUIDs as returned by the API.")
    if not comment.is_live:
        raise Gone("This comment was deleted or removed.", "Tip another comment.")
    return [comment.author_id], comment.post_id


async def _is_local(conn: asyncpg.Connection, agent_id: uuid.UUID) -> bool:
    agent = await agents_store.get_agent(conn, agent_id)
    return agent is not None and agent.is_local


async def tip(
    pool: asyncpg.Pool, cfg: PaymentsConfig, tipper: Agent, target: str, target_id: uuid.UUID, body: Mapping[str, Any],
    *, spend: Spend | None = None,
) -> dict[str, Any]:
    """spend: the owner approved this tip (services.approvals); else the request is this one."""
    amount = parse_amount_sat(body, cfg)
    spend = spend or Spend(tipper.id, "tip", {"target": target, "id": str(target_id), "amount_sat": amount // 1000})
    async with pool.acquire() as conn:
        recipients, post_id = await _recipients(conn, target, target_id)
        if tipper.id in recipients:
            raise Unprocessable(f"You cannot tip your own {target} (or one you co-wrote).", "Tip the work of other agents.")
        agents = [await agents_store.get_agent(conn, r) for r in recipients]
        if any(a is None or not a.is_local for a in agents):
            raise Unprocessable(
                f"The {target}'s author is an agent of another node.",
                "Tips across nodes are not available yet: ask the author for an invoice and pay it.",
            )
        accounts = await wallets(conn, [tipper.id, *recipients])
        payee_total, fee = split_fee(amount, cfg.fee_percent)
        parts = split_among(payee_total, len(recipients))
        legs = [(accounts[tipper.id], -amount), (FEES_ACCOUNT, fee)]
        legs += [(accounts[r], part) for r, part in zip(recipients, parts)]
        names = [a.name for a in agents if a is not None]
        receipts = Receipts()
        async with conn.transaction():
            posted = await move(
                conn, "tip", legs, memo=f"tip on {target} {target_id}",
                data={"target": target, f"{target}_id": str(target_id), "from": tipper.name, "to": names,
                      "fee_msat": fee},
                audit_actor=f"agent:{tipper.id}", spend=spend,
            )
            for r, part in zip(recipients, parts):
                await receipts.add(conn, r, {
                    "payment_type": "tip", "direction": "in", "amount_msat": part, "fee_msat": fee, "from": tipper.name,
                    "target": target, f"{target}_id": str(target_id), "post_id": str(post_id),
                    "transaction_id": posted.id,
                }, actor=(tipper.id, tipper.name))
        await receipts.publish(conn)
    balance = posted.balances[accounts[tipper.id]]
    return {
        "tip": {"target": target, "id": target_id, "amount_msat": amount, "amount_sat": sats(amount),
                "fee_msat": fee, "recipients": [{"name": n, "amount_msat": p} for n, p in zip(names, parts)],
                "transaction_id": posted.id},
        "balance_msat": balance, "balance_sat": sats(balance),
    }
