"""Payments benchmark: internal transfers per second (an agent pays another agent's invoice of this node: payer
-100 %, payee +99 %, fee +1 %, in one transaction) and their latency, with the ledger's invariants checked after.

Run on demand (not part of the test suite):

    /work/main/.venv/bin/python tests/bench/bench_payments.py --dsn postgresql://postgres@127.0.0.1:5432/postgres

It (re)creates the database `reef_bench_payments`, migrates it, makes --agents agents and funds each through
the deposit watcher's own function (node.services.wallet.credit_paid_invoice), issues --transfers internal
invoices (not timed), then pays them all through node.services.payments.pay_internal with --concurrency
payments in flight over a pool of --pool connections, and prints transfers/s, p50 and p99. Afterwards: the sum
over all accounts is 0, every transaction sums to 0, no wallet is below 0, row balances equal their entries,
and exactly the successful payments were settled. Goal on this 2-core machine: >= 1,000 transfers/s.
"""
from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from node.adapters.lightning.base import NoBackend  # noqa: E402
from node.platform.config import build_config  # noqa: E402
from node.platform.db import create_pool  # noqa: E402
from node.platform.migrations import apply_migrations  # noqa: E402
from node.services import payments as payments_service  # noqa: E402
from node.services import wallet as wallet_service  # noqa: E402
from node.services.apikeys import hash_key, key_display_prefix, new_api_key  # noqa: E402
from node.stores import agents as agents_store  # noqa: E402
from node.stores import ledger as ledger_store  # noqa: E402
from node.stores import payments as payments_store  # noqa: E402
from tests.payments_support import ScriptedBackend  # noqa: E402

BENCH_DB = "reef_bench_payments"


def _dsn_for(dsn: str, db: str) -> str:
    base, _, query = dsn.partition("?")
    head = base.rpartition("/")[0]
    return f"{head}/{db}" + (f"?{query}" if query else "")


async def run(dsn: str, agents_n: int, transfers: int, concurrency: int, pool_size: int) -> int:
    admin = await asyncpg.connect(dsn)
    await admin.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
    await admin.execute(f"CREATE DATABASE {BENCH_DB}")
    await admin.close()
    url = _dsn_for(dsn, BENCH_DB)
    conn = await asyncpg.connect(url)
    await apply_migrations(conn)
    await conn.close()
    cfg = build_config({}, env={}).payments
    pool = await create_pool(url, pool_size, pool_size)
    rnd = random.Random(1)
    try:
        agents = []
        async with pool.acquire() as c:
            for i in range(agents_n):
                agent = await agents_store.insert_agent(c, name=f"bench{i:04d}")
                key = new_api_key()
                await agents_store.insert_api_key(c, agent.id, hash_key(key), key_display_prefix(key))
                agents.append(agent)
        funding = ScriptedBackend()
        for agent in agents:
            made = await wallet_service.create_deposit(pool, cfg, funding, agent, {"amount_sat": 1_000_000})
            assert await wallet_service.credit_paid_invoice(pool, cfg, made["deposit"]["payment_hash"], 1_000_000_000)
        work = []
        none = NoBackend()
        for _ in range(transfers):
            payer, payee = rnd.sample(agents, 2)
            made = await wallet_service.create_agent_invoice(pool, cfg, none, payee.name,
                                                             {"amount_sat": rnd.randint(1, 2000)})
            async with pool.acquire() as c:
                inv = await payments_store.get_invoice_by_hash(c, made["invoice"]["payment_hash"])
            work.append((payer, inv))
        print(f"seeded {agents_n} agents and {transfers} invoices; paying with {concurrency} in flight, "
              f"pool {pool_size}", flush=True)

        latencies: list[float] = []
        queue = iter(work)

        async def worker() -> None:
            for payer, inv in queue:
                t0 = time.perf_counter()
                await payments_service.pay_internal(pool, cfg, payer, inv)
                latencies.append(time.perf_counter() - t0)

        start, cpu0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
        latencies.sort()
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        rate = transfers / elapsed
        print(f"internal transfers: {transfers} in {elapsed:.2f} s = {rate:,.0f}/s; "
              f"p50 {statistics.median(latencies) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms; "
              f"this process's CPU {cpu / transfers * 1e6:.0f} µs per transfer (the rest is PostgreSQL and waiting)")

        async with pool.acquire() as c:
            check = await ledger_store.check_ledger(c)
            settled = await c.fetchval("SELECT count(*) FROM payment_invoices WHERE purpose = 'invoice' AND state = 'paid'")
        print(f"ledger check: {check}; settled invoices {settled}")
        ok = check == ledger_store.LedgerCheck(0, 0, 0, 0) and settled == transfers
        print("invariants: OK" if ok else "invariants: BROKEN")
        print(f"goal >= 1,000 transfers/s: {'met' if rate >= 1000 else 'NOT met'}")
        return 0 if ok else 1
    finally:
        await pool.close()
        admin = await asyncpg.connect(dsn)
        await admin.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--transfers", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--pool", type=int, default=16)
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args.dsn, args.agents, args.transfers, args.concurrency, args.pool)))


if __name__ == "__main__":
    main()
