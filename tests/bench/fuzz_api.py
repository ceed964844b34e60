"""A long fuzzing run of the Agent API, on demand (tests/test_fuzz_api.py is the short one in the suite).

    REEF_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python tests/bench/fuzz_api.py --examples 200 [--seed 18] [--only /posts] [--verbose]

Starts a node on a loopback port with a fresh database (created from the server's DSN, migrated, dropped at the
end), seeds one of each resource, and runs schemathesis over every operation of its /api/v1/openapi.json with
the checks of tests/fuzzing.py: `--examples` positive and as many negative cases per operation. Prints each
operation's case count, then the cases, failures and time, and every distinct failure with a curl line to
reproduce it. Exits 1 when anything failed. The node does not federate, so no case leaves the machine.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from node.app import create_app  # noqa: E402
from node.platform import config as config_mod  # noqa: E402
from node.platform.appkeys import POOL  # noqa: E402
from node.platform.config import build_config  # noqa: E402
from node.platform.migrations import apply_migrations  # noqa: E402
from tests.conftest import _with_db  # noqa: E402
from tests.factories import create_agent  # noqa: E402
from tests.fuzzing import FUZZ_SECTIONS, SEED, run_fuzz, seed_node, threadsafe  # noqa: E402


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database", default=os.environ.get("REEF_TEST_DATABASE_URL", ""),
                    help="a PostgreSQL server DSN where a database may be created")
    ap.add_argument("--examples", type=int, default=200, help="cases per operation and mode (positive, negative)")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--only", default="", help="only operations whose 'METHOD /path' contains this")
    ap.add_argument("--verbose", action="store_true", help="print each operation's case count as it finishes")
    args = ap.parse_args()
    if not args.database:
        ap.error("give --database or set REEF_TEST_DATABASE_URL")

    name = f"reef_fuzz_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(args.database)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = _with_db(args.database, name)
    runner = None
    try:
        conn = await asyncpg.connect(url)
        await apply_migrations(conn)
        await conn.close()
        data_dir = tempfile.mkdtemp(prefix="reef-fuzz-")
        base = build_config({"node": {"data_dir": data_dir, "domain": "127.0.0.1:8080"}, "database": {"url": url},
                             "log": {"format": "json", "level": "warning"}}, env={})
        app = create_app(config_mod.replace(base, **FUZZ_SECTIONS))
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        base_url = f"http://127.0.0.1:{port}"
        pool = app[POOL]

        async with aiohttp.ClientSession() as http:
            async def post(path, body, headers):
                async with http.post(base_url + path, json=body, headers=headers) as resp:
                    assert resp.status in (200, 201), (path, await resp.text())
                    return await resp.json()

            fixtures = await seed_node(pool, post)

        async def new_key() -> str:
            return (await create_agent(pool))[1]

        loop = asyncio.get_running_loop()
        report = await loop.run_in_executor(None, lambda: run_fuzz(
            base_url, fixtures, threadsafe(loop, new_key), examples=args.examples, seed=args.seed,
            only=lambda label: args.only in label, progress=print if args.verbose else None,
        ))
        print(report.summary())
        return 1 if report.failures else 0
    finally:
        if runner is not None:
            await runner.cleanup()
        admin = await asyncpg.connect(args.database)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
