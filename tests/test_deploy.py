"""deploy/: Caddy validates the Caddyfiles, systemd-analyze verifies the units, and the example configs load with
the node's own config loader and agree with the Caddyfiles about addresses, proxies and shared services."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from node.platform.config import load_config

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
CADDYFILES = [DEPLOY / "Caddyfile", DEPLOY / "two-hosts/Caddyfile"]
UNITS = [DEPLOY / "systemd/reef.service"]
APP_HOSTS = [DEPLOY / "two-hosts/app1.toml", DEPLOY / "two-hosts/app2.toml"]


def _tool(name: str, package: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None)
    assert path, f"{name} is missing: install Debian's {package} package (scripts/test.sh does)"
    return path


def _caddy(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(cwd or ROOT), "XDG_DATA_HOME": str(cwd or ROOT), "XDG_CONFIG_HOME": str(cwd or ROOT)}
    return subprocess.run([_tool("caddy", "caddy"), *args], capture_output=True, text=True, timeout=60, env=env, cwd=cwd)


def _upstreams(caddyfile: Path) -> list[str]:
    m = re.search(r"^\s*reverse_proxy ([^{\n]+)\{", caddyfile.read_text(), re.M)
    assert m, f"{caddyfile} has no reverse_proxy block"
    return m.group(1).split()


@pytest.mark.parametrize("caddyfile", CADDYFILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_caddy_validates_the_caddyfile(caddyfile, tmp_path):
    done = _caddy("validate", "--adapter", "caddyfile", "--config", str(caddyfile), cwd=tmp_path)
    assert done.returncode == 0 and "Valid configuration" in done.stdout + done.stderr, done.stdout + done.stderr
    fmt = _caddy("fmt", str(caddyfile), cwd=tmp_path)  # formatted as caddy itself writes it (no silent typos)
    assert fmt.returncode == 0 and fmt.stdout == caddyfile.read_text(), f"run: caddy fmt --overwrite {caddyfile}"


def test_caddy_validate_refuses_a_broken_caddyfile(tmp_path):
    """The validation above means something: a misspelt subdirective is refused."""
    broken = tmp_path / "Caddyfile"
    broken.write_text(CADDYFILES[0].read_text().replace("reverse_proxy 127.0.0.1:8080 {", "reverse_proxy 127.0.0.1:8080 {\n\t\tlb_polciy first"))
    done = _caddy("validate", "--adapter", "caddyfile", "--config", str(broken), cwd=tmp_path)
    assert done.returncode != 0 and "lb_polciy" in done.stdout + done.stderr


def _verify(unit_text: str, name: str, tmp_path: Path) -> subprocess.CompletedProcess:
    # systemd-analyze checks that ExecStart's program exists: point the units at this checkout's `reef`.
    reef = Path(sys.executable).with_name("reef")
    assert reef.exists(), f"{reef}: the project is not installed in this virtualenv"
    unit = tmp_path / name
    unit.write_text(unit_text.replace("/opt/reef/.venv/bin/reef", str(reef)))
    return subprocess.run([_tool("systemd-analyze", "systemd"), "verify", "--man=no", str(unit)],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_systemd_analyze_verifies_the_unit(unit, tmp_path):
    done = _verify(unit.read_text(), unit.name, tmp_path)
    # verify exits 0 on unknown keys and only warns: no output at all is the bar.
    assert done.returncode == 0 and not done.stderr.strip() and not done.stdout.strip(), done.stderr + done.stdout


def test_systemd_analyze_reports_a_broken_unit(tmp_path):
    done = _verify(UNITS[0].read_text().replace("Restart=on-failure", "Restart=on-failur\nRestartSecs=3"),
                   "reef.service", tmp_path)
    assert "RestartSecs" in done.stderr and "on-failur" in done.stderr


def test_the_unit_runs_the_node():
    (node,) = (u.read_text() for u in UNITS)
    assert re.search(r"^ExecStart=\S+/reef --config /etc/reef/reef.toml run --workers auto$", node, re.M)
    for text in (node,):  # the workers' shared metrics directory is one systemd empties at every start
        shared = re.search(r"^Environment=PROMETHEUS_MULTIPROC_DIR=/run/(\S+)$", text, re.M)
        assert shared and shared.group(1) in re.search(r"^RuntimeDirectory=(.*)$", text, re.M).group(1).split()


def test_the_one_vps_config_loads_and_trusts_caddy_on_the_same_machine():
    cfg = load_config(DEPLOY / "one-vps.toml", env={})
    assert _upstreams(DEPLOY / "Caddyfile") == [f"{cfg.server.host}:{cfg.server.port}"]
    assert cfg.server.host == "127.0.0.1" and "127.0.0.1" in cfg.server.trusted_proxies
    assert cfg.node.https and cfg.node.domain and cfg.database.url == ""  # phase 1: the embedded database


def test_the_two_app_hosts_load_share_one_database_and_redis_and_trust_the_load_balancer():
    cfgs = [load_config(path, env={}) for path in APP_HOSTS]
    assert sorted(_upstreams(DEPLOY / "two-hosts/Caddyfile")) == sorted(f"{c.server.host}:{c.server.port}" for c in cfgs)
    assert len({c.server.host for c in cfgs}) == 2
    for field in ("node.domain", "node.https", "database.url", "redis.url", "server.trusted_proxies"):
        section, key = field.split(".")
        values = {repr(getattr(getattr(c, section), key)) for c in cfgs}
        assert len(values) == 1, f"{field} differs between the app hosts: {values}"
    cfg = cfgs[0]
    assert cfg.database.url.startswith("postgresql://") and cfg.redis.url.startswith("redis://")
    lb = re.search(r"load balancer (\d+\.\d+\.\d+\.\d+)", APP_HOSTS[0].read_text()).group(1)
    assert cfg.server.trusted_proxies == (lb,) and cfg.node.https


def test_an_env_file_overrides_the_database_url_of_an_app_host():
    """The password is kept out of the TOML: reef.env's REEF_DATABASE__URL wins."""
    url = "postgresql://reef:s3cret@10.0.0.20:5432/reef"
    assert load_config(APP_HOSTS[0], env={"REEF_DATABASE__URL": url}).database.url == url
