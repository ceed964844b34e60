"""The operator's CLI: `reef agents ...`, `reef keys ...`, `reef --help`, and config errors (exit 2, no traceback)."""
from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from node.cli import main
from node.platform.db import create_pool
from tests.factories import create_agent

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def config_file(tmp_path: Path, database_url: str) -> Path:
    path = tmp_path / "reef.toml"
    path.write_text(f'[database]\nurl = "{database_url}"\n\n[log]\nlevel = "warning"\nformat = "json"\n')
    return path


def db(database_url: str, fn) -> Any:
    """Run fn(pool) against the test database from a synchronous test (the CLI runs its own event loop)."""

    async def go() -> Any:
        pool = await create_pool(database_url, 1, 2)
        try:
            return await fn(pool)
        finally:
            await pool.close()

    return asyncio.run(go())


def make_agent(database_url: str, name: str, **kw: Any) -> tuple[Any, str]:
    return db(database_url, lambda pool: create_agent(pool, name, **kw))


def fetch(database_url: str, sql: str, *args: Any) -> list[dict]:
    async def q(pool):
        return [dict(r) for r in await pool.fetch(sql, *args)]

    return db(database_url, q)


def reef(config_file: Path, *argv: str) -> int:
    return main(["--config", str(config_file), *argv])


# --- agents --------------------------------------------------------------------------------------

def test_agents_list(config_file, database_url, capsys):
    make_agent(database_url, "older_bot", age_hours=10)
    make_agent(database_url, "newer_bot", age_hours=1)
    assert reef(config_file, "agents", "list") == 0
    out = capsys.readouterr().out
    assert "NAME" in out and out.index("newer_bot") < out.index("older_bot")
    assert reef(config_file, "agents", "list", "--limit", "1") == 0
    out = capsys.readouterr().out
    assert "newer_bot" in out and "older_bot" not in out


def test_agents_list_bad_limit(config_file, capsys):
    assert reef(config_file, "agents", "list", "--limit", "0") == 2
    assert "--limit" in capsys.readouterr().err


def test_agents_list_empty(config_file, capsys):
    assert reef(config_file, "agents", "list") == 0
    assert "No agents" in capsys.readouterr().out


def test_agents_show(config_file, database_url, capsys):
    _, key = make_agent(database_url, "Showy")
    assert reef(config_file, "agents", "show", "showy") == 0
    out = capsys.readouterr().out
    assert "Showy" in out and "pending_claim" in out
    assert key[:14] in out and key not in out  # the prefix identifies the key; the key itself is never shown
    assert "active" in out


def test_unknown_agent_exits_1(config_file, capsys):
    for argv in (("agents", "show", "ghost"), ("agents", "suspend", "ghost"), ("keys", "rotate", "ghost"), ("keys", "revoke", "ghost")):
        assert reef(config_file, *argv) == 1
        captured = capsys.readouterr()
        assert "no local agent named 'ghost'" in captured.err
        assert captured.out == ""


def test_suspend_and_unsuspend(config_file, database_url, capsys):
    agent, _ = make_agent(database_url, "wobbly", claimed=True)
    assert reef(config_file, "agents", "suspend", "wobbly") == 0
    assert "claimed -> suspended" in capsys.readouterr().out
    assert fetch(database_url, "SELECT status FROM agents WHERE id = $1", agent.id) == [{"status": "suspended"}]
    assert reef(config_file, "agents", "suspend", "wobbly") == 0
    assert "already suspended" in capsys.readouterr().out
    assert reef(config_file, "agents", "unsuspend", "WOBBLY") == 0
    assert "suspended -> claimed" in capsys.readouterr().out
    assert fetch(database_url, "SELECT status FROM agents WHERE id = $1", agent.id) == [{"status": "claimed"}]
    audit = fetch(database_url, "SELECT actor, action, target FROM audit_log ORDER BY id")
    assert audit == [
        {"actor": "cli", "action": "agent.suspend", "target": "wobbly"},
        {"actor": "cli", "action": "agent.unsuspend", "target": "wobbly"},
    ]


def test_unsuspend_unclaimed_goes_back_to_pending(config_file, database_url):
    agent, _ = make_agent(database_url, "newbie")
    assert reef(config_file, "agents", "suspend", "newbie") == 0
    assert reef(config_file, "agents", "unsuspend", "newbie") == 0
    assert fetch(database_url, "SELECT status FROM agents WHERE id = $1", agent.id) == [{"status": "pending_claim"}]


# --- keys ----------------------------------------------------------------------------------------

def test_keys_rotate_prints_new_key_once(config_file, database_url, capsys):
    agent, old = make_agent(database_url, "keyed")
    assert reef(config_file, "keys", "rotate", "keyed") == 0
    out = capsys.readouterr().out
    new = [line for line in out.splitlines() if line.startswith("reef_sk_")]
    assert len(new) == 1 and new[0] != old and out.count(new[0]) == 1
    rows = fetch(database_url, "SELECT key_hash, revoked_at FROM api_keys WHERE agent_id = $1 ORDER BY created_at", agent.id)
    live = [bytes(r["key_hash"]) for r in rows if r["revoked_at"] is None]
    assert live == [hashlib.sha256(new[0].encode()).digest()]
    assert len(rows) == 2
    audit = fetch(database_url, "SELECT actor, action FROM audit_log")
    assert audit == [{"actor": "cli", "action": "key.rotate"}]


def test_keys_revoke(config_file, database_url, capsys):
    agent, _ = make_agent(database_url, "revoked_bot")
    assert reef(config_file, "keys", "revoke", "revoked_bot") == 0
    assert "Revoked 1 key" in capsys.readouterr().out
    rows = fetch(database_url, "SELECT count(*) AS n FROM api_keys WHERE agent_id = $1 AND revoked_at IS NULL", agent.id)
    assert rows == [{"n": 0}]
    assert fetch(database_url, "SELECT actor, action FROM audit_log") == [{"actor": "cli", "action": "key.revoke_all"}]


# --- help and config errors ----------------------------------------------------------------------

def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("run", "migrate", "check-config", "agents", "keys"):
        assert command in out


@pytest.mark.parametrize("sub, actions", [("agents", ("list", "show", "suspend", "unsuspend")), ("keys", ("rotate", "revoke"))])
def test_subcommand_help(capsys, sub, actions):
    with pytest.raises(SystemExit):
        main([sub, "--help"])
    out = capsys.readouterr().out
    for action in actions:
        assert action in out


@pytest.mark.parametrize(
    "text, words",
    [
        ('[server]\nprot = 8080\n', ["'prot'", "[server]", "Did you mean 'port'", "hint:"]),
        ('[server]\nport = "eighty"\n', ["[server] port", "integer", "hint:"]),
        ('[limits]\nregistrations_per_hour = true\n', ["registrations_per_hour", "hint:"]),
        ('[server\nport = 1\n', ["not valid TOML", "hint:"]),
        ('[databse]\nurl = ""\n', ["[databse]", "Did you mean 'database'", "hint:"]),
    ],
)
def test_bad_config_exits_2(tmp_path, capsys, text, words):
    path = tmp_path / "reef.toml"
    path.write_text(text)
    assert main(["--config", str(path), "agents", "list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("reef: configuration error:")
    for word in words:
        assert word in err, err
    assert "Traceback" not in err


def test_unreadable_config_exits_2(tmp_path, capsys):
    assert main(["--config", str(tmp_path), "check-config"]) == 2  # a directory cannot be read as a file
    err = capsys.readouterr().err
    assert "Cannot read config file" in err and "hint:" in err
    assert main(["--config", str(tmp_path / "missing.toml"), "check-config"]) == 2
    assert "not found" in capsys.readouterr().err


def test_bad_config_in_a_real_process_has_no_traceback(tmp_path):
    path = tmp_path / "reef.toml"
    path.write_text('[limits]\nmax_body_bytes = "big"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("REEF_")}
    proc = subprocess.run(
        [sys.executable, "-m", "node", "--config", str(path), "keys", "rotate", "someone"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=60,
    )
    assert proc.returncode == 2
    assert "max_body_bytes" in proc.stderr and "hint:" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
