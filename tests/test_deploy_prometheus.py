"""A real Prometheus (the Debian package) scraping a running ``kefu serve`` on loopback, with the shipped
KPI rules loaded: while customers chat (a grounded answer from ``kefu fake-llm``, an unanswerable
question, a handoff, a rate-limited client), every query of the Grafana dashboard and every recording
rule, asked through Prometheus' HTTP API, returns data.

Only the timing is changed for the test: a 1 s scrape and rule interval instead of 15 s / 30 s.
Skipped with the reason when prometheus is not installed and this is not CI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import pytest
import yaml

from conftest import MINI_KB, free_port, stop_processes

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "kefu.json"
RULES = DEPLOY / "prometheus" / "rules" / "kefu.rules.yml"
DEADLINE_SECONDS = 120


def binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing in CI: scripts/install-ops-tools.sh should have installed it")
        pytest.skip(f"{name} not installed (Debian package prometheus): run scripts/install-ops-tools.sh")
    return found


def wait_until(check: Any, what: str, deadline: float, logs: list[Path]) -> None:
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    tails = "\n".join(f"--- {log}\n{log.read_text(errors='replace')[-1500:]}" for log in logs)
    raise RuntimeError(f"{what} did not happen in time\n{tails}")


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Prometheus' base URL, scraping a kefu that answers with kefu fake-llm."""
    prometheus_binary = binary("prometheus")
    kefu = str(Path(sys.executable).with_name("kefu"))
    root = tmp_path_factory.mktemp("prometheus-stack")
    deadline = time.monotonic() + DEADLINE_SECONDS
    llm_port, kefu_port, prom_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_") or k.startswith("KEFU_TEST_")}
    env.update(
        HF_HUB_OFFLINE="1",
        KEFU_ENVIRONMENT="test",
        KEFU_DATA_DIR=str(root / "data"),
        KEFU_KB_DIR=str(MINI_KB),
        KEFU_LLM="openai",
        KEFU_LLM_BASE_URL=f"http://127.0.0.1:{llm_port}/v1",
        KEFU_LLM_MODEL="fake",
        KEFU_LLM_PRICE_IN_PER_1K="1",
        KEFU_LLM_PRICE_OUT_PER_1K="2",
        KEFU_BUDGET_CONVERSATION="5",
        KEFU_BUDGET_DAILY="1000",
        KEFU_SCOPE_GUARD="false",
        KEFU_PORT=str(kefu_port),
        KEFU_VERSION_LABEL="stable",
        KEFU_METRICS_CONVERSATION_IDLE_SECONDS="1",
        KEFU_RATE_LIMIT_AGENT="0.01/1",
        KEFU_RATE_LIMIT_WEB="off",
        KEFU_RATE_LIMIT_CONVERSATION="off",
    )
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        group["interval"] = "1s"
    (root / "rules.yml").write_text(yaml.safe_dump(rules))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(root / "rules.yml")],
        "scrape_configs": [{"job_name": "kefu", "static_configs": [{"targets": [f"127.0.0.1:{kefu_port}"]}]}],
    }
    (root / "prometheus.yml").write_text(yaml.safe_dump(config))
    commands = {
        "fake-llm": [kefu, "fake-llm", "--port", str(llm_port), "--error-rate", "0.1"],
        "kefu": [kefu, "serve"],
        "prometheus": [
            prometheus_binary,
            f"--config.file={root / 'prometheus.yml'}",
            f"--storage.tsdb.path={root / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
    }
    processes: list[subprocess.Popen[bytes]] = []
    files: list[BinaryIO] = []
    logs: list[Path] = []
    try:
        for name, command in commands.items():
            logs.append(root / f"{name}.log")
            files.append(logs[-1].open("wb"))
            processes.append(subprocess.Popen(command, env=env, stdout=files[-1], stderr=subprocess.STDOUT))
        kefu_url, prom_url = f"http://127.0.0.1:{kefu_port}", f"http://127.0.0.1:{prom_port}"
        wait_until(
            lambda: httpx.get(f"{kefu_url}/healthz").status_code == 200, "kefu serve started", deadline, logs
        )
        wait_until(
            lambda: httpx.get(f"{prom_url}/-/ready").status_code == 200, "prometheus ready", deadline, logs
        )
        stop = threading.Event()
        traffic = threading.Thread(target=customers, args=(kefu_url, stop), daemon=True)
        traffic.start()

        def scraped_turns() -> bool:
            result = query(prom_url, 'sum(kefu_turn_seconds_count{kind="grounded"})')
            # the KPI ratios are read from the database at most every 10 s (collectors.OperationsRatios)
            ratios = query(prom_url, 'max(kefu_operations_ratio{kpi="handoff"})')
            # rate() and increase() need two samples of a series in their window: wait for a few scrapes
            # after the traffic began (on an idle machine three turns fit in the first scrape)
            scrapes = query(prom_url, "min(count_over_time(kefu_turn_seconds_count[1m]))")
            enough = bool(scrapes) and float(scrapes[0]["value"][1]) >= 3
            return bool(result and ratios) and float(result[0]["value"][1]) >= 3 and enough

        wait_until(scraped_turns, "prometheus saw three grounded turns and the KPI ratios", deadline, logs)
        try:
            yield prom_url
        finally:
            stop.set()
            traffic.join(timeout=30)
    finally:
        stop_processes(processes)
        for file in files:
            file.close()


def customers(base: str, stop: threading.Event) -> None:
    """Chat until told to stop: grounded answers, an unanswerable question, a handoff, a 429."""
    with httpx.Client(base_url=base, timeout=30) as client:
        n = 0
        while not stop.is_set():
            conversation = client.post("/v1/conversations", json={"channel": "web"}).json()["id"]
            for text in ("你们发什么快递？多久能到？", "你们卖二手挖掘机吗"):
                client.post(f"/v1/conversations/{conversation}/messages", json={"content": text})
            if n % 3 == 0:
                client.post(f"/v1/conversations/{conversation}/messages", json={"content": "转人工"})
            client.get("/v1/agent/me")  # the agent channel's bucket holds 1: the second one is a 429
            n += 1


def query(base: str, expr: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{base}/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
    return list(body["data"]["result"])


def dashboard_queries() -> list[tuple[str, str]]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(p["title"], t["expr"]) for p in panels for t in p["targets"]]


def test_every_dashboard_query_returns_data(prometheus: str) -> None:
    empty = []
    for title, expr in dashboard_queries():
        if not query(prometheus, expr):
            empty.append(f"{title}: {expr}")
    print(
        f"\n{len(dashboard_queries()) - len(empty)} of {len(dashboard_queries())} dashboard queries return data"
    )
    assert not empty, "no data for:\n" + "\n".join(empty)


def test_every_recording_rule_has_a_value(prometheus: str) -> None:
    records = [
        r["record"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "record" in r
    ]
    deadline = time.monotonic() + 20
    missing = records
    while missing and time.monotonic() < deadline:
        missing = [record for record in records if not query(prometheus, record)]
        time.sleep(0.5)
    assert not missing
    for record in records:
        print(f"{record} = {query(prometheus, record)[0]['value'][1]}")
