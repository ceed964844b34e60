"""Fuzzing the Agent API (issue 18): every operation of /api/v1/openapi.json, a fixed seed and a bounded number of
cases each, against a real node on a loopback port; no 5xx, and every answer as the document says."""
from __future__ import annotations

import asyncio
import os

from lnbits_support import NETWORK
from node.app import create_app
from node.platform.appkeys import POOL
from tests.factories import create_agent
from tests.fuzzing import FUZZ_SECTIONS, run_fuzz, seed_node, threadsafe

# Cases per operation and generation mode (positive, negative): bounded so the test stays under 3 minutes.
EXAMPLES = int(os.environ.get("REEF_FUZZ_EXAMPLES", "15"))


async def test_every_operation_survives_fuzzing_and_matches_its_schema(aiohttp_client, make_config, lnbits):
    # Payments run against a real LNbits (FakeWallet), so deposits and withdrawals reach a backend.
    wallet = lnbits.create_wallet("fuzz")
    payments = {"backend": "lnbits", "lnbits_url": lnbits.url, "lnbits_admin_key": wallet.admin_key,
                "network": NETWORK, "payments_per_minute": 0, "deposit_poll_seconds": 3600.0}
    client = await aiohttp_client(create_app(make_config(**FUZZ_SECTIONS, payments=payments)))
    pool = client.app[POOL]

    async def post(path, body, headers):
        resp = await client.post(path, json=body, headers=headers)
        assert resp.status in (200, 201), (path, await resp.text())
        return await resp.json()

    fixtures = await seed_node(pool, post)
    loop = asyncio.get_running_loop()

    async def new_key() -> str:
        return (await create_agent(pool))[1]

    base_url = str(client.make_url("")).rstrip("/")
    report = await loop.run_in_executor(
        None, lambda: run_fuzz(base_url, fixtures, threadsafe(loop, new_key), examples=EXAMPLES)
    )
    print(report.summary())
    documented = {(m.upper(), p) for p, ops in (await (await client.get("/api/v1/openapi.json")).json())["paths"].items()
                  for m in ops}
    assert set(report.cases_per_operation) == {f"{m} {p}" for m, p in documented}  # every operation was fuzzed
    assert report.cases >= report.operations * EXAMPLES
    assert report.failures == [], report.summary()
    # The run's key survived it: rotate-key and revoke-key ran with keys of their own.
    resp = await client.get("/api/v1/agents/me", headers={"Authorization": f"Bearer {fixtures.key}"})
    assert resp.status == 200, await resp.text()
