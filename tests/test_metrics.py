"""``/metrics`` through the real app: each turn's timing, kind, model call, KB decision and handoff are
counted with bounded labels only, 429s are counted, the scrape-time gauges read the real queue and
breakers, and nothing personal (conversation ids, message text) ever appears in the exposition."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from conftest import MINI_KB, ask, new_conversation
from kefu import __version__
from kefu.api.app import create_app
from kefu.config import Settings
from kefu.errors import ModelError
from kefu.llm.breaker import CircuitBreaker
from kefu.llm.testing import ScriptedModel
from kefu.observe.collectors import BreakerStates
from kefu.observe.metrics import ConversationSpend, Metrics, endpoint

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient) -> tuple[str, Samples]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return response.text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels`` (0 when none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(kb_dir=MINI_KB, version_label="canary")


@pytest.fixture
def app_client(settings: Settings, model: ScriptedModel) -> Iterator[TestClient]:
    with TestClient(create_app(settings, model=model)) as test_client:
        yield test_client


def test_a_grounded_turn_is_timed_counted_and_costed_without_personal_data(
    app_client: TestClient, model: ScriptedModel
) -> None:
    conversation = new_conversation(app_client)
    model.enqueue("我们默认使用中通快递，江浙沪 1–2 天送达 [1]。")
    reply = ask(app_client, conversation, "你们发什么快递？我的手机 13812345678")
    assert reply["answer_kind"] == "grounded"
    body, samples = scrape(app_client)

    assert value(samples, "kefu_conversations_total", channel="web") == 1
    assert value(samples, "kefu_turn_seconds_count", channel="web", kind="grounded") == 1
    assert value(samples, "kefu_turn_first_text_seconds_count", channel="web", kind="grounded") == 1
    assert value(samples, "kefu_first_response_seconds_count", channel="web") == 1
    assert value(samples, "kefu_kb_decisions_total", decision="grounded") == 1
    assert value(samples, "kefu_answer_cache_total", result="miss") == 1
    model_name = ScriptedModel().describe()
    assert value(samples, "kefu_model_calls_total", model=model_name, outcome="ok") == 1
    assert value(samples, "kefu_model_calls_total", outcome="error") == 0
    stored = app_client.app.state.runtime.stores.conversations.list_messages(conversation)[-1]  # type: ignore[attr-defined]
    assert value(samples, "kefu_tokens_total", model=model_name, type="prompt") == stored.prompt_tokens > 0
    # the full reply took at least as long as its first text
    total = value(samples, "kefu_turn_seconds_sum", kind="grounded")
    assert 0 < value(samples, "kefu_turn_first_text_seconds_sum", kind="grounded") <= total
    # requests by route template, never by the raw path with the conversation id in it
    template = "/v1/conversations/{conversation_id}/messages"
    assert value(samples, "kefu_http_requests_total", route=template, method="POST", status="200") == 1
    assert value(samples, "kefu_build_info", version=__version__, label="canary") == 1
    for secret in (conversation, "13812345678", "中通", "快递"):
        assert secret not in body

    # a second turn of the same conversation is not its first response
    model.enqueue("新疆属于偏远地区，使用 EMS，一般 5–8 天送达 [1]。")
    ask(app_client, conversation, "那新疆呢？")
    _, samples = scrape(app_client)
    assert value(samples, "kefu_turn_seconds_count", kind="grounded") == 2
    assert value(samples, "kefu_first_response_seconds_count") == 1


def test_every_response_names_the_release(app_client: TestClient) -> None:
    response = app_client.get("/healthz")
    assert response.headers["x-kefu-version"] == f"{__version__}+canary"


def test_a_model_failure_is_a_failed_model_call_and_a_fallback_turn(
    app_client: TestClient, model: ScriptedModel
) -> None:
    conversation = new_conversation(app_client)
    model.fail_next(ModelError("upstream returned 503"))
    reply = ask(app_client, conversation, "你们发什么快递？多久能到？")
    assert reply["status"] == "fallback"
    _, samples = scrape(app_client)
    assert value(samples, "kefu_model_calls_total", outcome="error") == 1
    assert value(samples, "kefu_model_calls_total", outcome="ok") == 0
    assert value(samples, "kefu_turn_seconds_count", kind=reply["answer_kind"]) == 1


def test_no_answer_is_a_kb_miss_and_a_handoff_is_counted_by_reason_and_queued(
    app_client: TestClient,
) -> None:
    conversation = new_conversation(app_client)
    miss = ask(app_client, conversation, "你们卖二手挖掘机吗")
    assert miss["answer_kind"] == "no_answer"
    response = app_client.post(f"/v1/conversations/{conversation}/messages", json={"content": "转人工"})
    handoff = response.json()["handoff"]
    _, samples = scrape(app_client)
    assert value(samples, "kefu_kb_decisions_total", decision="none") == 1
    assert value(samples, "kefu_handoffs_total", reason=handoff["reason"]) == 1
    assert value(samples, "kefu_handoffs_total") == 1
    queued = 1 if handoff["status"] == "queued" else 0
    assert value(samples, "kefu_handoff_queue_length") == queued
    assert value(samples, "kefu_handoff_expected_wait_seconds") > 0
    # the KPI ratios from the database: one conversation, with a handoff, not completed
    assert value(samples, "kefu_operations_ratio", kpi="handoff") == 1.0
    assert value(samples, "kefu_operations_ratio", kpi="session_completion") == 0.0

    # while the agent has it, the bot is silent: a turn without text, not a first response
    ask_silent = app_client.post(f"/v1/conversations/{conversation}/messages", json={"content": "还在吗"})
    assert ask_silent.json()["answer_kind"] == "agent_pending"
    _, samples = scrape(app_client)
    assert value(samples, "kefu_turn_seconds_count", kind="agent_pending") == 1
    assert value(samples, "kefu_turn_first_text_seconds_count", kind="agent_pending") == 0
    assert value(samples, "kefu_handoffs_total") == 1  # not a new handoff


def test_rate_limited_requests_are_counted(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(kb_dir=MINI_KB, rate_limit_agent="0.01/2")
    with TestClient(create_app(settings, model=ScriptedModel())) as client:
        assert [client.get("/v1/agent/me").status_code for _ in range(3)] == [401, 401, 429]
        _, samples = scrape(client)
    # refused before routing: counted under its API family, served ones under their template
    assert value(samples, "kefu_rate_limited_requests_total", route="/v1/agent/*") == 1
    assert value(samples, "kefu_http_requests_total", route="/v1/agent/*", status="429") == 1
    assert value(samples, "kefu_http_requests_total", route="/v1/agent/me", status="401") == 2


def test_breaker_states_are_read_at_scrape_time() -> None:
    clock = [0.0]
    breaker = CircuitBreaker("chat @ http://127.0.0.1:9/v1", min_calls=2, cooldown=30, clock=lambda: clock[0])
    metrics = Metrics()
    metrics.add_scrape_collector(BreakerStates(lambda: [breaker]))

    def state() -> str:
        families = text_string_to_metric_families(metrics.render().decode())
        samples = [s for f in families for s in f.samples if s.name == "kefu_breaker_state" and s.value == 1]
        assert len(samples) == 1
        return samples[0].labels["state"]

    assert state() == "closed"
    breaker.failure("503")
    breaker.failure("503")
    assert state() == "open"
    clock[0] = 31
    assert state() == "half-open"


def test_a_conversation_cost_is_observed_once_it_has_gone_idle() -> None:
    now = [0.0]
    spend = ConversationSpend(idle_seconds=60, limit=2, clock=lambda: now[0])
    spend.add("a", 0.01, 100)
    now[0] = 30
    spend.add("a", 0.02, 50)
    spend.add("b", 0.5, 10)
    assert spend.due() == []  # both still talking
    now[0] = 95  # "a" idle 65 s, "b" 65 s
    spend.add("c", 0.0, 0)
    assert spend.due() == [(pytest.approx(0.03), 150), (0.5, 10)]
    for name in ("d", "e"):
        spend.add(name, 0.0, 1)
    assert spend.due() == [(0.0, 0)]  # over the limit: the least recently seen goes early


def test_several_processes_add_up_in_multiprocess_mode(tmp_path: Path) -> None:
    """Two worker processes record turns into PROMETHEUS_MULTIPROC_DIR; a third renders the sum."""
    directory = tmp_path / "prom"
    directory.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    record = textwrap.dedent(
        """
        from kefu.observe.metrics import Metrics, TurnFacts
        m = Metrics()
        m.conversation_started("web")
        m.turn(TurnFacts("c1", "web", "faq", total=0.2, first_text=0.1))
        """
    )
    for _ in range(2):
        subprocess.run([sys.executable, "-c", record], env=env, check=True, timeout=60)
    render = "from kefu.observe.metrics import Metrics; print(Metrics().render().decode())"
    out = subprocess.run(
        [sys.executable, "-c", render], env=env, check=True, timeout=60, capture_output=True, text=True
    )
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for f in text_string_to_metric_families(out.stdout)
        for s in f.samples
    }
    assert value(samples, "kefu_conversations_total", channel="web") == 2
    assert value(samples, "kefu_turn_seconds_count", channel="web", kind="faq") == 2
    assert value(samples, "kefu_kb_decisions_total", decision="faq") == 2


def test_endpoint_labels_carry_no_credentials() -> None:
    assert (
        endpoint("qwen @ https://user:s3cret@llm.example/v1?api-key=k3y") == "qwen @ https://llm.example/v1"
    )
    assert endpoint("qwen @ http://127.0.0.1:8001/v1") == "qwen @ http://127.0.0.1:8001/v1"
    assert endpoint(None) == "none"
    assert len(endpoint("m" * 500)) == 60
