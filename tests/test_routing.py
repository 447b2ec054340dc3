"""Model routing, cost and budgets (issue #10 §3): the matrix file, the route rules, and — against two
real fake OpenAI servers as "cheap" and "strong" — which server a turn reached, what was persisted, what
the budgets allow and what ``kefu stats`` shows."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import MINI_KB, new_conversation
from kefu.api.app import create_app
from kefu.cli import app as cli
from kefu.config import Settings
from kefu.dialog import prompts
from kefu.errors import ConfigError
from kefu.llm.base import Usage
from kefu.llm.fake_server import FAKE_MODEL, FakeServer
from kefu.llm.routing import ModelSpec, build_routed_model, choose_route, load_matrix
from kefu.llm.testing import ScriptedModel
from kefu.storage.base import MessageRecord

ONE_LINE = "新疆、西藏这些偏远地区多久能送到？"  # one plain question, answered from docs/shipping.md
# several questions in one message, after a grievance the sentiment model scores as neutral
COMPLAINT = "我上周买的东西到现在还没到。你们用什么快递？偏远地区几天能到？"
EXAMPLE = Path(__file__).parent.parent / "docs" / "models.example.yaml"
runner = CliRunner()


# --- the route rules and prices ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "parts", "sentiment", "prompt", "route"),
    [
        ("支持花呗吗？", 1, 0.1, 500, "faq"),
        ("你们用什么快递？偏远地区几天能到？", 2, 0.0, 500, "complex"),
        ("快递" * 70, 1, 0.0, 500, "complex"),  # one long question
        ("你们用什么快递？", 1, -0.5, 500, "complaint"),  # upset
        ("订单到现在还没到，用的什么快递？", 1, -0.1, 500, "complaint"),  # a grievance stated as fact
        ("My parcel still hasn't arrived, which courier is it?", 1, 0.0, 500, "complaint"),
        ("你们用什么快递？偏远地区几天能到？", 2, -0.9, 9000, "long_context"),  # capacity comes first
    ],
)
def test_choose_route_by_rule(question: str, parts: int, sentiment: float, prompt: int, route: str) -> None:
    chosen = choose_route(
        question, parts=parts, sentiment=sentiment, prompt_tokens=prompt, context_tokens=8000
    )
    assert chosen == route


def test_cost_by_prices_or_by_coefficient() -> None:
    usage = Usage(prompt_tokens=2000, completion_tokens=500)
    priced = ModelSpec("cheap", "openai", price_in_per_1k=0.002, price_out_per_1k=0.008)
    assert priced.cost(usage) == pytest.approx(2 * 0.002 + 0.5 * 0.008)
    weighted = ModelSpec("strong", "openai", cost_coefficient=15)
    assert weighted.cost(usage, base_price_per_1k=0.002) == pytest.approx(15 * 2.5 * 0.002)


def test_the_example_matrix_is_valid() -> None:
    matrix = load_matrix(EXAMPLE)
    assert matrix.routes["faq"] != matrix.routes["complex"]
    assert set(matrix.routes) >= {"faq", "complex", "complaint", "long_context", "batch", "cheap"}
    assert all(not spec.api_key_env or spec.api_key_env.isupper() for spec in matrix.models.values())


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("routes: {faq: a}", "needs a `models:` mapping"),
        (
            "models: {a: {kind: openai, model: m}}\nroutes: {faq: a}",
            "model 'a': an openai model needs base_url",
        ),
        ("models: {a: {kind: remote, model: m, base_url: u}}", "kind 'remote' is not openai or local"),
        (
            "models: {a: {kind: local}}\nroutes: {faq: b}",
            "route 'faq' names model 'b', which is not under models",
        ),
        ("models: {a: {kind: local}}\nroutes: {simple: a}", "unknown route(s) ['simple']"),
        (
            "models: {a: {kind: local}, b: {kind: local}}\nroutes: {complex: b}",
            "needs at least `faq: <model>`",
        ),
        ("models: {a: {kind: local, api_key_env: sk-abc.123}}", "NAME of an environment variable"),
        ("models: {a: {kind: local, cost_coefficient: 2, price_in_per_1k: 1}}", "not both"),
        ("models: {a: {kind: local, price_in_per_1k: -1}}", "price_in_per_1k must be a number ≥ 0"),
        ("models: {a: {kind: local, capabilities: [telepathy]}}", "capabilities must be a list of"),
        ("models: {a: {kind: local, context_tokens: lots}}", "context_tokens must be a whole number"),
        ("models: {a: {kind: local, api_key: sk-1}}", "unknown key(s) ['api_key']"),
        ("models: [", "not valid YAML"),
    ],
)
def test_a_bad_matrix_names_the_file_the_model_and_the_fix(tmp_path: Path, text: str, complaint: str) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_matrix(path)
    assert f"KEFU_MODELS={path}" in info.value.message
    assert complaint in info.value.message


def test_a_key_variable_that_is_not_set_stops_the_start(
    make_settings: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KEFU_TEST_UNSET_KEY", raising=False)
    path = tmp_path / "models.yaml"
    path.write_text(
        "models: {a: {kind: openai, base_url: 'http://127.0.0.1:9/v1', model: m, api_key_env: KEFU_TEST_UNSET_KEY}}"
    )
    with pytest.raises(
        ConfigError, match=r"model 'a' reads its API key from \$KEFU_TEST_UNSET_KEY, which is not set"
    ):
        build_routed_model(make_settings(llm="openai", models=path))


def test_kefu_models_must_name_a_file(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"KEFU_MODELS points to .*, which is not a file"):
        make_settings(models=tmp_path / "missing.yaml")


# --- two real endpoints: cheap and strong ----------------------------------------------------------


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[FakeServer, FakeServer]]:
    with FakeServer() as cheap, FakeServer() as strong:
        yield cheap, strong


@pytest.fixture
def endpoints(servers: tuple[FakeServer, FakeServer]) -> Iterator[tuple[FakeServer, FakeServer]]:
    for server in servers:
        server.reset()
    yield servers
    for server in servers:
        server.reset()


def write_matrix(path: Path, cheap: FakeServer, strong: FakeServer) -> Path:
    path.write_text(
        f"""
currency: CNY
base_price_per_1k: 0.002
models:
  cheap:
    kind: openai
    base_url: "{cheap.base_url}"
    model: {FAKE_MODEL}
    price_in_per_1k: 0.002
    price_out_per_1k: 0.008
    context_tokens: 16000
  strong:
    kind: openai
    base_url: "{strong.base_url}"
    model: {FAKE_MODEL}
    cost_coefficient: 15
    context_tokens: 64000
    capabilities: [tools]
routes: {{faq: cheap, complex: strong, complaint: strong, long_context: strong, cheap: cheap}}
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def routed(
    make_settings: Callable[..., Settings], tmp_path: Path, endpoints: tuple[FakeServer, FakeServer]
) -> Callable[..., TestClient]:
    def make(**overrides: Any) -> TestClient:
        matrix = write_matrix(tmp_path / "models.yaml", *endpoints)
        if "answer_cache" in Settings.model_fields:  # every turn here reaches the router, none the cache
            overrides.setdefault("answer_cache", False)
        settings = make_settings(kb_dir=MINI_KB, **({"llm": "openai", "models": matrix} | overrides))
        return TestClient(create_app(settings))

    return make


def send(client: TestClient, conversation: str, text: str) -> MessageRecord:
    response = client.post(f"/v1/conversations/{conversation}/messages", json={"content": text})
    assert response.status_code == 200, response.text
    store = client.app.state.runtime.stores.conversations  # type: ignore[attr-defined]
    return store.list_messages(conversation)[-1]  # type: ignore[no-any-return]


def test_a_one_line_question_goes_to_cheap_and_a_multi_part_complaint_to_strong(
    routed: Callable[..., TestClient],
    endpoints: tuple[FakeServer, FakeServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cheap, strong = endpoints
    with routed() as client:
        conversation = new_conversation(client)
        simple = send(client, conversation, ONE_LINE)
        assert (len(cheap.state.requests), len(strong.state.requests)) == (1, 0)
        complaint = send(client, conversation, COMPLAINT)
        assert (len(cheap.state.requests), len(strong.state.requests)) == (1, 1)
        over_http = costs_over_http(client)
    assert strong.state.requests[0]["messages"][-1]["content"].startswith(COMPLAINT)
    assert (simple.answer_kind, simple.route, simple.model) == ("grounded", "faq", "cheap")
    assert (complaint.answer_kind, complaint.route, complaint.model) == ("grounded", "complaint", "strong")
    assert simple.prompt_tokens > 0 and complaint.prompt_tokens > 0
    assert simple.cost == pytest.approx(
        simple.prompt_tokens * 0.002 / 1000 + simple.completion_tokens * 0.008 / 1000
    )
    tokens = complaint.prompt_tokens + complaint.completion_tokens
    assert complaint.cost == pytest.approx(15 * tokens / 1000 * 0.002)

    assert {(r["route"], r["model"], r["cost"]) for r in over_http["by_route"]} == {
        ("faq", "cheap", round(simple.cost or 0, 6)),
        ("complaint", "strong", round(complaint.cost or 0, 6)),
    }

    monkeypatch.setenv("KEFU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KEFU_MODELS", str(tmp_path / "models.yaml"))
    table = runner.invoke(cli, ["stats"])
    assert table.exit_code == 0, table.output
    assert f"model cost               {(simple.cost or 0) + (complaint.cost or 0):.4f} CNY" in table.output
    rows = [line.split() for line in table.output.splitlines()]
    by_route = {(r[1], r[2]): r for r in rows if len(r) == 7 and r[1] in ("faq", "complaint")}
    assert float(by_route["faq", "cheap"][6]) == pytest.approx(simple.cost or 0, abs=1e-4)
    assert float(by_route["complaint", "strong"][6]) == pytest.approx(complaint.cost or 0, abs=1e-4)
    assert conversation in table.output
    as_json = json.loads(runner.invoke(cli, ["stats", "--json"]).stdout)["costs"]
    assert as_json["cost"] == pytest.approx((simple.cost or 0) + (complaint.cost or 0), abs=1e-6)
    assert as_json["top_conversations"][0]["conversation_id"] == conversation


def costs_over_http(client: TestClient) -> dict[str, Any]:
    """GET /v1/stats/costs as a signed-in agent."""
    client.app.state.runtime.handoffs.store.ensure_agent("ann", "Ann", "password-1")  # type: ignore[attr-defined]
    token = client.post("/v1/agent/login", json={"username": "ann", "password": "password-1"}).json()["token"]
    response = client.get("/v1/stats/costs", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_with_kefu_llm_local_a_remote_matrix_still_writes_the_answers(
    routed: Callable[..., TestClient], endpoints: tuple[FakeServer, FakeServer]
) -> None:
    with routed(llm="local") as client:  # the default KEFU_LLM: no local worker is started for it
        record = send(client, new_conversation(client), ONE_LINE)
    assert (record.route, record.model) == ("faq", "cheap")
    assert [len(e.state.requests) for e in endpoints] == [1, 0]


def test_a_matrix_needs_a_model_backend(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="KEFU_MODELS is set but KEFU_LLM=none"):
        make_settings(llm="none", models=EXAMPLE)


def test_an_faq_is_sent_verbatim_with_its_route_and_no_cost(
    routed: Callable[..., TestClient], endpoints: tuple[FakeServer, FakeServer]
) -> None:
    with routed() as client:
        faq = send(client, new_conversation(client), "支持花呗付款吗？")
    assert (faq.answer_kind, faq.route, faq.model, faq.cost) == ("faq", "faq", None, 0.0)
    assert [len(e.state.requests) for e in endpoints] == [0, 0]


def test_near_the_conversation_cap_the_cheap_route_answers_and_over_it_no_model(
    routed: Callable[..., TestClient],
    endpoints: tuple[FakeServer, FakeServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    cheap, strong = endpoints
    cap = 0.03
    with routed(budget_conversation=cap, budget_degrade_at=0.5) as client:
        conversation = new_conversation(client)
        first = send(client, conversation, COMPLAINT)  # strong: ×15, over half of the cap
        assert first.route == "complaint" and cap / 2 <= (first.cost or 0) < cap, first.cost
        with caplog.at_level(logging.WARNING, logger="kefu.llm"):
            second = send(client, conversation, COMPLAINT)
        assert (second.route, second.model) == ("cheap", "cheap")
        assert (len(cheap.state.requests), len(strong.state.requests)) == (1, 1)
        assert any(
            "KEFU_BUDGET_CONVERSATION" in r.message and "cheap route" in r.message for r in caplog.records
        )
        spent = (first.cost or 0) + (second.cost or 0)
        for _ in range(40):  # cheap turns until the cap is reached
            if spent >= cap:
                break
            spent += send(client, conversation, ONE_LINE).cost or 0
        calls = len(cheap.state.requests) + len(strong.state.requests)
        over = send(client, conversation, COMPLAINT)
        assert len(cheap.state.requests) + len(strong.state.requests) == calls  # no model request at all
        other = send(client, new_conversation(client), COMPLAINT)  # another conversation: its own budget
    assert (over.answer_kind, over.route, over.model, over.cost) == ("grounded", "over_budget", None, 0.0)
    assert over.content.rstrip().endswith(prompts.BUDGET_HUMAN["zh"])
    assert "EMS" in over.content  # the knowledge base's own sentences
    assert (other.route, other.model) == ("complaint", "strong")


def test_the_daily_cap_stops_every_conversation(
    routed: Callable[..., TestClient], endpoints: tuple[FakeServer, FakeServer]
) -> None:
    with routed(budget_daily=0.000001) as client:
        first = send(client, new_conversation(client), ONE_LINE)  # nothing spent yet today: answered
        later = send(client, new_conversation(client), ONE_LINE)
    assert (first.route, later.route) == ("faq", "over_budget")
    assert sum(len(e.state.requests) for e in endpoints) == 1


def test_without_a_matrix_the_one_model_is_route_default_priced_by_settings(
    make_settings: Callable[..., Settings],
) -> None:
    model = ScriptedModel()
    settings = make_settings(kb_dir=MINI_KB, llm_price_in_per_1k=0.5, llm_price_out_per_1k=1.0)
    with TestClient(create_app(settings, model=model)) as client:
        record = send(client, new_conversation(client), ONE_LINE)
    assert len(model.history) == 1
    assert (record.route, record.model) == ("default", model.describe())
    assert record.cost == pytest.approx(record.prompt_tokens * 0.5 / 1000 + record.completion_tokens / 1000)


def test_an_angry_complaint_goes_to_a_person_with_its_route_and_no_model_call(
    routed: Callable[..., TestClient], endpoints: tuple[FakeServer, FakeServer]
) -> None:
    with routed() as client:
        record = send(
            client, new_conversation(client), "你们快递太慢了，很不满意！到底用什么快递？偏远地区几天能到？"
        )
    assert (record.answer_kind, record.route, record.model, record.cost) == (
        "handoff",
        "complaint",
        None,
        0.0,
    )
    assert [len(e.state.requests) for e in endpoints] == [0, 0]


async def test_models_of_kind_local_share_the_one_local_worker(
    make_settings: Callable[..., Settings], tmp_path: Path, endpoints: tuple[FakeServer, FakeServer]
) -> None:
    from kefu.llm.routing import ModelRouter
    from kefu.llm.supervisor import LocalWorkerModel

    path = tmp_path / "models.yaml"
    path.write_text(
        f"models: {{small: {{kind: local}}, same: {{kind: local, cost_coefficient: 2}}, "
        f"remote: {{kind: openai, base_url: '{endpoints[0].base_url}', model: {FAKE_MODEL}}}}}\n"
        "routes: {faq: small, complex: remote}"
    )
    router = build_routed_model(make_settings(llm="openai", models=path))
    try:
        assert isinstance(router, ModelRouter)
        assert isinstance(router.models["small"], LocalWorkerModel)
        assert router.models["small"] is router.models["same"]  # one worker process, not two
        assert router.for_route("complex")[0] == "remote" and router.for_route("batch")[0] == "small"
    finally:
        assert router is not None
        await router.aclose()


async def test_callers_that_do_not_route_get_faq_and_tool_requests_a_tools_model(
    make_settings: Callable[..., Settings], tmp_path: Path, endpoints: tuple[FakeServer, FakeServer]
) -> None:
    from kefu.llm.base import ChatRequest, Message, Tool

    cheap, strong = endpoints  # only strong lists `tools` in the matrix
    router = build_routed_model(
        make_settings(llm="openai", models=write_matrix(tmp_path / "m.yaml", *endpoints))
    )
    assert router is not None and router.supports_tools
    order = Tool(
        "order_number", "the order number", {"type": "object", "properties": {"id": {"type": "string"}}}
    )
    try:
        await router.complete(ChatRequest([Message("user", "在吗")]))
        assert (len(cheap.state.requests), len(strong.state.requests)) == (1, 0)
        await router.complete(ChatRequest([Message("user", "订单 XP1013")], tools=[order]))
        assert (len(cheap.state.requests), len(strong.state.requests)) == (1, 1)
        assert strong.state.requests[0]["tools"][0]["function"]["name"] == "order_number"
    finally:
        await router.aclose()
