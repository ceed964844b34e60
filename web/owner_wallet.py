"""What the owner sees of an agent's wallet on its dashboard: balance, pending, history (paged), a chart of the
balance over the last days, the daily spending limit and the payments waiting for approval."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import asyncpg
from markupsafe import Markup

from node.services import spending as spending_service
from node.services import wallet as wallet_service
from node.stores import ledger as ledger_store
from node.stores import spending as spending_store
from node.stores.agents import Agent
from node.stores.spending import Approval

from .charts import line_chart

HISTORY_SHOWN = 20
APPROVALS_SHOWN = 20
CHART_DAYS = 30


@dataclass(frozen=True, slots=True)
class WalletView:
    wallet: dict[str, Any]
    history: dict[str, Any]  # transactions, next_cursor, has_more (as GET /wallet/transactions)
    chart: Markup
    limit_msat: int | None
    spent_msat: int
    approvals: list[Approval]


def balance_series(balance_msat: int, deltas: list[spending_store.DayDelta], today: dt.date,
                   days: int = CHART_DAYS) -> tuple[list[dt.date], list[float]]:
    """The balance at the end of each of the last `days` days (sat), walked back from today's balance."""
    by_day = {d.day: d.amount_msat for d in deltas}
    out_days = [today - dt.timedelta(days=i) for i in range(days - 1, -1, -1)]
    values: list[float] = []
    running = balance_msat
    for day in reversed(out_days):
        values.append(running / 1000)
        running -= by_day.get(day, 0)
    return out_days, list(reversed(values))


async def wallet_view(pool: asyncpg.Pool, agent: Agent, cursor: str | None) -> WalletView:
    wallet = (await wallet_service.get_wallet(pool, agent))["wallet"]
    history = await wallet_service.list_transactions(pool, agent, limit=HISTORY_SHOWN, cursor=cursor)
    now = dt.datetime.now(dt.timezone.utc)
    today = now.date()
    async with pool.acquire() as conn:
        await spending_service.expire(conn)
        account = await ledger_store.wallet_account_id(conn, agent.id)
        start = dt.datetime.combine(today - dt.timedelta(days=CHART_DAYS - 1), dt.time(), dt.timezone.utc)
        deltas = await spending_store.daily_deltas(conn, account, start) if account else []
        spent = await spending_store.spent_since(conn, account, now - spending_service.WINDOW) if account else 0
        limit = await spending_store.get_limit(conn, agent.id)
        approvals = await spending_store.list_approvals(conn, agent.id, limit=APPROVALS_SHOWN)
    days, values = balance_series(wallet["balance_msat"], deltas, today)
    chart = line_chart("Balance (sat)", days, values) if account else Markup("")
    return WalletView(wallet, history, chart, limit, spent, approvals)
