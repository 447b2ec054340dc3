"""The conversation service through its HTTP API, on a small knowledge pack whose content the tests control.

The scripted model records every request, so the tests check what the model *received*: the numbered
sources, the session's earlier turns, and redacted text."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import MINI_KB, ask, new_conversation, parse_sse, system_text
from kefu.api.app import create_app
from kefu.config import Settings
from kefu.errors import ModelError
from kefu.llm.testing import ScriptedModel


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(kb_dir=MINI_KB)


def test_grounded_answer_cites_sources_and_follow_up_uses_the_session(
    client: TestClient, model: ScriptedModel
):
    conversation = new_conversation(client)
    model.enqueue("我们默认使用中通快递，江浙沪 1–2 天送达 [1]。")
    first = ask(client, conversation, "你们发什么快递？多久能到？")
    assert first["answer_kind"] == "grounded"
    assert first["content"] == "我们默认使用中通快递，江浙沪 1–2 天送达 [1]。"
    assert any(c["source"] == "docs/shipping.md" for c in first["citations"])
    assert {c["kb_version"] for c in first["citations"]} == {"v1"}  # which KB version answered
    assert "[1]" in system_text(model) and "中通快递" in system_text(model)

    model.enqueue("新疆属于偏远地区，使用 EMS，一般 5–8 天送达 [1]。")
    second = ask(client, conversation, "那新疆呢？")
    assert second["answer_kind"] == "grounded"
    assert any("偏远地区" in c["section"] for c in second["citations"])
    received = model.history[-1].messages
    assert "新疆" in received[0].content and "EMS" in received[0].content  # the sources it was given
    assert [(m.role, m.content) for m in received[1:]] == [
        ("user", "你们发什么快递？多久能到？"),
        ("assistant", first["content"]),
        ("user", "那新疆呢？（接着问：你们发什么快递？多久能到？）"),  # the fragment carries its question
    ]


def test_a_bare_follow_up_is_searched_again_with_the_previous_question(
    client: TestClient, model: ScriptedModel
):
    conversation = new_conversation(client)
    ask(client, conversation, "你们发什么快递？多久能到？")
    reply = ask(client, conversation, "西藏要几天")  # alone it finds nothing relevant enough
    assert reply["answer_kind"] == "grounded"
    assert any("偏远地区" in c["section"] for c in reply["citations"])


@pytest.fixture
def held(make_settings: Callable[..., Settings], model: ScriptedModel) -> Iterator[TestClient]:
    """The app with answers checked against their sources before sending (the local model's default)."""
    with TestClient(create_app(make_settings(kb_dir=MINI_KB, answer_check="hold"), model=model)) as client:
        yield client


def test_held_answer_supported_by_its_sources_is_sent(held: TestClient, model: ScriptedModel):
    conversation = new_conversation(held)
    model.enqueue("新疆属于偏远地区，统一使用中国邮政 EMS 发货，一般 5–8 天送达 [1]。")
    reply = ask(held, conversation, "新疆、西藏这些偏远地区多久能送到？")
    assert reply["answer_kind"] == "grounded" and reply["status"] == "ok"
    assert reply["content"].startswith("新疆属于偏远地区")


def test_held_answer_beyond_its_sources_is_never_sent(held: TestClient, model: ScriptedModel):
    conversation = new_conversation(held)
    model.enqueue("新疆是中华人民共和国的自治区，风景很美，欢迎去旅游。")
    with held.stream(
        "POST",
        f"/v1/conversations/{conversation}/messages",
        json={"content": "新疆、西藏这些偏远地区多久能送到？", "stream": True},
    ) as response:
        events = parse_sse(response.iter_lines())
    streamed = "".join(data["text"] for name, data in events if name == "delta")
    assert "自治区" not in streamed  # nothing of it reached the customer
    final = events[-1][1]["message"]
    assert final["status"] == "replaced" and final["answer_kind"] == "grounded"
    # instead: the knowledge base's own sentences, each from a chunk the reply cites
    assert streamed == final["content"] and "EMS" in final["content"]
    sentences = re.sub(r"\[\d+\]", "", final["content"])
    cited = [c["chunk_id"] for c in final["citations"]]
    kb = held.app.state.runtime.kb  # type: ignore[attr-defined]
    assert any(sentences.split("。")[0] in kb.get(chunk_id).text for chunk_id in cited)


def test_held_answer_with_an_invented_number_is_replaced(held: TestClient, model: ScriptedModel):
    conversation = new_conversation(held)
    model.enqueue("偏远地区使用中国邮政 EMS 发货，一般 3 天送达 [1]。")  # the sources say 5–8 days
    reply = ask(held, conversation, "新疆、西藏这些偏远地区多久能送到？")
    assert reply["status"] == "replaced" and "3 天" not in reply["content"]


def test_faq_match_is_answered_verbatim_without_the_model(client: TestClient, model: ScriptedModel):
    conversation = new_conversation(client)
    reply = ask(client, conversation, "可以用花呗吗")
    assert reply["answer_kind"] == "faq"
    faq_answer, notice = reply["content"].split("\n\n", 1)
    assert faq_answer == "支持花呗付款，也支持花呗分期（3、6、12 期）。"
    assert "理性消费" in notice  # instalments carry the compliance notice (safety/compliance.yaml)
    assert reply["citations"][0]["chunk_id"] == "faq:pay-001"
    assert model.history == []


def test_question_outside_the_knowledge_base_offers_a_human_and_invents_nothing(
    client: TestClient, model: ScriptedModel
):
    conversation = new_conversation(client)
    reply = ask(client, conversation, "帮我写一首关于月亮的诗")
    assert reply["answer_kind"] == "no_answer"
    assert "人工客服" in reply["content"]
    assert reply["citations"] == []
    assert model.history == []


@pytest.mark.parametrize(
    ("question", "topic_word"),
    [("我头疼该吃什么药", "医"), ("What pills should I take for a headache?", "medical")],
)
def test_medical_advice_is_refused_politely_with_a_human_offer(
    client: TestClient, model: ScriptedModel, question: str, topic_word: str
):
    conversation = new_conversation(client)
    reply = ask(client, conversation, question)
    assert reply["answer_kind"] == "refused"
    assert topic_word in reply["content"]
    assert "人工" in reply["content"] or "human" in reply["content"]
    assert model.history == []  # neither the model nor the knowledge base was asked


def test_english_question_gets_an_english_prompt(client: TestClient, model: ScriptedModel):
    conversation = new_conversation(client)
    model.enqueue("We do not ship outside mainland China [1].")
    reply = ask(client, conversation, "Can you ship my order abroad to Hong Kong, Macau or Taiwan?")
    assert reply["answer_kind"] == "grounded"
    assert system_text(model).startswith("You are the online customer-service assistant")
    assert "We do not ship outside mainland China" in system_text(model)
    faq = ask(client, conversation, "Do you accept credit cards?")
    assert faq["answer_kind"] == "faq" and faq["content"].startswith("Yes, we accept Visa")


@pytest.fixture
def live(make_settings: Callable[..., Settings], model: ScriptedModel) -> Iterator[TestClient]:
    """Answers streamed as generated (KEFU_ANSWER_CHECK=off): a held answer arrives in one piece."""
    with TestClient(create_app(make_settings(kb_dir=MINI_KB, answer_check="off"), model=model)) as client:
        yield client


def test_streaming_sends_meta_citations_deltas_then_done(live: TestClient, model: ScriptedModel):
    conversation = new_conversation(live)
    model.enqueue("默认中通快递，满 199 元升级顺丰 [1]。")
    with live.stream(
        "POST",
        f"/v1/conversations/{conversation}/messages",
        json={"content": "你们用什么快递发货？", "stream": True},
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = parse_sse(response.iter_lines())
    names = [name for name, _ in events]
    assert names[0] == "meta" and names[1] == "citations" and names[-1] == "done"
    assert names.count("delta") >= 2  # streamed in pieces
    streamed = "".join(data["text"] for name, data in events if name == "delta")
    assert streamed == events[-1][1]["message"]["content"] == "默认中通快递，满 199 元升级顺丰 [1]。"


def test_history_lists_both_sides_in_order(client: TestClient, model: ScriptedModel):
    conversation = new_conversation(client)
    ask(client, conversation, "你好")
    ask(client, conversation, "可以用花呗吗")
    body = client.get(f"/v1/conversations/{conversation}/messages").json()
    assert body["count"] == 4
    assert [m["role"] for m in body["data"]] == ["user", "assistant", "user", "assistant"]
    assert body["data"][1]["answer_kind"] == "smalltalk"


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"json": {"content": "   "}}, 400, "empty_message"),
        ({"json": {"content": "退" * 4001}}, 413, "message_too_long"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "invalid_json"),
        (
            {"content": b"content=hi", "headers": {"content-type": "application/x-www-form-urlencoded"}},
            415,
            "unsupported_media_type",
        ),
        ({"json": {"text": "hi"}}, 422, "invalid_request"),
    ],
)
def test_bad_input_gets_a_clear_4xx(client: TestClient, kwargs: dict[str, Any], status: int, code: str):
    conversation = new_conversation(client)
    response = client.post(f"/v1/conversations/{conversation}/messages", **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and len(error["message"]) > 20


def test_unknown_conversation_is_a_404_naming_the_id(client: TestClient):
    response = client.post("/v1/conversations/nope123/messages", json={"content": "在吗"})
    assert response.status_code == 404
    assert "nope123" in response.json()["error"]["message"]
    assert client.get("/v1/conversations/nope123/messages").status_code == 404


def test_model_failure_gives_a_polite_fallback_and_keeps_the_message(
    client: TestClient, model: ScriptedModel, caplog: pytest.LogCaptureFixture
):
    conversation = new_conversation(client)
    model.fail_next(ModelError("upstream returned 503"))
    reply = ask(client, conversation, "你们发什么快递？多久能到？")
    # nothing was sent yet, so the customer gets the knowledge base's own sentences, cited
    assert reply["status"] == "fallback" and reply["answer_kind"] == "grounded"
    assert "中通" in reply["content"] and reply["citations"]
    assert "upstream returned 503" in caplog.text
    roles = [m["role"] for m in client.get(f"/v1/conversations/{conversation}/messages").json()["data"]]
    assert roles == ["user", "assistant"]


class CrashingModel(ScriptedModel):
    """Fails with an unexpected error (not a ModelError): the process-level crash path."""

    def _take(self, request):  # type: ignore[no-untyped-def]
        raise RuntimeError("process died mid-answer")


def test_a_crash_mid_answer_does_not_lose_the_customer_message(settings: Settings):
    with TestClient(create_app(settings, model=CrashingModel()), raise_server_exceptions=False) as client:
        conversation = new_conversation(client)
        response = client.post(
            f"/v1/conversations/{conversation}/messages", json={"content": "你们发什么快递？"}
        )
        assert response.status_code == 500
        assert "Traceback" not in response.text
        stored = client.get(f"/v1/conversations/{conversation}/messages").json()["data"]
    assert [(m["role"], m["content"]) for m in stored] == [("user", "你们发什么快递？")]


def test_pii_is_redacted_before_storage_and_before_the_model(client: TestClient, model: ScriptedModel):
    conversation = new_conversation(client)
    model.enqueue("好的。")
    ask(client, conversation, "我的手机13800138000，快递多久能到新疆？")
    stored = client.get(f"/v1/conversations/{conversation}/messages").json()["data"][0]["content"]
    assert "13800138000" not in stored and "[手机号_1]" in stored
    assert all("13800138000" not in m.content for m in model.history[-1].messages)


def test_every_turn_is_on_the_audit_chain_with_what_the_model_received(
    client: TestClient, model: ScriptedModel
):
    from kefu.audit import verify

    conversation = new_conversation(client)
    model.enqueue("好的 [1]。")  # not an answer: withheld, and the audit keeps it as the model's output
    ask(client, conversation, "我的手机13800138000，新疆、西藏这些偏远地区多久能送到？")
    ask(client, conversation, "可以用花呗吗")
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    records = list(runtime.audit.records(conversation_id=conversation))
    assert [r.kind for r in records] == ["model_call", "bot_reply"]
    call = runtime.audit.decrypt(records[0])
    assert call["input"] == [{"role": m.role, "content": m.content} for m in model.history[-1].messages]
    assert call["output"] == "好的 [1]。" and "13800138000" not in str(call)
    assert call["reply"] != call["output"] and "EMS" in call["reply"]
    assert runtime.audit.decrypt(records[1])["answer_kind"] == "faq"
    assert verify(runtime.stores.engine).ok


def test_health_and_readiness(client: TestClient):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready"
    assert ready["checks"]["database"] == "ok" and ready["checks"]["sessions"] == "ok"


def test_no_model_answers_faq_verbatim_and_never_generates(make_settings: Callable[..., Settings]):
    settings = make_settings(kb_dir=MINI_KB, llm="none")
    with TestClient(create_app(settings)) as client:
        conversation = new_conversation(client)
        faq = ask(client, conversation, "可以用花呗吗")
        assert faq["answer_kind"] == "faq" and faq["content"].startswith("支持花呗付款")
        doc = ask(client, conversation, "你们发什么快递？多久能到？")
        # the knowledge base's own sentences, cited: nothing generated
        assert doc["answer_kind"] == "grounded" and "中通" in doc["content"] and doc["citations"]
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        sentences = re.sub(r"\[\d+\]", "", doc["content"]).split("。")
        cited = " ".join(runtime.kb.get(c["chunk_id"]).text for c in doc["citations"])
        assert all(s in cited for s in sentences if s)
        assert client.get("/readyz").json()["checks"]["model"].startswith("none")
