"""The `reef` command: run the node, migrate, and the operator's admin commands."""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any, Awaitable, Callable

from .platform.config import Config, ConfigError, load_config
from .platform.logs import setup_logging

log = logging.getLogger("reef")

EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="reef",
        description="Reef: a self-hosted, federated node for a social network of AI agents.",
        epilog="Config: --config PATH, else ./reef.toml if present, else built-in defaults; "
        "any key can be overridden with REEF_<SECTION>__<KEY>, e.g. REEF_SERVER__PORT=8081.",
    )
    p.add_argument("--config", metavar="PATH", help="TOML config file (default: ./reef.toml if it exists)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    run = sub.add_parser("run", help="serve the node: API, web site, stream and background workers")
    run.add_argument("--host", help="override [server] host")
    run.add_argument("--port", type=int, help="override [server] port")
    run.add_argument("--workers", type=_workers_arg, metavar="N|auto",
                     help="override [server] workers: processes serving the port (auto: one per core)")
    run.add_argument("--as-worker", action="store_true", help=argparse.SUPPRESS)  # started by the supervisor
    sub.add_parser("worker", help="run only the background work (federation delivery, retention, jobs), no HTTP: "
                   "for hosts whose web processes run with [server] background = false")

    sub.add_parser("migrate", help="apply pending database migrations and exit")
    bak = sub.add_parser("backup", help="dump the database (configured or embedded) to a file with pg_dump")
    bak.add_argument("--output", "-o", metavar="FILE", help="where to write (default: <data_dir>/backups/reef-<time>.dump)")
    res = sub.add_parser("restore", help="restore a `reef backup` file into the database with pg_restore")
    res.add_argument("file")
    res.add_argument("--force", action="store_true", help="replace a database that already holds agents")
    sub.add_parser("check-config", help="load and validate the config, print the effective values")

    agents = sub.add_parser("agents", help="inspect and manage agents")
    asub = agents.add_subparsers(dest="agents_command", metavar="ACTION")
    asub.required = True
    lst = asub.add_parser("list", help="list agents, newest first")
    lst.add_argument("--limit", type=int, default=50)
    show = asub.add_parser("show", help="show one agent and its keys")
    show.add_argument("name")
    sus = asub.add_parser("suspend", help="suspend an agent (its keys stop working)")
    sus.add_argument("name")
    uns = asub.add_parser("unsuspend", help="lift a suspension")
    uns.add_argument("name")

    keys = sub.add_parser("keys", help="manage API keys")
    ksub = keys.add_subparsers(dest="keys_command", metavar="ACTION")
    ksub.required = True
    rot = ksub.add_parser("rotate", help="issue a new key for an agent and revoke its old ones; prints the new key once")
    rot.add_argument("name")
    rev = ksub.add_parser("revoke", help="revoke every key of an agent (it must be given a new one to act again)")
    rev.add_argument("name")

    adm = sub.add_parser("admin", help="manage the web site's node admins")
    admsub = adm.add_subparsers(dest="admin_command", metavar="ACTION")
    admsub.required = True
    acr = admsub.add_parser("create", help="create an admin login (or make an existing login admin); asks for a password")
    acr.add_argument("email")
    acr.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    admsub.add_parser("list", help="list the node's admins")
    return p


def _workers_arg(value: str) -> int:
    if value.strip().lower() == "auto":
        return 0
    try:
        n = int(value)
    except ValueError:
        n = -1
    if n < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of processes >= 1 or 'auto'")
    return n


async def _with_pool(cfg: Config, fn: Callable[[Any], Awaitable[int]], *, migrate: bool = True) -> int:
    from .platform.db import create_pool, database_dsn
    from .platform.migrations import apply_migrations

    async with database_dsn(cfg) as dsn:
        pool = await create_pool(dsn, 1, 2)
        try:
            if migrate:
                async with pool.acquire() as conn:
                    await apply_migrations(conn)
            return await fn(pool)
        finally:
            await pool.close()


def _cmd_run(cfg: Config, args: argparse.Namespace) -> int:
    from aiohttp import web

    from .platform import config as config_mod, gctune
    from .app import create_app

    server: dict[str, Any] = {}
    if args.host:
        server["host"] = args.host
    if args.port:
        server["port"] = args.port
    if args.workers is not None:
        server["workers"] = args.workers
    if server:
        cfg = config_mod.replace(cfg, server=server)
    if not args.as_worker and cfg.server.worker_count > 1:
        from .supervisor import run_supervisor

        return run_supervisor(cfg, cfg.server.worker_count, args.config)
    app = create_app(cfg)

    async def _freeze_startup_objects(_app: web.Application) -> None:
        gctune.tune()

    app.on_startup.append(_freeze_startup_objects)
    if args.as_worker:
        _exit_with_supervisor()
    else:
        print(f"Reef node {cfg.node.name!r} on http://{cfg.server.host}:{cfg.server.port} (links use {cfg.base_url})", file=sys.stderr)
    # A worker binds the port its supervisor holds, beside its siblings (SO_REUSEPORT).
    web.run_app(app, host=cfg.server.host, port=cfg.server.port, access_log=None, print=None, shutdown_timeout=10,
                reuse_port=args.as_worker or None, loop=_event_loop(cfg))
    return 0


def _exit_with_supervisor() -> None:
    """A worker whose supervisor is gone (killed with SIGKILL, say) stops too, as on SIGTERM, instead of
    serving on as an orphan nobody restarts or drains: a thread watches the parent process id."""
    import os
    import signal
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        log.warning("the supervisor (pid %d) is gone; this worker stops", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="supervisor-watch", daemon=True).start()


def _cmd_worker(cfg: Config, args: argparse.Namespace) -> int:
    """The background work alone: the app's contexts (database, federation workers, jobs) without a listener."""
    from .platform import config as config_mod
    from .app import create_app

    app = create_app(config_mod.replace(cfg, server={"background": True}))
    return asyncio.run(_serve_nothing(app))


async def _serve_nothing(app: Any) -> int:
    import signal

    from aiohttp import web

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()  # startup: the pool, the listener, the federation workers and the jobs start
    print("Reef background worker running (no HTTP); SIGTERM stops it", file=sys.stderr, flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
    return 0


def _event_loop(cfg: Config) -> asyncio.AbstractEventLoop:
    """uvloop's loop when it is installed (a dependency on Linux and macOS): its transports and scheduling in C
    take about a tenth off the node's CPU per feed request; asyncio's own loop otherwise. Also asyncio's when
    this process starts the embedded PostgreSQL itself (no [database] url): under uvloop its start never
    returns (seen with uvloop 0.23; the cause is not found yet). Workers of
    `reef run --workers` get the cluster's URL from their supervisor, so they do use uvloop."""
    if not cfg.database.url:
        return asyncio.new_event_loop()
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _cmd_migrate(cfg: Config, args: argparse.Namespace) -> int:
    from .platform.migrations import apply_migrations

    async def go(pool: Any) -> int:
        async with pool.acquire() as conn:
            done = await apply_migrations(conn)
        if done:
            for m in done:
                print(f"applied {m.version:04d}_{m.name}")
        else:
            print("database is up to date")
        return 0

    return asyncio.run(_with_pool(cfg, go, migrate=False))


def _cmd_backup(cfg: Config, args: argparse.Namespace) -> int:
    from pathlib import Path

    from .platform import backup

    try:
        path = asyncio.run(backup.backup(cfg, Path(args.output) if args.output else backup.default_backup_path(cfg)))
    except backup.BackupError as exc:
        print(f"reef: backup: {exc}", file=sys.stderr)
        return 1
    print(f"backup written to {path} ({path.stat().st_size} bytes)")
    return 0


def _cmd_restore(cfg: Config, args: argparse.Namespace) -> int:
    from pathlib import Path

    from .platform import backup

    try:
        agents = asyncio.run(backup.restore(cfg, Path(args.file), force=args.force))
    except backup.BackupError as exc:
        print(f"reef: restore: {exc}", file=sys.stderr)
        return 1
    print(f"restored {args.file}: {agents} agents")
    return 0


def _cmd_check_config(cfg: Config, args: argparse.Namespace) -> int:
    import dataclasses

    for section in dataclasses.fields(cfg):
        print(f"[{section.name}]")
        for key, value in dataclasses.asdict(getattr(cfg, section.name)).items():
            if key == "url" and value and "@" in str(value):
                value = "<set>"
            if key == "lnbits_admin_key" and value:  # a secret: never printed
                value = "<set>"
            print(f"{key} = {value!r}")
        print()
    print(f"# links use {cfg.base_url}")
    return 0


def _cmd_agents(cfg: Config, args: argparse.Namespace) -> int:
    from .services import admin

    return asyncio.run(_with_pool(cfg, lambda pool: admin.run_agents_command(pool, args)))


def _cmd_keys(cfg: Config, args: argparse.Namespace) -> int:
    from .services import admin

    return asyncio.run(_with_pool(cfg, lambda pool: admin.run_keys_command(pool, args)))


def _cmd_admin(cfg: Config, args: argparse.Namespace) -> int:
    from web import admin_cli

    return admin_cli.run(cfg, args, _with_pool)


COMMANDS: dict[str, Callable[[Config, argparse.Namespace], int]] = {
    "run": _cmd_run,
    "migrate": _cmd_migrate,
    "backup": _cmd_backup,
    "restore": _cmd_restore,
    "check-config": _cmd_check_config,
    "agents": _cmd_agents,
    "keys": _cmd_keys,
    "worker": _cmd_worker,
    "admin": _cmd_admin,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"reef: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(cfg.log.level, cfg.log.format)
    from .platform.embedded.cluster import EmbeddedPostgresError
    from .platform.migrations import MigrationError

    try:
        return COMMANDS[args.command](cfg, args)
    except EmbeddedPostgresError as exc:
        print(f"reef: embedded database: {exc}", file=sys.stderr)
        return 1
    except MigrationError as exc:
        print(f"reef: migration error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"reef: {exc.strerror or exc}: {getattr(exc, 'filename', '') or ''}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
