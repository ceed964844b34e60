"""`reef admin create EMAIL [--password-stdin]` and `reef admin list`: node admins of the web site."""
from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from typing import Any, Awaitable, Callable

from node.platform.config import Config
from node.platform.errors import ReefError

from . import auth

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _read_password(from_stdin: bool) -> str | None:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        print("reef: no terminal to ask for a password; pipe it in with --password-stdin", file=sys.stderr)
        return None
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Password (again): "):
        print("reef: the passwords differ", file=sys.stderr)
        return None
    return first


def run(cfg: Config, args: argparse.Namespace, with_pool: Callable[..., Awaitable[int]]) -> int:
    if args.admin_command == "list":
        async def show(pool: Any) -> int:
            admins = await auth.list_admins(pool)
            for a in admins:
                print(f"{a.email}  (since {a.created_at:%Y-%m-%d})")
            if not admins:
                print("No admins yet. Create one with: reef admin create EMAIL")
            return EXIT_OK

        return asyncio.run(with_pool(cfg, show))
    password = _read_password(args.password_stdin)
    if password is None:
        return EXIT_USAGE

    async def create(pool: Any) -> int:
        try:
            account, created = await auth.create_admin(pool, args.email, password)
        except ReefError as exc:
            print(f"reef: {exc.error} {exc.hint}", file=sys.stderr)
            return EXIT_FAILED
        if created:
            print(f"Created admin {account.email}. Log in at {cfg.base_url}/login")
        else:
            print(f"{account.email} is an admin now (password changed). Log in at {cfg.base_url}/login")
        return EXIT_OK

    return asyncio.run(with_pool(cfg, create))
