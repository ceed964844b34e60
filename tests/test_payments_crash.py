"""kill -9 of a real `reef run` process in the middle of a withdrawal to a real LNbits (FakeWallet); after a
restart the reconciler finishes the payment from LNbits' record: nothing paid twice, nothing created or lost.

A proxy between the node and LNbits holds the outgoing payment: either it lets the payment through to LNbits
and then never answers (the payment happened; the node dies not knowing), or it never passes it on (the
payment never left). The node is killed while it waits."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from lnbits_support import NETWORK, LNbitsServer, free_port
from node.platform.config import build_config
from node.platform.db import create_pool
from tests.factories import auth, create_agent
from tests.payments_support import assert_ledger_sound, balance, fund

ROOT = Path(__file__).resolve().parent.parent


class HoldingProxy:
    """Forwards to LNbits; an outgoing payment (POST /api/v1/payments with out: true) is held per `mode`."""

    def __init__(self, target: str, mode: str) -> None:
        self.target, self.mode = target, mode
        self.paid = asyncio.Event()  # the payment reached LNbits and LNbits answered
        self.held = asyncio.Event()  # the payment request arrived here
        self.runner: web.AppRunner | None = None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        outgoing = request.method == "POST" and request.path == "/api/v1/payments" and json.loads(body or b"{}").get("out")
        if outgoing and self.mode == "never_sent":
            self.held.set()
            await asyncio.Event().wait()  # the node dies waiting
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("x-api-key", "content-type", "accept")}
        async with aiohttp.ClientSession() as http:
            async with http.request(request.method, self.target + request.path_qs, data=body, headers=headers) as up:
                answer, status = await up.read(), up.status
        if outgoing:
            self.held.set()
            self.paid.set()
            await asyncio.Event().wait()  # paid at LNbits; the answer never reaches the node
        return web.Response(body=answer, status=status, content_type="application/json")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.shutdown()
            await self.runner.cleanup()


async def start_node(tmp: Path, database_url: str, lnbits_url: str, admin_key: str, reconcile_after: int):
    port = free_port()
    config = tmp / f"reef-{port}.toml"
    config.write_text(
        f'[server]\nport = {port}\n[node]\ndata_dir = "{tmp / "data"}"\ndomain = "127.0.0.1:{port}"\n'
        f'[database]\nurl = "{database_url}"\n[log]\nformat = "json"\n'
        f'[payments]\nbackend = "lnbits"\nlnbits_url = "{lnbits_url}"\nlnbits_admin_key = "{admin_key}"\n'
        f'network = "{NETWORK}"\npayments_per_minute = 0\nreconcile_after_seconds = {reconcile_after}\n'
        f'deposit_poll_seconds = 1.0\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("REEF_")}
    log = open(tmp / f"node-{port}.log", "wb")
    # cwd is this worktree, so `python -m node` runs this checkout's code
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "node", "--config", str(config), "run",
                                                cwd=ROOT, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        for _ in range(600):
            assert proc.returncode is None, (tmp / f"node-{port}.log").read_text()[-3000:]
            try:
                async with http.get(f"{url}/api/v1/health") as resp:
                    if resp.status == 200:
                        return proc, url
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError("the node did not start")


@pytest.mark.parametrize("mode", ["paid_no_answer", "never_sent"])
async def test_kill_9_mid_withdrawal_then_restart_reconciles(mode: str, lnbits: LNbitsServer, database_url: str,
                                                             tmp_path: Path) -> None:
    node_wallet = lnbits.create_wallet(f"crash-{mode}")
    lnbits.topup(node_wallet, 5000)
    cfg = build_config({"payments": {"network": NETWORK}}, env={}).payments
    pool = await create_pool(database_url, 1, 4)
    proxy = HoldingProxy(lnbits.url, mode)
    await proxy.start()
    procs: list[Any] = []
    try:
        agent, key = await create_agent(pool, "leaver")
        await fund(pool, cfg, agent, 2000)
        ext_before = lnbits.balance_msat(lnbits.external)
        bolt11 = lnbits.make_invoice(lnbits.external, 700, "crash test")["bolt11"]

        proc, url = await start_node(tmp_path, database_url, proxy.url, node_wallet.admin_key, reconcile_after=3600)
        procs.append(proc)
        async with aiohttp.ClientSession() as http:
            request = asyncio.ensure_future(http.post(f"{url}/api/v1/wallet/withdraw", json={"bolt11": bolt11},
                                                      headers=auth(key)))
            await asyncio.wait_for((proxy.paid if mode == "paid_no_answer" else proxy.held).wait(), 60)
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            with pytest.raises(aiohttp.ClientError):
                await request

        async with pool.acquire() as conn:
            row = await conn.fetchrow("SELECT state, amount_msat, max_fee_msat FROM payment_withdrawals")
        assert row["state"] == "in_flight"
        reserved = row["amount_msat"] + row["max_fee_msat"]
        assert await balance(pool, agent) == 2_000_000 - reserved  # the reservation survived the kill
        paid_at_lnbits = lnbits.balance_msat(lnbits.external) - ext_before
        assert paid_at_lnbits == (700_000 if mode == "paid_no_answer" else 0)

        # Restart (straight to LNbits): the reconciler asks LNbits and finishes the row; it never pays again.
        proc, url = await start_node(tmp_path, database_url, lnbits.url, node_wallet.admin_key, reconcile_after=0)
        procs.append(proc)
        for _ in range(150):
            async with pool.acquire() as conn:
                state = await conn.fetchval("SELECT state FROM payment_withdrawals")
            if state not in ("reserved", "in_flight"):
                break
            await asyncio.sleep(0.2)
        assert state == ("succeeded" if mode == "paid_no_answer" else "failed")
        async with pool.acquire() as conn:
            fee = await conn.fetchval("SELECT coalesce(fee_msat, 0) FROM payment_withdrawals")
        spent = 700_000 + fee if mode == "paid_no_answer" else 0
        assert await balance(pool, agent) == 2_000_000 - spent
        await asyncio.sleep(1.5)  # another reconciler pass: nothing changes, nothing is paid again
        assert lnbits.balance_msat(lnbits.external) - ext_before == paid_at_lnbits
        assert await balance(pool, agent) == 2_000_000 - spent
        await assert_ledger_sound(pool)
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(proc.wait(), 60)
        await proxy.stop()
        await pool.close()
