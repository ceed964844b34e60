"""Config: TOML parsing, env overrides, bad configs, and config.example.toml kept complete."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from node.platform.config import Config, ConfigError, build_config, load_config

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_listen_on_localhost_8080_with_data_in_dot_data():
    cfg = build_config({}, env={})
    assert (cfg.server.host, cfg.server.port) == ("127.0.0.1", 8080)
    assert cfg.node.data_dir == "./data"
    assert cfg.database.url == "" and cfg.redis.url == ""
    assert cfg.limits.requests_per_minute == 100
    assert cfg.base_url == "http://127.0.0.1:8080"


def test_toml_values_and_domain_and_https():
    cfg = build_config({"node": {"domain": "reef.example", "https": True}, "server": {"port": 9000}}, env={})
    assert cfg.base_url == "https://reef.example"
    assert cfg.server.port == 9000


def test_env_overrides_file_and_is_typed():
    cfg = build_config(
        {"server": {"port": 9000}},
        env={"REEF_SERVER__PORT": "8081", "REEF_NODE__HTTPS": "true", "REEF_LIMITS__REQUESTS_PER_MINUTE": "7", "OTHER": "x"},
    )
    assert cfg.server.port == 8081
    assert cfg.node.https is True
    assert cfg.limits.requests_per_minute == 7


@pytest.mark.parametrize(
    ("data", "env", "needle"),
    [
        ({"server": {"prot": 1}}, {}, "Did you mean 'port'"),
        ({"servr": {}}, {}, "Did you mean 'server'"),
        ({"server": {"port": "eighty"}}, {}, "[server] port"),
        ({"server": {"port": True}}, {}, "[server] port"),
        ({"node": {"https": "yes"}}, {}, "[node] https"),
        ({"server": {"port": 70000}}, {}, "port"),
        ({"log": {"level": "loud"}}, {}, "debug, info"),
        ({"database": {"url": "mysql://x"}}, {}, "PostgreSQL URL"),
        ({"node": {"domain": "https://x.example/"}}, {}, "host[:port]"),
        ({}, {"REEF_SERVER__PORT": "abc"}, "REEF_SERVER__PORT"),
        ({}, {"REEF_SERVER__PROT": "1"}, "Did you mean 'port'"),
        ({}, {"REEF_NOPE__X": "1"}, "REEF_<SECTION>__<KEY>"),
        ({"federation": {"delivery_max_age_hours": 0}}, {}, "[federation] delivery_max_age_hours"),
        ({"federation": {"host_down_after_failures": -1}}, {}, "[federation] host_down_after_failures"),
        ({"federation": {"delivery_backoff_seconds": 600, "delivery_backoff_max_seconds": 60}}, {},
         "delivery_backoff_max_seconds"),
    ],
)
def test_bad_config_names_the_key_and_gives_a_hint(data, env, needle):
    with pytest.raises(ConfigError) as info:
        build_config(data, env=env)
    text = str(info.value)
    assert needle in text
    assert info.value.hint


def test_load_config_errors_for_missing_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\nport = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad, env={})
    with pytest.raises(ConfigError, match="Cannot read"):
        load_config(tmp_path, env={})


def test_reef_toml_in_cwd_is_read_by_default(tmp_path, monkeypatch):
    (tmp_path / "reef.toml").write_text("[server]\nport = 8123\n")
    monkeypatch.chdir(tmp_path)
    assert load_config(env={}).server.port == 8123


def test_example_config_documents_every_key_with_a_comment_and_loads():
    text = (ROOT / "config.example.toml").read_text()
    data = tomllib.loads(text)
    cfg = build_config(data, env={})
    assert cfg == build_config({}, env={}), "example values must be the defaults"
    lines = text.splitlines()
    for section in dataclasses.fields(Config):
        documented = data.get(section.name, {})
        for key in (f.name for f in dataclasses.fields(getattr(cfg, section.name))):
            assert key in documented, f"[{section.name}] {key} missing from config.example.toml"
            idx = next(i for i, line in enumerate(lines) if line.startswith(f"{key} ="))
            assert lines[idx - 1].startswith("#"), f"[{section.name}] {key} needs a one-line comment above it"


def test_bad_config_exits_2_without_traceback(tmp_path):
    cfg = tmp_path / "reef.toml"
    cfg.write_text("[server]\nport = \"x\"\n")
    proc = subprocess.run(
        [sys.executable, "-m", "node", "--config", str(cfg), "check-config"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert "[server] port" in proc.stderr and "hint:" in proc.stderr
    assert "Traceback" not in proc.stderr


async def test_federation_retry_settings_reach_the_delivery_worker(aiohttp_server, aiohttp_client, make_config):
    from ap_peer import start_node
    from federation.delivery import DeliverySettings

    node = await start_node(aiohttp_server, aiohttp_client, make_config, federation={
        "delivery_backoff_seconds": 5, "delivery_backoff_max_seconds": 120, "delivery_max_age_hours": 2,
        "host_down_after_failures": 3, "host_probe_interval_seconds": 60,
    })
    s = node.workers.delivery.settings
    assert (s.retry_base_seconds, s.retry_cap_seconds, s.give_up_after_seconds) == (5, 120, 7200)
    assert (s.down_after_failures, s.probe_interval_seconds) == (3, 60)
    assert DeliverySettings.from_config(build_config({}, env={})) == DeliverySettings()  # the defaults agree
    # Tests still set the policy directly.
    override = DeliverySettings(retry_base_seconds=0.01)
    other = await start_node(aiohttp_server, aiohttp_client, make_config, delivery=override)
    assert other.workers.delivery.settings is override
