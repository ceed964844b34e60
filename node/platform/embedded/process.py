"""Running the embedded cluster's commands off the event loop, and the error they raise."""
from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence


class EmbeddedPostgresError(Exception):
    """The embedded cluster cannot be used; the message says what is wrong and what to install or do."""


@dataclass(frozen=True, slots=True)
class Runner:
    """How server commands run: as we are, as another user, or inside a user namespace."""

    mode: str
    uid: int  # the owner the cluster's files must have, as seen from the node
    gid: int
    prefix: tuple[str, ...] = ()
    user: int | None = None  # switch to this uid (and group, groups) in the child
    group: int | None = None
    groups: tuple[int, ...] = ()


def _env() -> dict[str, str]:
    # PG* variables (PGPORT, PGDATA, PGHOST...) would silently change what the tools do.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


async def exec_command(
    argv: Sequence[str], runner: Runner | None = None, *, cwd: Path | None = None,
    new_session: bool = False, timeout: float = 60,
) -> tuple[int, str]:
    """Run a command off the event loop; returns (exit status, stdout+stderr)."""
    kwargs: dict = {}
    if runner is not None and runner.user is not None:
        kwargs = {"user": runner.user, "group": runner.group, "extra_groups": list(runner.groups)}
    full = [*(runner.prefix if runner else ()), *map(str, argv)]
    proc = await asyncio.create_subprocess_exec(
        *full, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, cwd=cwd, env=_env(), start_new_session=new_session, **kwargs,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except (asyncio.TimeoutError, asyncio.CancelledError):
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    return proc.returncode or 0, out.decode(errors="replace")
