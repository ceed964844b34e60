"""1,000 concurrent payments among 50 agents through the services (internal invoices, tips, bounty awards, and
attempts to pay one invoice or award one bounty twice): no wallet below zero, nothing paid twice, every
transaction sums to zero and the sum over all accounts stays what the deposits brought in."""
from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid
from collections import Counter

from node.adapters.lightning.base import NoBackend
from node.platform.config import build_config
from node.platform.db import create_pool
from node.platform.errors import ReefError
from node.services import bounties as bounties_service
from node.services import payments as payments_service
from node.services import tips as tips_service
from node.services import wallet as wallet_service
from node.stores import ledger as ledger_store
from node.stores import payments as payments_store
from tests.factories import create_agent
from tests.payments_support import assert_ledger_sound, fund, make_comment, make_post

AGENTS = 50
OPS = 1000
FUND_SAT = 2000


async def test_a_thousand_concurrent_payments_keep_the_ledger_whole(database_url):
    cfg = build_config({"payments": {"max_amount_sat": 1_000_000}}, env={}).payments
    pool = await create_pool(database_url, 4, 20)
    rnd = random.Random(12)
    try:
        agents = [(await create_agent(pool, f"a{i:02d}"))[0] for i in range(AGENTS)]
        for agent in agents:
            await fund(pool, cfg, agent, FUND_SAT)
        posts = [await make_post(pool, agents[i]) for i in range(10)]
        comments = {p: [await make_comment(pool, agents[(i + k * 11) % AGENTS], p) for k in range(1, 4)]
                    for i, p in enumerate(posts)}  # never by the post's author, who posts the bounties
        post_author = {p: agents[i] for i, p in enumerate(posts)}
        later = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)).isoformat()
        bounties = []
        for p in posts:
            for _ in range(4):
                made = await bounties_service.create_bounty(pool, cfg, post_author[p], p,
                                                            {"amount_sat": rnd.randint(10, 60), "expires_at": later})
                bounties.append((uuid.UUID(str(made["bounty"]["id"])), p))
        invoices = []
        for _ in range(300):
            payee = rnd.choice(agents)
            made = await wallet_service.create_agent_invoice(pool, cfg, NoBackend(), payee.name,
                                                             {"amount_sat": rnd.randint(1, 150)})
            invoices.append((payee, made["invoice"]["payment_hash"]))

        async def pay(payer, payment_hash):
            async with pool.acquire() as conn:
                inv = await payments_store.get_invoice_by_hash(conn, payment_hash)
            return await payments_service.pay_internal(pool, cfg, payer, inv)

        ops = []
        for i in range(OPS):
            kind = i % 10
            if kind < 4:  # 400 invoice payments: each of the 300 invoices once, 100 of them a second time
                payee, h = invoices[i // 10 * 4 % 300 + kind] if i < 750 else invoices[rnd.randrange(300)]
                payer = rnd.choice([a for a in agents if a.id != payee.id])
                ops.append(("pay", pay(payer, h)))
            elif kind < 9:  # 500 tips on posts and comments
                post = rnd.choice(posts)
                tipper = rnd.choice([a for a in agents if a.id != post_author[post].id])
                ops.append(("tip", tips_service.tip(pool, cfg, tipper, "post", post, {"amount_sat": rnd.randint(1, 400)})))
            else:  # 100 awards over 40 bounties: most bounties get two or three concurrent awards, one wins
                bounty_id, post = bounties[rnd.randrange(len(bounties))]
                choice = rnd.choice(comments[post])
                ops.append(("award", bounties_service.award(pool, cfg, post_author[post], bounty_id,
                                                            {"comment_id": str(choice)})))
        rnd.shuffle(ops)
        results = await asyncio.gather(*[op for _, op in ops], return_exceptions=True)

        outcome: Counter[tuple[str, str]] = Counter()
        for (kind, _), result in zip(ops, results):
            if isinstance(result, ReefError):
                outcome[(kind, str(result.status))] += 1
            elif isinstance(result, BaseException):
                raise result
            else:
                outcome[(kind, "ok")] += 1
        assert sum(outcome.values()) == OPS
        # Something of every kind went through, and something of every kind was refused.
        assert outcome[("pay", "ok")] > 100 and outcome[("tip", "ok")] > 100 and outcome[("award", "ok")] > 10
        assert outcome[("pay", "409")] > 0 and outcome[("award", "409")] > 0 and outcome[("tip", "402")] > 0
        assert set(status for _, status in outcome) <= {"ok", "402", "409"}, outcome

        await assert_ledger_sound(pool)  # zero-sum per transaction and overall, no negative, rows == entries
        async with pool.acquire() as conn:
            paid = await conn.fetchval("SELECT count(*) FROM payment_invoices WHERE state = 'paid' AND purpose = 'invoice'")
            paid_tx = await conn.fetchval("SELECT count(*) FROM ledger_transactions WHERE kind = 'invoice'")
            tips = await conn.fetchval("SELECT count(*) FROM ledger_transactions WHERE kind = 'tip'")
            awarded = await conn.fetchval("SELECT count(*) FROM bounties WHERE status = 'awarded'")
            award_rows = await conn.fetchval("SELECT count(*) FROM bounty_awards")
            held = await conn.fetchval(
                "SELECT sum(balance_msat)::bigint FROM ledger_balances WHERE kind IN ('wallet', 'escrow', 'fees')")
            clearing = await ledger_store.balance_of(conn, ledger_store.CLEARING_ACCOUNT)
            negative = await conn.fetchval("SELECT count(*) FROM ledger_accounts WHERE balance_msat < 0")
            fee_total = await ledger_store.balance_of(conn, ledger_store.FEES_ACCOUNT)
            fee_sum = await conn.fetchval(
                "SELECT coalesce(sum((data->>'fee_msat')::bigint), 0) FROM ledger_transactions WHERE data ? 'fee_msat'")
        assert paid == paid_tx == outcome[("pay", "ok")]  # no invoice paid twice
        assert tips == outcome[("tip", "ok")]
        assert awarded == award_rows == outcome[("award", "ok")]  # no bounty awarded twice
        assert held == AGENTS * FUND_SAT * 1000 == -clearing  # nothing created or lost
        assert negative == 0 and fee_total == fee_sum > 0
    finally:
        await pool.close()
