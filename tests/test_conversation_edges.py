"""The edges of a conversation, through the real app with the demo ERP over HTTP: a question about a
policy is not a request to start a flow, a question asked in the middle of a flow is answered while the
flow waits, a complaint escalates, a typed claim is not evidence, a handoff says one coherent thing, an
order lookup uses the identifiers the message already holds, and nobody is shown internal names."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import faq_shop, new_conversation
from kefu.config import Settings
from kefu.dialog.router import route, wants_to_complain
from kefu.llm.testing import ScriptedModel

# FAQ entries of the demo shop (src/kefu/demo_shop/faq/faq_zh.json), word for word
FAQ = [
    {"id": "ret-005", "question": "退款多久到账？",
     "answer": "仓库收到退货后 48 小时内完成验收，验收通过后 3–5 个工作日内原路退回原支付账户。",
     "similar": ["钱什么时候退回来", "退款要几天", "退货了钱啥时候到"]},
    {"id": "ret-006", "question": "退货运费谁出？",
     "answer": "7 天无理由退货的寄回运费由买家承担。质量问题、发错货或破损的退货，来回运费都由小铺优选承担。",
     "similar": ["退货要自己出运费吗", "寄回去的邮费谁付"]},
    {"id": "exch-002", "question": "换货的运费怎么算？",
     "answer": "换尺码、换颜色的寄回运费由买家承担，我们寄出新商品包邮。质量问题、发错货的换货，来回运费都由小铺优选承担。",
     "similar": ["换货要出邮费吗", "换码运费谁出"]},
    {"id": "ret-002", "question": "7 天退货期是从哪天开始算？",
     "answer": "从签收次日开始计算，签收当天不计入，以物流签收时间为准。",
     "similar": ["七天怎么算的", "几天内可以退", "从哪天开始算七天"]},
    {"id": "con-003", "question": "我要投诉，怎么处理？",
     "answer": "可以在在线客服中输入「投诉」，或拨打客服热线 400-886-5200。",
     "similar": ["我要投诉", "服务太差了找谁"]},
]  # fmt: skip
INTERNAL = re.compile(r"outcome=|reason=|[a-z]+_[a-z_]+|\{|\}|\bslots?\.")


@pytest.fixture
def shop(
    make_settings: Callable[..., Settings], model: ScriptedModel, tmp_path: Path
) -> Iterator[TestClient]:
    with faq_shop(make_settings, model, tmp_path / "kb", FAQ) as client:
        yield client


def say(client: TestClient, conversation_id: str, text: str) -> dict[str, Any]:
    response = client.post(f"/v1/conversations/{conversation_id}/messages", json={"content": text})
    assert response.status_code == 200, response.text
    return dict(response.json())


def talk(client: TestClient, *texts: str) -> tuple[str, list[dict[str, Any]]]:
    conversation = new_conversation(client)
    return conversation, [say(client, conversation, text) for text in texts]


def sign_in(client: TestClient) -> dict[str, str]:
    client.app.state.runtime.handoffs.store.ensure_agent("ann", "Ann", "password-1")  # type: ignore[attr-defined]
    token = client.post("/v1/agent/login", json={"username": "ann", "password": "password-1"}).json()["token"]
    return {"Authorization": f"Bearer {token}"}


def queued(client: TestClient) -> list[dict[str, Any]]:
    response = client.get("/v1/agent/queue", headers=sign_in(client))
    assert response.status_code == 200, response.text
    return list(response.json()["handoffs"])


def returns_of(client: TestClient, order_id: str) -> int:
    erp = client.app.state.runtime.assistant.flows.orders.inner.server  # type: ignore[attr-defined]
    return int(erp.store.count("returns", order_id=order_id))


# --- a question about a policy is a knowledge question -------------------------------------------


@pytest.mark.parametrize("text", ["换货运费谁出？", "退货要多久到账", "几天内可以退", "退款多久到账？"])
def test_a_question_about_a_policy_goes_to_the_knowledge_base_not_to_a_flow(shop: TestClient, text: str):
    _, [reply] = talk(shop, text)
    assert reply["answer_kind"] in ("faq", "grounded"), reply["message"]["content"]
    assert "订单号" not in reply["message"]["content"]
    assert reply["message"]["citations"]


@pytest.mark.parametrize("text", ["我要换货", "帮我退了这个订单", "耳机收到8天了想退，可以吗？"])
def test_a_request_of_the_customers_own_starts_the_flow(shop: TestClient, text: str):
    _, [reply] = talk(shop, text)
    assert reply["answer_kind"] == "flow" and "订单号" in reply["message"]["content"]


# --- a question in the middle of a flow ----------------------------------------------------------


def test_a_question_in_the_middle_of_a_flow_is_answered_and_the_flow_keeps_waiting(
    shop: TestClient, model: ScriptedModel
):
    _, replies = talk(shop, "我要退货", "退款多久到账？", "XP1001", "8001", "不想要了")
    kinds = [r["answer_kind"] for r in replies]
    assert kinds == ["flow", "faq", "flow", "flow", "flow"], kinds
    aside = replies[1]["message"]["content"]
    assert aside.startswith("仓库收到退货后 48 小时内") and "订单号" in aside  # the answer, then a reminder
    assert "后 4 位" in replies[2]["message"]["content"]  # the flow went on from where it waited
    assert "售后单号 RT" in replies[4]["message"]["content"] and returns_of(shop, "XP1001") == 1
    assert model.history == []


def test_an_answer_to_the_flows_question_is_never_taken_for_an_aside(shop: TestClient):
    _, replies = talk(shop, "我的订单到哪了", "XP1013？", "8001")
    assert [r["answer_kind"] for r in replies] == ["flow"] * 3
    assert "运单号" in replies[2]["message"]["content"]


def test_a_question_while_a_yes_or_no_is_awaited_does_not_confirm_anything(shop: TestClient):
    """「要多久？」 begins with 要 (yes): it must not confirm a cancellation."""
    _, replies = talk(shop, "我要取消订单", "XP1016", "9002", "要多久？", "确认")
    assert replies[3]["answer_kind"] != "flow" and "已取消" not in replies[3]["message"]["content"]
    assert "已取消" in replies[4]["message"]["content"]


# --- a complaint escalates -----------------------------------------------------------------------


@pytest.mark.parametrize("text", ["我要投诉", "再不处理我就打12315", "I want to file a complaint"])
def test_a_complaint_is_handed_to_a_person_with_an_apology(shop: TestClient, text: str):
    _, [reply] = talk(shop, text)
    assert reply["answer_kind"] == "handoff" and reply["handoff"]["reason"] == "complaint"
    content = reply["message"]["content"]
    assert content.startswith(("非常抱歉", "I'm very sorry")), content
    assert not re.search(r"[.!?][A-Z]", content), content  # "seriously. I've passed you…"
    [handoff] = queued(shop)
    assert handoff["priority"] == 2 and handoff["reason"] == "complaint"


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("我要投诉", True), ("投诉", True), ("不给退我就给你们差评", True), ("我要投诉，怎么处理？", True),
        ("再不处理我就打12315", True), ("I want to file a complaint", True), ("I'm going to complain", True),
        ("我不是要投诉，就问下退款多久到账？", False), ("这款耳机差评多吗？", False), ("No complaints here", False),
        ("投诉一般多久给结果", False), ("投诉电话多少？", False), ("How do I file a complaint?", False),
    ],
)  # fmt: skip
def test_what_counts_as_a_complaint(text: str, complaint: bool):
    assert wants_to_complain(text) is complaint


# --- evidence ------------------------------------------------------------------------------------


def test_a_typed_claim_of_photos_is_not_evidence_a_person_checks_them(shop: TestClient):
    _, replies = talk(shop, "耳机收到8天了想退", "XP1002", "9002", "耳机有杂音，质量问题，照片已上传")
    last = replies[-1]
    assert last["answer_kind"] == "handoff" and returns_of(shop, "XP1002") == 0
    assert "照片" in last["message"]["content"] and "人工客服" in last["message"]["content"]
    [handoff] = queued(shop)
    assert "照片" in handoff["summary"]


# --- one coherent handoff message ----------------------------------------------------------------


def test_a_handoff_message_does_not_also_offer_to_transfer(shop: TestClient):
    _, replies = talk(shop, "耳机收到8天了想退", "XP1002", "9002", "不想要了")
    content = replies[-1]["message"]["content"]
    assert replies[-1]["answer_kind"] == "handoff"
    assert "7 天" in content and "已为您转接人工客服" in content
    assert "可以为您转接" not in content and content.count("转接") == 1, content


# --- identifiers already in the message ----------------------------------------------------------


def test_an_order_lookup_with_a_resident_id_in_it_starts_the_order_flow(shop: TestClient):
    _, [reply] = talk(shop, "我的身份证是110101199003074578，帮我查下订单")
    assert reply["answer_kind"] == "flow" and "订单号" in reply["message"]["content"]
    assert "110101199003074578" not in reply["message"]["content"]


def test_an_order_lookup_uses_the_order_number_and_phone_digits_it_was_given(shop: TestClient):
    _, [reply] = talk(shop, "帮我查下订单 XP1013 手机尾号 8001")
    assert reply["answer_kind"] == "flow" and "运单号" in reply["message"]["content"]


# --- no internals --------------------------------------------------------------------------------


def test_the_agent_sees_why_in_words_never_internal_names(shop: TestClient):
    talk(shop, "耳机收到8天了想退", "XP1002", "9002", "不想要了")
    [handoff] = queued(shop)
    summary = handoff["summary"]
    assert "超过 7 天无理由退货期" in summary and "XP1002" in summary
    assert not INTERNAL.search(summary), summary


def test_every_reason_a_flow_or_the_desk_can_give_has_words_in_both_languages():
    import kefu.flows.engine
    from kefu.dialog.handoff import PRIORITY
    from kefu.dialog.handoff_views import FLOW_NAMES, FLOW_REASONS
    from kefu.flows import demo_flows
    from kefu.flows.spec import Handoff

    specs = demo_flows()
    assert set(FLOW_NAMES) == set(specs)
    in_flows = {s.reason for spec in specs.values() for s in spec.steps.values() if isinstance(s, Handoff)}
    source = Path(kefu.flows.engine.__file__).read_text(encoding="utf-8")
    in_engine = set(re.findall(r'_stop\([^)]*"(\w+)"\)', source)) | set(
        re.findall(r'"reason": "(\w+)"', source)
    )
    assert in_engine and in_flows - set(FLOW_REASONS) == set() and in_engine - set(FLOW_REASONS) == set()
    console = (Path(kefu.flows.engine.__file__).parents[1] / "web" / "static" / "agent.js").read_text("utf-8")
    assert all(console.count(f"reason_{reason}:") == 2 for reason in PRIORITY if reason != "vip")


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("人工客服几点下班", "knowledge"), ("金卡会员找人工有优先吗", "knowledge"),
        ("What time do your agents start?", "knowledge"), ("晚上十点了，现在还能找到真人吗？", "knowledge"),
        ("It's 11pm. Can I talk to a person right now?", "knowledge"), ("现在能找到真人吗？", "human"),
        ("能转人工吗", "human"), ("怎么转人工", "human"), ("可以帮我转真人吗", "human"), ("转人工，我要投诉", "complaint"),
    ],
)  # fmt: skip
def test_a_question_about_the_human_service_is_not_a_request_for_it(text: str, kind: str):
    assert route(text) == kind


def test_a_stored_flow_that_is_no_longer_loaded_is_dropped_without_showing_its_name(shop: TestClient):
    conversation, _ = talk(shop, "我的订单到哪了")
    sessions = shop.app.state.runtime.assistant.sessions  # type: ignore[attr-defined]
    state = sessions.load(conversation)
    state.flow = state.flow.replace('"flow": "order_status"', '"flow": "retired_flow"')
    sessions.save(state)
    reply = say(shop, conversation, "退款多久到账？")
    assert reply["answer_kind"] == "faq" and "retired_flow" not in reply["message"]["content"]
    assert "订单号" not in reply["message"]["content"]  # no reminder of a flow that is gone
    assert sessions.load(conversation).flow is None
