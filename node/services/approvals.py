"""The owner decides a payment that waited for approval (spending.OverLimit): approving runs the agent's exact
request once (the approval row is locked and marked approved inside the payment's own transaction); rejecting
moves nothing. Either way the agent is told."""
from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import asyncpg

from ..adapters.lightning.base import LightningBackend
from ..adapters.lightning.lnurl import Fetcher
from ..platform.config_types import PaymentsConfig
from ..platform.errors import Conflict, NotFound, ReefError
from ..stores import spending as store
from ..stores.agents import Agent
from ..stores.spending import Approval
from . import bounties, payments, spending, tips
from .spending import Spend


async def _pending(conn: asyncpg.Connection, agent: Agent, approval_id: uuid.UUID) -> Approval:
    await spending.expire(conn)
    approval = await store.get_approval(conn, approval_id)
    if approval is None or approval.agent_id != agent.id:  # another agent's: as if it did not exist
        raise NotFound("No such payment waiting for approval.", f"{agent.name}'s approvals are on its dashboard.")
    if approval.status != "pending":
        raise Conflict(f"This payment was already decided: {approval.status}.", "Nothing moved now.")
    return approval


async def _run(pool: asyncpg.Pool, cfg: PaymentsConfig, backend: LightningBackend, fetcher: Fetcher | None,
               https: bool, agent: Agent, spend: Spend) -> tuple[int, dict[str, Any]]:
    args = spend.args
    if spend.kind == "tip":
        return 200, await tips.tip(pool, cfg, agent, args["target"], uuid.UUID(args["id"]), args, spend=spend)
    if spend.kind == "bounty":
        return 201, await bounties.create_bounty(pool, cfg, agent, uuid.UUID(args["post_id"]), args, spend=spend)
    if spend.kind == "withdraw":
        return await payments.withdraw(pool, cfg, backend, agent, args, spend=spend)
    return await payments.pay(pool, cfg, backend, agent, args, fetcher=fetcher, https=https, spend=spend)


async def approve(
    pool: asyncpg.Pool, cfg: PaymentsConfig, backend: LightningBackend, agent: Agent, approval_id: uuid.UUID,
    decided_by: str, *, fetcher: Fetcher | None = None, https: bool = True,
) -> Approval:
    """Run the request now, with the balance (and the invoice) as they are now. A refusal now (too little in
    the wallet, the invoice expired or was paid) fails the approval with its reason: nothing moved. A second
    approval finds it decided: 409."""
    async with pool.acquire() as conn:
        approval = await _pending(conn, agent, approval_id)
    spend = Spend(agent.id, approval.kind, approval.args, approval.id, decided_by)
    try:
        _, answer = await _run(pool, cfg, backend, fetcher, https, agent, spend)
    except ReefError as exc:
        async with pool.acquire() as conn, conn.transaction():
            failed = await store.decide_approval(conn, approval.id, "failed", decided_by, reason=exc.error[:500])
            current = await store.get_approval(conn, approval.id)
            assert current is not None
            if not failed:  # decided meanwhile (a concurrent approval ran it): this one moved nothing
                raise Conflict(f"This payment was already decided: {current.status}.", "Nothing moved now.") from None
            await spending.tell(conn, current)
        return current
    async with pool.acquire() as conn, conn.transaction():
        await store.decide_approval(conn, approval.id, "approved", decided_by, result=_jsonable(answer),
                                    only_pending=False)
        current = await store.get_approval(conn, approval.id)
        assert current is not None
        await spending.tell(conn, current)
    return current


async def reject(pool: asyncpg.Pool, agent: Agent, approval_id: uuid.UUID, decided_by: str) -> Approval:
    async with pool.acquire() as conn, conn.transaction():
        approval = await _pending(conn, agent, approval_id)
        await store.get_approval(conn, approval.id, lock=True)
        if not await store.decide_approval(conn, approval.id, "rejected", decided_by):
            raise Conflict("This payment was already decided.", "Nothing moved now.")
        current = await store.get_approval(conn, approval.id)
        assert current is not None
        await spending.tell(conn, current)
    return current


def _jsonable(value: Any) -> Any:
    """The payment's answer as JSON values (UUIDs and times as strings) for the approval's result."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) or not isinstance(value, (str, int, float, bool, type(None))):
        return str(value) if not isinstance(value, (str, int, float, bool)) else value
    return value
