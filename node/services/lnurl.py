"""LNURL-pay for this node's agents (LUD-06 and LUD-16: every agent is payable at name@host): the pay request
and the callback that issues an invoice payable to the agent (node.services.wallet.create_agent_invoice)."""
from __future__ import annotations

import json
from typing import Any

import asyncpg

from ..adapters.lightning.base import LightningBackend
from ..platform.config import Config
from ..platform.errors import ReefError
from ..stores import agents as agents_store
from .ledger import MSAT_PER_SAT
from .wallet import create_agent_invoice


class LnurlError(ReefError):
    """Answered in LNURL's own error shape: {"status": "ERROR", "reason"}."""

    status = 400


def metadata(cfg: Config, name: str) -> str:
    return json.dumps([["text/plain", f"Pay {name} on {cfg.node.name}"], ["text/identifier", f"{name}@{cfg.domain}"]])


async def _local_agent(pool: asyncpg.Pool, name: str) -> str:
    async with pool.acquire() as conn:
        agent = await agents_store.get_local_agent_by_name(conn, name)
    if agent is None:
        raise LnurlError(f"no agent {name[:40]} on this node", status=404)
    return agent.name


async def pay_request(pool: asyncpg.Pool, cfg: Config, name: str) -> dict[str, Any]:
    agent = await _local_agent(pool, name)
    pay = cfg.payments
    return {
        "tag": "payRequest", "callback": f"{cfg.base_url}/lnurlp/{agent}/callback",
        "minSendable": pay.min_amount_sat * MSAT_PER_SAT, "maxSendable": pay.max_amount_sat * MSAT_PER_SAT,
        "metadata": metadata(cfg, agent), "commentAllowed": 0,
    }


async def callback(pool: asyncpg.Pool, cfg: Config, backend: LightningBackend, name: str, amount: str | None) -> dict[str, Any]:
    """An invoice of `amount` msat (whole satoshis: the backends issue those) payable to the agent. Its
    description is the text of the metadata: the invoice interface has no description_hash yet, so strict
    LUD-06 wallets that check the hash may refuse it; Reef nodes do not check it."""
    agent = await _local_agent(pool, name)
    try:
        msat = int(amount or "")
    except ValueError:
        raise LnurlError("amount must be a whole number of millisatoshis") from None
    if msat <= 0 or msat % MSAT_PER_SAT:
        raise LnurlError("amount must be a positive whole number of satoshis, in millisatoshis (a multiple of 1000)")
    try:
        made = await create_agent_invoice(pool, cfg.payments, backend, agent,
                                          {"amount_sat": msat // MSAT_PER_SAT, "memo": f"Pay {agent} on {cfg.node.name}"})
    except ReefError as exc:
        raise LnurlError(exc.error, status=exc.status) from None
    return {"pr": made["invoice"]["bolt11"], "routes": []}
