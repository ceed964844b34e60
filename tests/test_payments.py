"""Payments over HTTP with real PostgreSQL: the fee rule, internal invoices paid at once (99/1, exact), the wallet
and its history, tips, Idempotency-Key, bad input that moves nothing, and backend "none"."""
from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from node.platform.appkeys import CONFIG, POOL
from node.services import wallet as wallet_service
from node.services.ledger import split_among, split_fee
from tests.factories import auth, create_agent
from tests.payments_support import (
    ScriptedBackend, assert_ledger_sound, balance, fees, foreign_invoice, fund, ledger_count, make_comment, make_post,
)


async def call(client, method: str, url: str, status: int = 200, **kw: Any) -> dict[str, Any]:
    resp = await client.request(method, url, **kw)
    body = await resp.json()
    assert resp.status == status, body
    return body


@pytest.fixture
async def node(aiohttp_client, make_config):
    from node.app import create_app

    return await aiohttp_client(create_app(make_config(payments={"payments_per_minute": 0})))


def test_split_fee_rounds_the_fee_down_and_the_parts_add_up():
    assert split_fee(1000, 1.0) == (990, 10)
    assert split_fee(999, 1.0) == (990, 9)
    assert split_fee(1_234_567, 1.0) == (1_222_222, 12_345)
    assert split_fee(99, 1.0) == (99, 0)
    assert split_fee(1001, 2.5) == (976, 25)
    assert split_fee(10, 0.1) == (10, 0)  # 0.1 is read as its decimal text, not 0.1000000000000000055...
    assert split_fee(1000, 0.0) == (1000, 0)
    for amount in (1, 7, 101, 12345, 10**12 + 1):
        payee, fee = split_fee(amount, 1.0)
        assert payee + fee == amount and fee == amount // 100
    assert split_among(10, 3) == [4, 3, 3] and sum(split_among(10**9 + 7, 7)) == 10**9 + 7


async def test_internal_invoice_is_paid_at_once_with_an_exact_99_1_split(node):
    pool, cfg = node.server.app[POOL], node.server.app[CONFIG].payments
    payer, payer_key = await create_agent(pool, "payer")
    _, payee_key = await create_agent(pool, "payee")
    await fund(pool, cfg, payer, 10_000)

    made = await call(node, "POST", "/api/v1/agents/payee/invoice", 201, json={"amount_sat": 1001, "memo": "thanks"},
                      headers=auth(payer_key))
    invoice = made["invoice"]
    assert invoice["internal"] is True and invoice["bolt11"].startswith("lnbc") and invoice["payee"] == "payee"
    assert invoice["amount_msat"] == 1_001_000 and invoice["state"] == "pending"

    paid = await call(node, "POST", "/api/v1/payments/pay", json={"bolt11": invoice["bolt11"]}, headers=auth(payer_key))
    assert paid["payment"]["kind"] == "internal" and paid["payment"]["state"] == "succeeded"
    assert (paid["payment"]["payee_msat"], paid["payment"]["fee_msat"]) == (990_990, 10_010)
    assert paid["balance_msat"] == 10_000_000 - 1_001_000
    payee_wallet = await call(node, "GET", "/api/v1/wallet", headers=auth(payee_key))
    assert payee_wallet["wallet"]["balance_msat"] == 990_990 and payee_wallet["wallet"]["balance_sat"] == 990
    assert await fees(pool) == 10_010

    before = await ledger_count(pool)
    again = await call(node, "POST", "/api/v1/payments/pay", 409, json={"bolt11": invoice["bolt11"]}, headers=auth(payer_key))
    assert "already paid" in again["error"] and again["hint"]
    assert await ledger_count(pool) == before and await balance(pool, payer) == 8_999_000

    notes = await call(node, "GET", "/api/v1/notifications", headers=auth(payee_key))
    payment_notes = [n for n in notes["notifications"] if n["type"] == "payment"]
    assert len(payment_notes) == 1 and "990.99 sat" in payment_notes[0]["content"] and payment_notes[0]["from"] == "payer"
    frames = await pool.fetch("SELECT type, payload FROM stream_events WHERE type = 'payment'")
    assert [f["payload"]["amount_msat"] for f in frames if f["payload"]["payment_type"] == "invoice"] == [990_990]
    await assert_ledger_sound(pool)


async def test_an_invoice_paid_from_outside_in_odd_msat_splits_exactly(node):
    pool, cfg = node.server.app[POOL], node.server.app[CONFIG].payments
    payee, _ = await create_agent(pool, "payee")
    backend = ScriptedBackend()
    made = await wallet_service.create_agent_invoice(pool, cfg, backend, "payee", {"amount_sat": 1235})
    inv = made["invoice"]
    assert inv["internal"] is False
    backend.paid[inv["payment_hash"]] = 1_234_567  # what Lightning delivered
    assert await wallet_service.check_pending_invoices(pool, cfg, backend) == 1
    assert await wallet_service.check_pending_invoices(pool, cfg, backend) == 0  # the watcher again: nothing more
    assert await balance(pool, payee) == 1_222_222 and await fees(pool) == 12_345
    await assert_ledger_sound(pool)


async def test_deposit_watcher_credits_once_even_with_two_node_instances(node, aiohttp_client, make_config):
    pool, cfg = node.server.app[POOL], node.server.app[CONFIG].payments
    agent, key = await create_agent(pool, "saver")
    backend = ScriptedBackend()
    made = await wallet_service.create_deposit(pool, cfg, backend, agent, {"amount_sat": 5000, "memo": "savings"})
    hash_ = made["deposit"]["payment_hash"]
    wallet = await call(node, "GET", "/api/v1/wallet", headers=auth(key))
    assert wallet["wallet"]["balance_msat"] == 0 and wallet["wallet"]["pending"]["deposits_sat"] == 5000

    assert await wallet_service.check_pending_invoices(pool, cfg, backend) == 0  # not paid yet
    backend.paid[hash_] = 5_000_000
    from node.app import create_app

    other = await aiohttp_client(create_app(make_config()))  # a second process on the same database
    results = await asyncio.gather(
        wallet_service.check_pending_invoices(pool, cfg, backend),
        wallet_service.check_pending_invoices(other.server.app[POOL], cfg, backend),
        wallet_service.credit_paid_invoice(pool, cfg, hash_, 5_000_000),
    )
    assert sum(int(r) for r in results) == 1
    wallet = await call(node, "GET", "/api/v1/wallet", headers=auth(key))
    assert wallet["wallet"]["balance_msat"] == 5_000_000 and wallet["wallet"]["pending"]["deposits_msat"] == 0
    assert await fees(pool) == 0  # deposits pay no fee
    assert await pool.fetchval("SELECT count(*) FROM ledger_transactions WHERE kind = 'deposit'") == 1
    await assert_ledger_sound(pool)


async def test_wallet_transactions_page_with_a_cursor(node):
    pool, cfg = node.server.app[POOL], node.server.app[CONFIG].payments
    author, _ = await create_agent(pool, "author")
    fan, fan_key = await create_agent(pool, "fan")
    await fund(pool, cfg, fan, 1000)
    post_id = await make_post(pool, author)
    for sat in (1, 2, 3, 4):
        await call(node, "POST", f"/api/v1/posts/{post_id}/tip", json={"amount_sat": sat}, headers=auth(fan_key))

    seen, cursor = [], None
    while True:
        page = await call(node, "GET", "/api/v1/wallet/transactions?limit=2" + (f"&cursor={cursor}" if cursor else ""),
                          headers=auth(fan_key))
        seen += page["transactions"]
        cursor = page["next_cursor"]
        assert page["has_more"] == (cursor is not None)
        if not cursor:
            break
    assert [t["kind"] for t in seen] == ["tip", "tip", "tip", "tip", "deposit"]
    assert [t["amount_msat"] for t in seen] == [-4000, -3000, -2000, -1000, 1_000_000]
    assert len({t["id"] for t in seen}) == 5 and seen[0]["direction"] == "out"
    await call(node, "GET", "/api/v1/wallet/transactions?cursor=nonsense", 400, headers=auth(fan_key))


async def test_tips_on_posts_and_comments_go_to_the_author_less_the_fee(node):
    pool, cfg = node.server.app[POOL], node.server.app[CONFIG].payments
    author, author_key = await create_agent(pool, "author")
    helper, _ = await create_agent(pool, "helper")
    commenter, _ = await create_agent(pool, "commenter")
    fan, fan_key = await create_agent(pool, "fan")
    await fund(pool, cfg, fan, 1000)
    post_id = await make_post(pool, author, collaborators=["helper"])
    comment_id = await make_comment(pool, commenter, post_id)

    tip = await call(node, "POST", f"/api/v1/posts/{post_id}/tip", json={"amount_sat": 333}, headers=auth(fan_key))
    assert tip["tip"]["fee_msat"] == 3330 and tip["tip"]["recipients"] == [{"name": "author", "amount_msat": 329_670}]
    assert await balance(pool, author) == 329_670
    assert await balance(pool, helper) == 0  # a named collaborator who has not confirmed gets nothing
    await call(node, "POST", f"/api/v1/comments/{comment_id}/tip", json={"amount_sat": 100}, headers=auth(fan_key))
    assert await balance(pool, commenter) == 99_000 and await fees(pool) == 3330 + 1000
    assert await balance(pool, fan) == 1_000_000 - 433_000

    before = await ledger_count(pool)
    await call(node, "POST", f"/api/v1/posts/{post_id}/tip", 422, json={"amount_sat": 1}, headers=auth(author_key))
    await call(node, "POST", f"/api/v1/posts/{uuid.uuid4()}/tip", 404, json={"amount_sat": 1}, headers=auth(fan_key))
    await call(node, "POST", f"/api/v1/comments/{uuid.uuid4()}/tip", 404, json={"amount_sat": 1}, headers=auth(fan_key))
    poor = await call(node, "POST", f"/api/v1/posts/{post_id}/tip", 402, json={"amount_sat": 600}, headers=auth(fan_key))
    assert poor["balance_msat"] == 567_000 and poor["needed_msat"] == 600_000 and poor["hint"]
    assert await ledger_count(pool) == before

    # Once the collaborator confirmed, a tip on the post is shared: 99 % in equal parts, the odd msat to the author.
    _, helper_key = await create_agent(pool, "helper2")
    shared = await make_post(pool, author, collaborators=["helper2"])
    await call(node, "POST", f"/api/v1/posts/{shared}/collaboration/confirm", headers=auth(helper_key))
    split = await call(node, "POST", f"/api/v1/posts/{shared}/tip", json={"amount_sat": 101}, headers=auth(fan_key))
    assert split["tip"]["fee_msat"] == 1010
    assert split["tip"]["recipients"] == [{"name": "author", "amount_msat": 49_995}, {"name": "helper2", "amount_msat": 49_995}]
    split = await call(node, "POST", f"/api/v1/posts/{shared}/tip", json={"amount_sat": 3}, headers=auth(fan_key))
    assert [r["amount_msat"] for r in split["tip"]["recipients"]] == [1485, 1485]  # 2970 in two
    await call(node, "POST", f"/api/v1/posts/{shared}/tip", 422, json={"amount_sat": 1}, headers=auth(helper_key))
    await assert_ledger_sound(pool)


async def test_idempotency_key_replays_the_first_answer_and_moves_nothing(node):
    pool, cfg = node.server.app[POOL], node.server.app[CONFIG].payments
    author, _ = await create_agent(pool, "author")
    fan, fan_key = await create_agent(pool, "fan")
    await fund(pool, cfg, fan, 1000)
    post_id = await make_post(pool, author)
    url = f"/api/v1/posts/{post_id}/tip"
    headers = {**auth(fan_key), "Idempotency-Key": "tip-1"}

    first = await node.post(url, json={"amount_sat": 10}, headers=headers)
    again = await node.post(url, json={"amount_sat": 10}, headers=headers)
    assert first.status == again.status == 200
    assert await first.json() == await again.json()
    assert again.headers["Idempotent-Replayed"] == "true" and first.headers["Idempotent-Replayed"] == "false"
    assert await balance(pool, author) == 9900

    other = await call(node, "POST", url, 422, json={"amount_sat": 11}, headers=headers)
    assert "different request" in other["error"] and other["hint"]

    # A refused request is remembered too: the repeat gets the same 402, even once the wallet could pay.
    poor_headers = {**auth(fan_key), "Idempotency-Key": "tip-2"}
    poor = await node.post(url, json={"amount_sat": 5000}, headers=poor_headers)
    assert poor.status == 402
    await fund(pool, cfg, fan, 5000)
    replay = await node.post(url, json={"amount_sat": 5000}, headers=poor_headers)
    assert replay.status == 402 and await replay.json() == await poor.json()

    # Concurrent repeats: exactly one runs, every one gets its answer.
    tips_before = await pool.fetchval("SELECT count(*) FROM ledger_transactions WHERE kind = 'tip'")
    race = {**auth(fan_key), "Idempotency-Key": "tip-race"}
    answers = await asyncio.gather(*[node.post(url, json={"amount_sat": 7}, headers=race) for _ in range(10)])
    bodies = [await a.json() for a in answers]
    assert {a.status for a in answers} == {200} and all(b == bodies[0] for b in bodies)
    assert await pool.fetchval("SELECT count(*) FROM ledger_transactions WHERE kind = 'tip'") == tips_before + 1
    await call(node, "POST", url, 400, json={"amount_sat": 1}, headers={**auth(fan_key), "Idempotency-Key": " "})
    await assert_ledger_sound(pool)


async def test_bad_input_gets_a_4xx_with_a_hint_and_moves_nothing(node):
    pool, cfg = node.server.app[POOL], node.server.app[CONFIG].payments
    payer, key = await create_agent(pool, "payer")
    await create_agent(pool, "payee")
    await fund(pool, cfg, payer, 100)
    mine = (await call(node, "POST", "/api/v1/agents/payer/invoice", 201, json={"amount_sat": 5}, headers=auth(key)))
    big = (await call(node, "POST", "/api/v1/agents/payee/invoice", 201, json={"amount_sat": 500}, headers=auth(key)))
    before, wallet_before = await ledger_count(pool), await balance(pool, payer)

    cases = [
        ("/api/v1/payments/pay", {"bolt11": "lnbc1notaninvoice"}, 422, "could not be decoded"),
        ("/api/v1/payments/pay", {"bolt11": "   "}, 400, "bolt11"),
        ("/api/v1/payments/pay", {"bolt11": "x" * 5000}, 422, "bolt11"),
        ("/api/v1/payments/pay", {}, 400, "bolt11"),
        ("/api/v1/payments/pay", {"bolt11": foreign_invoice(10_000, age=7200, expiry=60)}, 422, "expired"),
        ("/api/v1/payments/pay", {"bolt11": foreign_invoice(10_000, network="regtest")}, 422, "another network"),
        ("/api/v1/payments/pay", {"bolt11": foreign_invoice(None)}, 422, "no amount"),
        ("/api/v1/payments/pay", {"bolt11": foreign_invoice(2_000_000_000)}, 422, "maximum"),
        ("/api/v1/payments/pay", {"bolt11": mine["invoice"]["bolt11"]}, 422, "pay yourself"),
        ("/api/v1/payments/pay", {"bolt11": big["invoice"]["bolt11"]}, 402, "holds"),
        ("/api/v1/payments/pay", {"to": "not an address", "amount_sat": 5}, 422, "Lightning Address"),
        ("/api/v1/payments/pay", {"to": "someone@10.1.2.3", "amount_sat": 5}, 502, "not a public address"),
        ("/api/v1/agents/payee/invoice", {"amount_sat": 0}, 422, "positive"),
        ("/api/v1/agents/payee/invoice", {"amount_sat": -5}, 422, "positive"),
        ("/api/v1/agents/payee/invoice", {"amount_sat": 1.5}, 422, "whole number"),
        ("/api/v1/agents/payee/invoice", {"amount_sat": "10"}, 422, "whole number"),
        ("/api/v1/agents/payee/invoice", {"amount_sat": True}, 422, "whole number"),
        ("/api/v1/agents/payee/invoice", {"amount_sat": 1_000_001}, 422, "maximum"),
        ("/api/v1/agents/payee/invoice", {}, 422, "amount_sat"),
        ("/api/v1/agents/nobody/invoice", {"amount_sat": 5}, 404, "No agent"),
    ]
    for url, body, status, words in cases:
        answer = await call(node, "POST", url, status, json=body, headers=auth(key))
        assert words in answer["error"] or words in answer["hint"], (body, answer)
        assert answer["hint"], answer
    assert await ledger_count(pool) == before and await balance(pool, payer) == wallet_before
    await assert_ledger_sound(pool)


async def test_without_a_backend_deposits_and_withdrawals_answer_503_with_a_hint(node):
    pool = node.server.app[POOL]
    _, key = await create_agent(pool, "agent")
    for url, body in (("/api/v1/wallet/deposit", {"amount_sat": 10}),
                      ("/api/v1/wallet/withdraw", {"bolt11": foreign_invoice(10_000)})):
        answer = await call(node, "POST", url, 503, json=body, headers={**auth(key), "Idempotency-Key": url})
        assert "no Lightning backend" in answer["error"] and "[payments] backend" in answer["hint"]
    # The 503 did not use up the keys: the same requests may be retried once the admin set a backend.
    assert await pool.fetchval("SELECT count(*) FROM idempotency_keys") == 0
    answer = await call(node, "POST", "/api/v1/payments/pay", 503, json={"bolt11": foreign_invoice(10_000)},
                        headers=auth(key))
    assert "no Lightning backend" in answer["error"]
    assert await ledger_count(pool) == 0


async def test_payment_rate_limit(aiohttp_client, make_config):
    from node.app import create_app

    client = await aiohttp_client(create_app(make_config(payments={"payments_per_minute": 2})))
    pool, cfg = client.server.app[POOL], client.server.app[CONFIG].payments
    author, _ = await create_agent(pool, "author")
    fan, key = await create_agent(pool, "fan")
    await fund(pool, cfg, fan, 100)
    post_id = await make_post(pool, author)
    for _ in range(2):
        await call(client, "POST", f"/api/v1/posts/{post_id}/tip", json={"amount_sat": 1}, headers=auth(key))
    limited = await call(client, "POST", f"/api/v1/posts/{post_id}/tip", 429, json={"amount_sat": 1}, headers=auth(key))
    assert "payments per minute" in limited["error"]
    assert await balance(pool, author) == 2 * 990


async def test_openapi_and_skill_md_describe_the_payment_routes_and_the_fee_rule(node):
    spec = await call(node, "GET", "/api/v1/openapi.json")
    pay = spec["paths"]["/api/v1/payments/pay"]["post"]
    assert any(p["name"] == "Idempotency-Key" for p in pay["parameters"])
    assert {"402", "409", "422", "503"} <= set(pay["responses"])
    assert "rounded DOWN" in pay["description"]
    assert "payment" in pay["responses"]["200"]["content"]["application/json"]["schema"]["properties"]
    skill = await (await node.get("/skill.md")).text()
    for words in ("/wallet/deposit", "/payments/pay", "Idempotency-Key", "rounded down", "/bounties/{id}/award"):
        assert words in skill, words


def test_payments_config_env_overrides_backend_choice_and_hides_the_admin_key():
    from node.adapters.lightning.factory import make_backend
    from node.platform.config import build_config
    from node.platform.config_types import ConfigError

    cfg = build_config({}, env={"REEF_PAYMENTS__BACKEND": "lnbits", "REEF_PAYMENTS__LNBITS_URL": "http://127.0.0.1:5000",
                                "REEF_PAYMENTS__LNBITS_ADMIN_KEY": "s3cr3t-admin-key", "REEF_PAYMENTS__FEE_PERCENT": "2"})
    assert cfg.payments.backend == "lnbits" and cfg.payments.fee_percent == 2.0
    assert "s3cr3t-admin-key" not in repr(cfg.payments) and "s3cr3t-admin-key" not in repr(cfg)
    assert build_config({}, env={}).payments.backend == "none"
    for bad, words in (({"backend": "lnbits"}, "lnbits_url"), ({"backend": "bank"}, "backend"),
                       ({"network": "mainnet"}, "network"), ({"fee_percent": 100.0}, "fee_percent"),
                       ({"min_amount_sat": 5, "max_amount_sat": 4}, "max_amount_sat")):
        with pytest.raises(ConfigError) as err:
            build_config({"payments": bad}, env={})
        assert words in str(err.value)
    for bad in ({"backend": "cln"}, {"backend": "lnd", "lnd_rest_url": "https://127.0.0.1:8080"}):
        with pytest.raises(ConfigError):
            build_config({"payments": bad}, env={})
    import importlib.util

    cln = build_config({"payments": {"backend": "cln", "cln_rpc_path": "/nonexistent/lightning-rpc"}}, env={})
    if importlib.util.find_spec("node.adapters.lightning.cln") is None:  # this branch; main has ClnBackend
        with pytest.raises(ConfigError) as err:
            make_backend(cln.payments)
        assert "not available" in err.value.message and "lnbits" in err.value.hint
    else:
        assert make_backend(cln.payments).name == "cln"
    assert make_backend(build_config({}, env={}).payments).name == "none"


async def test_the_database_refuses_unbalanced_negative_or_edited_ledger_rows(node):
    import asyncpg

    pool, cfg = node.server.app[POOL], node.server.app[CONFIG].payments
    agent, _ = await create_agent(pool, "holder")
    await fund(pool, cfg, agent, 10)
    await wallet_service.create_agent_invoice(pool, cfg, ScriptedBackend(), "holder", {"amount_sat": 10})
    async with pool.acquire() as conn:
        wallet = await conn.fetchval("SELECT id FROM ledger_accounts WHERE agent_id = $1", agent.id)
        with pytest.raises(asyncpg.CheckViolationError, match="unbalanced"):
            async with conn.transaction():  # the deferred trigger fires at commit
                tx = await conn.fetchval("INSERT INTO ledger_transactions (kind) VALUES ('bad') RETURNING id")
                await conn.execute("INSERT INTO ledger_entries (transaction_id, account_id, amount_msat) "
                                   "VALUES ($1, $2, 5), ($1, 1, -4)", tx, wallet)
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE ledger_accounts SET balance_msat = -1 WHERE id = $1", wallet)
        with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
            await conn.execute("UPDATE ledger_entries SET amount_msat = amount_msat * 2")
        with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
            await conn.execute("DELETE FROM ledger_transactions")
        with pytest.raises(asyncpg.UniqueViolationError):  # a paid invoice cannot be credited a second time
            tx = await conn.fetchval("SELECT transaction_id FROM payment_invoices WHERE state = 'paid' LIMIT 1")
            await conn.execute("UPDATE payment_invoices SET state = 'paid', transaction_id = $1 WHERE state = 'pending'", tx)
    assert await balance(pool, agent) == 10_000
    await assert_ledger_sound(pool)


def test_check_config_does_not_print_the_lnbits_admin_key(monkeypatch, capsys, tmp_path):
    from node.cli import main

    monkeypatch.chdir(tmp_path)
    for name, value in {"REEF_PAYMENTS__BACKEND": "lnbits", "REEF_PAYMENTS__LNBITS_URL": "http://127.0.0.1:5000",
                        "REEF_PAYMENTS__LNBITS_ADMIN_KEY": "s3cr3t-admin-key"}.items():
        monkeypatch.setenv(name, value)
    assert main(["check-config"]) == 0
    out = capsys.readouterr().out
    assert "[payments]" in out and "backend = 'lnbits'" in out
    assert "s3cr3t-admin-key" not in out and "lnbits_admin_key = '<set>'" in out
