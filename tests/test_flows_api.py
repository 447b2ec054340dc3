"""Order flows through the chat, against the built-in demo ERP: identity first, policy decided by the
flow engine (never by the model), one return order however often the customer retries."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from conftest import MINI_KB, ask, new_conversation
from kefu.api.app import create_app
from kefu.config import Settings
from kefu.llm.testing import ScriptedModel


@pytest.fixture
def shop(make_settings: Callable[..., Settings], model: ScriptedModel) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(kb_dir=MINI_KB, demo_erp=True), model=model)) as client:
        yield client


def chat(client: TestClient, *texts: str) -> tuple[str, list[dict]]:
    conversation = new_conversation(client)
    return conversation, [ask(client, conversation, text) for text in texts]


def returns_of(client: TestClient, order_id: str) -> int:
    erp = client.app.state.runtime.assistant.flows.orders.inner.server  # type: ignore[attr-defined]
    return int(erp.store.count("returns", order_id=order_id))  # the demo ERP's own database


def test_order_status_asks_for_identity_before_showing_anything(shop: TestClient, model: ScriptedModel):
    _, replies = chat(shop, "我的订单到哪了", "XP1013", "1234", "8001")
    assert [r["answer_kind"] for r in replies] == ["flow"] * 4
    assert "订单号" in replies[0]["content"] and "后 4 位" in replies[1]["content"]
    assert "SF" not in replies[2]["content"]  # a wrong last-4 shows nothing of the order
    assert "XP1013" in replies[3]["content"] and "运单号" in replies[3]["content"]
    assert model.history == []  # the model neither decided nor phrased any of it


def test_eight_days_after_delivery_a_quality_return_goes_to_a_person_who_checks_the_photos(shop: TestClient):
    """The chat carries no pictures yet: 「照片已上传」 is a claim, so a person checks the photos."""
    _, replies = chat(shop, "耳机收到8天了想退", "XP1002", "9002", "耳机有杂音，质量问题", "照片已上传")
    assert "照片" in replies[3]["content"] and replies[3]["answer_kind"] == "flow"
    assert replies[4]["answer_kind"] == "handoff" and "人工客服" in replies[4]["content"]
    assert "RT" not in replies[4]["content"] and returns_of(shop, "XP1002") == 0


def test_eight_days_without_a_quality_problem_is_refused_by_policy(shop: TestClient):
    _, replies = chat(shop, "耳机收到8天了想退", "XP1002", "9002", "不想要了")
    assert "RT" not in replies[-1]["content"] and "人工" in replies[-1]["content"]
    assert returns_of(shop, "XP1002") == 0


def test_five_days_issues_one_return_order_however_often_the_request_is_retried(shop: TestClient):
    conversation, replies = chat(shop, "耳机收到5天了想退", "XP1001", "8001", "不想要了")
    return_id = replies[-1]["content"].split("售后单号 ")[1].split("。")[0]
    assert return_id.startswith("RT")
    ask(shop, conversation, "不想要了")  # the client re-sends the last message
    assert returns_of(shop, "XP1001") == 1
    history = shop.get(f"/v1/conversations/{conversation}/messages").json()["data"]
    assert sum(return_id in m["content"] for m in history) == 1


def test_the_flow_resumes_after_a_restart(make_settings: Callable[..., Settings]):
    settings = make_settings(kb_dir=MINI_KB, demo_erp=True)
    with TestClient(create_app(settings, model=ScriptedModel())) as first:
        conversation, _ = chat(first, "我的订单到哪了", "XP1013")
    settings = make_settings(kb_dir=MINI_KB, demo_erp=True)  # a new process: same data dir
    with TestClient(create_app(settings, model=ScriptedModel())) as second:
        reply = ask(second, conversation, "8001")
    assert reply["answer_kind"] == "flow" and "运单号" in reply["content"]


def test_without_an_order_system_order_questions_are_not_flows(client: TestClient):
    _, replies = chat(client, "我的订单到哪了")
    assert replies[0]["answer_kind"] != "flow"


def test_every_order_system_call_is_on_the_audit_chain(shop: TestClient):
    from kefu.audit import verify

    conversation, replies = chat(shop, "耳机收到5天了想退", "XP1001", "0000", "8001", "不想要了")
    runtime = shop.app.state.runtime  # type: ignore[attr-defined]
    calls = [
        runtime.audit.decrypt(r)
        for r in runtime.audit.records(conversation_id=conversation)
        if r.kind == "tool_call"
    ]
    tools = [(c["tool"], c["ok"]) for c in calls]
    assert ("orders.verify", True) in tools and ("orders.create_return", True) in tools
    verifications = [c for c in calls if c["tool"] == "orders.verify"]
    assert [c["result"] for c in verifications] == [False, True]  # the wrong digits, then the right ones
    assert all("0000" not in str(c) and "8001" not in str(c) for c in verifications)  # digits never logged
    created = next(c for c in calls if c["tool"] == "orders.create_return")
    assert created["result"]["return_id"] in replies[-1]["content"]
    assert created["args"]["idempotency_key"]
    assert verify(runtime.stores.engine).ok


def test_an_acknowledgement_answers_a_flow_but_is_small_talk_after_it(shop: TestClient, model: ScriptedModel):
    """「确认」 while a flow waits for it is the flow's answer; 「好的」 after the flow ended is small talk
    — not a question for the knowledge base and the model (which once read a return number back as a
    tracking number)."""
    _, replies = chat(shop, "我要取消订单", "XP1016", "9002", "确认", "好的")
    assert [r["answer_kind"] for r in replies] == ["flow", "flow", "flow", "flow", "smalltalk"]
    assert "已取消" in replies[3]["content"]
    assert "其他需要帮您" in replies[4]["content"] and replies[4]["citations"] == []
    assert model.history == []


def test_small_talk_in_the_middle_of_a_flow_keeps_the_flow_waiting(shop: TestClient, model: ScriptedModel):
    _, replies = chat(shop, "我的订单到哪了", "谢谢", "XP1013", "8001")
    assert [r["answer_kind"] for r in replies] == ["flow", "smalltalk", "flow", "flow"]
    assert "后 4 位" in replies[2]["content"] and "运单号" in replies[3]["content"]
    assert model.history == []
