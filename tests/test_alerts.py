"""deploy/prometheus/alerts.yml and deploy/grafana/reef.json: promtool checks the rules and runs their unit tests,
the dashboard's queries parse, and every metric either names is one the node really exports."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from metrics_support import scrape
from node.app import create_app

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "deploy/prometheus/alerts.yml"
ALERT_TESTS = ROOT / "deploy/prometheus/alerts_test.yml"
DASHBOARD = ROOT / "deploy/grafana/reef.json"
METRIC = re.compile(r"\b(?:reef|process|python)_[a-z0-9_]+\b")
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
            "gauge": ("",), "summary": ("", "_sum", "_count", "_created"), "info": ("_info",), "unknown": ("",)}


def _promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is missing: install Debian's prometheus package (scripts/test.sh does)"
    return path


def _run(*args: str) -> str:
    done = subprocess.run([_promtool(), *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _dashboard_exprs() -> list[str]:
    def walk(panels):
        for p in panels:
            yield from (t["expr"] for t in p.get("targets", []))
            yield from walk(p.get("panels", []))

    return list(walk(json.loads(DASHBOARD.read_text())["panels"]))


def test_promtool_checks_the_rules():
    out = _run("check", "rules", str(ALERTS))
    assert "SUCCESS: 9 rules found" in out


def test_promtool_unit_tests_fire_and_stay_quiet_for_each_alert():
    _run("test", "rules", str(ALERT_TESTS))
    alerts = set(re.findall(r"- alert: (\w+)", ALERTS.read_text()))
    tested = ALERT_TESTS.read_text()
    for name in alerts:  # each alert has a case where it fires and one where it must not
        assert re.search(rf"alertname: {name}\n\s+exp_alerts:\n\s+- exp_labels", tested), f"{name} never fires"
        assert re.search(rf"alertname: {name}\n\s+exp_alerts: \[\]", tested), f"{name} never stays quiet"


def test_the_dashboards_queries_parse(tmp_path):
    exprs = _dashboard_exprs()
    assert len(exprs) >= 30
    rules = tmp_path / "dashboard_rules.yml"
    rules.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(exprs)]}]}))
    assert f"SUCCESS: {len(exprs)} rules found" in _run("check", "rules", str(rules))


async def test_every_metric_in_the_alerts_and_the_dashboard_is_exported(aiohttp_client, make_config, redis_url):
    client = await aiohttp_client(create_app(make_config(redis={"url": redis_url})))
    await client.get("/api/v1/health")
    exported: set[str] = set()
    for fam in text_string_to_metric_families(await scrape(client)):
        exported |= {fam.name} | {fam.name + s for s in SUFFIXES[fam.type]}  # descriptions name families
    used = set(METRIC.findall(ALERTS.read_text())) | set(METRIC.findall(" ".join(_dashboard_exprs())))
    assert len(used) >= 30
    assert used <= exported, f"not exported by the node: {sorted(used - exported)}"
