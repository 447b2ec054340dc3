"""Ratings and CSAT through the real app (issue #13 part 1), the headline numbers (part 6)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from conftest import MINI_KB, ask, new_conversation
from kefu.api.app import create_app
from kefu.cli import app as cli
from kefu.config import Settings
from kefu.llm.testing import ScriptedModel
from kefu.runtime import Runtime

ADMIN = {"Authorization": "Bearer admin-token-for-the-ratings-tests"}
PHONE = "13800138000"


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(kb_dir=MINI_KB, admin_token=ADMIN["Authorization"].removeprefix("Bearer "))


@pytest.fixture
def shop(settings: Settings, model: ScriptedModel) -> Iterator[TestClient]:
    with TestClient(create_app(settings, model=model)) as test_client:
        yield test_client


def runtime_of(client: TestClient) -> Runtime:
    return client.app.state.runtime  # type: ignore[attr-defined,no-any-return]


def grounded_answer(client: TestClient, model: ScriptedModel) -> tuple[str, dict[str, Any]]:
    conversation = new_conversation(client)
    model.enqueue("我们默认使用中通快递，江浙沪 1–2 天送达 [1]。")
    message = ask(client, conversation, "你们发什么快递？多久能到？")
    assert message["answer_kind"] == "grounded"
    return conversation, message


def rate(client: TestClient, conversation: str, message: str, **body: Any) -> Any:
    return client.post(f"/v1/conversations/{conversation}/messages/{message}/rating", json=body)


def error_of(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["message"]
    return str(body["error"]["code"])


def test_a_rated_answer_is_stored_with_what_it_was_made_from(shop: TestClient, model: ScriptedModel):
    conversation, message = grounded_answer(shop, model)
    response = rate(shop, conversation, message["id"], kind="stars", score=4, comment="清楚")
    assert response.status_code == 201, response.text
    rating = response.json()
    stored = runtime_of(shop).stores.conversations.list_messages(conversation)[-1]
    assert stored.id == message["id"] and stored.role == "assistant"
    assert rating["kb_version"] == "v1"
    assert rating["citations"] == [c["chunk_id"] for c in message["citations"]] and rating["citations"]
    assert (rating["route"], rating["model"], rating["answer_kind"]) == (
        stored.route,
        stored.model,
        "grounded",
    )
    assert rating["model"]  # a model wrote it: the snapshot names it
    assert (rating["kind"], rating["score"], rating["channel"]) == ("stars", 4, "web")
    assert rating["experiment_arm"] is None

    listed = shop.get(f"/v1/conversations/{conversation}/ratings", headers=ADMIN).json()
    assert listed["count"] == 1 and listed["data"][0]["id"] == rating["id"]


def test_rating_again_replaces_and_thumbs_and_stars_live_side_by_side(shop: TestClient, model: ScriptedModel):
    conversation, message = grounded_answer(shop, model)
    assert rate(shop, conversation, message["id"], kind="thumbs", score=1).status_code == 201
    assert rate(shop, conversation, message["id"], kind="thumbs", score=0).status_code == 201
    assert rate(shop, conversation, message["id"], kind="stars", score=2).status_code == 201
    listed = shop.get(f"/v1/conversations/{conversation}/ratings", headers=ADMIN).json()["data"]
    assert sorted((r["kind"], r["score"]) for r in listed) == [("stars", 2), ("thumbs", 0)]


def test_a_comment_is_redacted_before_it_is_stored_audited_or_exported(
    shop: TestClient, model: ScriptedModel
):
    conversation, message = grounded_answer(shop, model)
    comment = f"还是没说清楚，打我电话 {PHONE}"
    assert rate(shop, conversation, message["id"], kind="stars", score=2, comment=comment).status_code == 201
    csat = shop.post(f"/v1/conversations/{conversation}/rating", json={"score": 5, "comment": f"好 {PHONE}"})
    assert csat.status_code == 201, csat.text
    assert csat.json()["message_id"] is None and csat.json()["kind"] == "csat"

    runtime = runtime_of(shop)
    with runtime.stores.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT comment FROM ratings").scalars().all()
    assert len(stored) == 2 and all(PHONE not in c and "[手机号_1]" in c for c in stored)

    jsonl = shop.get("/v1/ratings/export?format=jsonl", headers=ADMIN)
    assert jsonl.status_code == 200 and jsonl.headers["content-type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in jsonl.text.splitlines()]
    assert {r["kind"] for r in rows} == {"stars", "csat"} and PHONE not in jsonl.text
    assert "[手机号_1]" in rows[0]["comment"]
    table = shop.get("/v1/ratings/export?format=csv", headers=ADMIN)
    assert table.status_code == 200 and PHONE not in table.text
    parsed = list(csv.DictReader(io.StringIO(table.text)))
    assert [r["score"] for r in parsed] == ["2", "5"] and parsed[0]["kb_version"] == "v1"
    assert parsed[0]["citations"].split() == rows[0]["citations"]

    records = [r for r in runtime.audit.records(conversation_id=conversation) if r.kind == "rating"]
    assert [r.actor for r in records] == ["customer", "customer"]
    payloads = [runtime.audit.decrypt(r) for r in records]
    assert [(p["kind"], p["score"]) for p in payloads] == [("stars", 2), ("csat", 5)]
    assert payloads[0]["kb_version"] == "v1" and PHONE not in str(payloads)


def test_the_export_and_the_list_need_staff(shop: TestClient, model: ScriptedModel):
    conversation, _ = grounded_answer(shop, model)
    assert error_of(shop.get("/v1/ratings/export"), 401) == "unauthorized"
    assert error_of(shop.get(f"/v1/conversations/{conversation}/ratings"), 401) == "unauthorized"
    wrong = {"Authorization": "Bearer nope"}
    assert error_of(shop.get("/v1/ratings/export", headers=wrong), 401) == "unauthorized"
    bad_format = shop.get("/v1/ratings/export?format=xml", headers=ADMIN)
    assert error_of(bad_format, 422) == "invalid_request"


def test_an_agent_sees_the_ratings_of_a_conversation(shop: TestClient, model: ScriptedModel):
    conversation, message = grounded_answer(shop, model)
    rate(shop, conversation, message["id"], kind="thumbs", score=1)
    runtime_of(shop).handoffs.store.ensure_agent("ann", "Ann", "password-1")
    login = shop.post("/v1/agent/login", json={"username": "ann", "password": "password-1"})
    headers = {"Authorization": f"Bearer {login.json()['token']}"}
    listed = shop.get(f"/v1/conversations/{conversation}/ratings", headers=headers)
    assert listed.status_code == 200, listed.text
    assert [(r["kind"], r["score"]) for r in listed.json()["data"]] == [("thumbs", 1)]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"kind": "stars", "score": 0}, 422, "invalid_rating"),
        ({"kind": "stars", "score": 6}, 422, "invalid_rating"),
        ({"kind": "thumbs", "score": 2}, 422, "invalid_rating"),
        ({"kind": "csat", "score": 5}, 422, "invalid_request"),  # csat rates the conversation
        ({"kind": "stars"}, 422, "invalid_request"),
        ({"kind": "stars", "score": 5, "comment": "x" * 2001}, 422, "invalid_request"),
    ],
)
def test_bad_ratings_get_a_clear_4xx(
    shop: TestClient, model: ScriptedModel, body: dict[str, Any], status: int, code: str
):
    conversation, message = grounded_answer(shop, model)
    assert error_of(rate(shop, conversation, message["id"], **body), status) == code


def test_only_the_bots_answers_of_this_conversation_can_be_rated(shop: TestClient, model: ScriptedModel):
    conversation, message = grounded_answer(shop, model)
    _, other_message = grounded_answer(shop, model)
    unknown = rate(shop, conversation, "0" * 32, kind="thumbs", score=1)
    assert error_of(unknown, 404) == "not_found" and "0" * 32 in unknown.json()["error"]["message"]
    elsewhere = rate(shop, conversation, other_message["id"], kind="thumbs", score=1)
    assert error_of(elsewhere, 404) == "not_found" and "not in conversation" in elsewhere.text
    assert error_of(rate(shop, "f" * 32, message["id"], kind="thumbs", score=1), 404) == "not_found"

    store = runtime_of(shop).stores.conversations
    own = store.list_messages(conversation)[0]
    assert own.role == "user"
    mine = rate(shop, conversation, own.id, kind="stars", score=5)
    assert error_of(mine, 422) == "invalid_rating" and "customer's own message" in mine.text
    agent_said = store.add_message(conversation, "agent", "我来帮您查一下。")
    by_agent = rate(shop, conversation, agent_said.id, kind="stars", score=5)
    assert error_of(by_agent, 422) == "invalid_rating" and "agent" in by_agent.text
    assert error_of(shop.post(f"/v1/conversations/{conversation}/rating", json={"score": 0}), 422) == (
        "invalid_rating"
    )
    assert runtime_of(shop).audit is not None
    listed = shop.get(f"/v1/conversations/{conversation}/ratings", headers=ADMIN).json()
    assert listed["count"] == 0  # nothing refused was stored
    assert [r.kind for r in runtime_of(shop).audit.records(conversation_id=conversation)].count("rating") == 0


def test_the_openai_compatible_endpoint_rates_a_completion(shop: TestClient, model: ScriptedModel):
    model.enqueue("我们默认使用中通快递，江浙沪 1–2 天送达 [1]。")
    completion = shop.post(
        "/v1/chat/completions",
        json={"model": "kefu", "messages": [{"role": "user", "content": "你们发什么快递？多久能到？"}]},
    ).json()
    extra = completion["kefu"]
    assert completion["id"] == f"chatcmpl-{extra['message_id']}"
    thumbs = shop.post(
        "/v1/chat/completions/ratings", json={"message_id": completion["id"], "kind": "thumbs", "score": 1}
    )
    assert thumbs.status_code == 201, thumbs.text
    assert thumbs.json()["conversation_id"] == extra["conversation_id"]
    assert thumbs.json()["kb_version"] == "v1" and thumbs.json()["channel"] == "openai"
    csat = shop.post(
        "/v1/chat/completions/ratings",
        json={"conversation_id": extra["conversation_id"], "kind": "csat", "score": 4},
    )
    assert csat.status_code == 201, csat.text
    no_id = shop.post("/v1/chat/completions/ratings", json={"kind": "stars", "score": 3})
    assert error_of(no_id, 422) == "invalid_rating" and "message_id" in no_id.text
    unknown = shop.post("/v1/chat/completions/ratings", json={"message_id": "x", "kind": "stars", "score": 3})
    assert error_of(unknown, 404) == "not_found"


def test_ratings_are_counted_in_the_metrics_with_a_csat_gauge(shop: TestClient, model: ScriptedModel):
    conversation, message = grounded_answer(shop, model)
    rate(shop, conversation, message["id"], kind="stars", score=5)
    shop.post(f"/v1/conversations/{conversation}/rating", json={"score": 3})
    other, _ = grounded_answer(shop, model)
    shop.post(f"/v1/conversations/{other}/rating", json={"score": 4})
    samples = {}
    for family in text_string_to_metric_families(shop.get("/metrics").text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    assert samples[("kefu_ratings_total", (("kind", "stars"), ("score", "5")))] == 1
    assert samples[("kefu_ratings_total", (("kind", "csat"), ("score", "3")))] == 1
    assert samples[("kefu_csat", ())] == 3.5
    assert samples[("kefu_rating_ratio", (("ratio", "csat_satisfied"),))] == 0.5


def test_kefu_stats_shows_csat_completion_and_first_response_by_day(
    shop: TestClient, model: ScriptedModel, settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    conversation, message = grounded_answer(shop, model)
    rate(shop, conversation, message["id"], kind="thumbs", score=1)
    rate(shop, conversation, message["id"], kind="stars", score=4)
    shop.post(f"/v1/conversations/{conversation}/rating", json={"score": 5})
    other = new_conversation(shop)
    ask(shop, other, "今天天气怎么样，股票会涨吗")  # not answered from the KB: not completed
    shop.post(f"/v1/conversations/{other}/rating", json={"score": 2})

    monkeypatch.setenv("KEFU_DATA_DIR", str(Path(settings.data_dir)))
    runner = CliRunner()
    result = runner.invoke(cli, ["stats", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ratings"]["csat_mean"] == 3.5 and report["ratings"]["csat_satisfied_share"] == 0.5
    assert report["ratings"]["thumbs_up_rate"] == 1.0 and report["ratings"]["stars_mean"] == 4.0
    (today,) = report["by_day"]
    assert today["conversations"] == 2 and today["session_completion_rate"] == 0.5
    assert today["resolution_rate"] == 0.5
    assert today["first_responses"] == 2 and today["first_response_mean_s"] >= 0
    assert today["csat_mean"] == 3.5
    table = runner.invoke(cli, ["stats"])
    assert table.exit_code == 0, table.output
    assert "headline numbers by day" in table.output and "3.50" in table.output and "50.0%" in table.output


def test_kefu_export_ratings_writes_csv_and_jsonl(
    shop: TestClient,
    model: ScriptedModel,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
):
    conversation, message = grounded_answer(shop, model)
    rate(shop, conversation, message["id"], kind="stars", score=1, comment=f"电话 {PHONE} 打不通")
    monkeypatch.setenv("KEFU_DATA_DIR", str(Path(settings.data_dir)))
    runner = CliRunner()
    out = tmp_path / "ratings.csv"
    result = runner.invoke(cli, ["export", "ratings", "--format", "csv", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote 1 ratings" in result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert len(rows) == 1 and rows[0]["score"] == "1" and "[手机号_1]" in rows[0]["comment"]
    jsonl = runner.invoke(cli, ["export", "ratings", "--format", "jsonl"])
    assert jsonl.exit_code == 0, jsonl.output
    assert PHONE not in jsonl.stdout and json.loads(jsonl.stdout.splitlines()[-1])["kind"] == "stars"
    bad = runner.invoke(cli, ["export", "ratings", "--format", "xml"])
    assert bad.exit_code == 2
