"""The alerting rules as code (deploy/prometheus): valid for Prometheus (`promtool check rules`), each KPI
alert fires on the series that should fire it and stays quiet on the others (`promtool test rules`),
and every metric the rules and the dashboard read is one kefu actually exports."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from kefu.observe.collectors import BreakerStates, BuildInfo, CostBudgets, OperationsRatios
from kefu.observe.metrics import Metrics, TurnFacts

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
RULES = DEPLOY / "prometheus" / "rules" / "kefu.rules.yml"
RULE_TESTS = DEPLOY / "prometheus" / "tests" / "kefu.rules.test.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "kefu.json"


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing in CI: scripts/install-ops-tools.sh should have installed it")
        pytest.skip("promtool not installed (Debian package prometheus): run scripts/install-ops-tools.sh")
    return found


def test_the_rules_are_valid() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 15 rules found" in result.stdout


def test_each_alert_fires_on_its_series_and_not_on_the_others() -> None:
    result = subprocess.run(
        [promtool(), "test", "rules", RULE_TESTS.name],
        cwd=RULE_TESTS.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    tested = yaml.safe_load(RULE_TESTS.read_text())
    alerts = {
        r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r
    }
    firing = {
        case["alertname"]
        for test in tested["tests"]
        for case in test.get("alert_rule_test", [])
        if case["exp_alerts"]
    }
    quiet = {
        case["alertname"]
        for test in tested["tests"]
        for case in test.get("alert_rule_test", [])
        if not case["exp_alerts"]
    }
    assert alerts - {"KefuDailyCostNearBudget"} <= firing, "every alert has a series that fires it"
    assert alerts - {"KefuDown"} <= quiet, "and one that does not"


def test_a_broken_expectation_fails(tmp_path: Path) -> None:
    """The rule tests can fail: the same series with a wrong expectation is reported."""
    broken = RULE_TESTS.read_text().replace("exp_alerts: []", "exp_alerts: [{exp_labels: {severity: x}}]", 1)
    (tmp_path / "rules").mkdir()
    shutil.copy(RULES, tmp_path / "rules" / RULES.name)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "t.yml").write_text(broken)
    result = subprocess.run(
        [promtool(), "test", "rules", "t.yml"],
        cwd=tmp_path / "tests",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "KefuReplyP90TooSlow" in result.stdout + result.stderr


def exported_names() -> set[str]:
    """Every series name kefu's /metrics can show (each metric recorded once, each collector read)."""
    metrics = Metrics()
    metrics.add_scrape_collector(BuildInfo("canary"))
    metrics.add_scrape_collector(CostBudgets({"conversation": 0.1, "day": 10.0}))
    metrics.add_scrape_collector(BreakerStates(lambda: [type("B", (), {"name": "m", "state": "open"})()]))
    summary = {
        "session_completion_rate": 0.5, "handoff_rate": 0.1, "flow_completion_rate": 1.0,
        "flows_started": 1, "flows_completed": 1, "flows_failed": 0, "conversations": 2,
    }  # fmt: skip
    ratios = OperationsRatios(engine=None, window_hours=1)  # type: ignore[arg-type]
    ratios._cached = (float("inf"), summary)
    ratios.ttl = float("inf")
    metrics.add_scrape_collector(ratios)
    metrics.turn(
        TurnFacts(
            "c", "web", "grounded", 1.0, 0.5, True, model="m", route="r", cost=0.1, handoff_reason="asked"
        )
    )
    metrics.requests.labels("/x", "GET", "429").inc()
    metrics.request_seconds.labels("/x", "GET").observe(0.1)
    metrics.rate_limited.labels("/x").inc()
    metrics.conversation_started("web")
    metrics.spend.idle_seconds = 0
    text = metrics.render().decode()
    names = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    # the agent queue's gauges (a database read; their names are fixed in collectors.HandoffQueue)
    names |= {
        "kefu_handoff_queue_length", "kefu_handoff_active", "kefu_handoff_queue_oldest_wait_seconds",
        "kefu_agents_online", "kefu_handoff_expected_wait_seconds",
    }  # fmt: skip
    return names


def series_in(expr: str) -> set[str]:
    """kefu's own series an expression reads (recording rules are ``kefu:…``, never ``kefu_…``)."""
    return set(re.findall(r"\bkefu_[a-z0-9_]+", expr))


def test_every_series_the_rules_and_the_dashboard_read_is_exported() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    exprs = [r["expr"] for g in groups for r in g["rules"]]
    dashboard = json.loads(DASHBOARD.read_text())
    exprs += [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    read = set().union(*(series_in(e) for e in exprs))
    assert read, "the expressions name kefu series"
    missing = read - exported_names()
    assert not missing, f"read by the rules or the dashboard but never exported: {sorted(missing)}"
