"""Slot filling by function calling: the flow's tool schema, the engine's checks on what a model proposes,
and the whole path — redacted text in, tool call out — through the chat against the fake OpenAI server.
The model may fill slots; it never decides a branch, and anything off-script is thrown away."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import MINI_KB, ask, new_conversation
from kefu.api.app import create_app
from kefu.config import Settings
from kefu.errors import ConfigError
from kefu.flows import FlowEngine
from kefu.flows.model_slots import WHOLE_CALL, ModelSlotReader, check_arguments, flow_tool, slot_reader_for
from kefu.llm.base import ChatModel, ChatRequest, Reply
from kefu.llm.fake_server import FakeServer
from kefu.llm.testing import ScriptedModel
from test_flows_fakes import PHONE, Clock, FakeOrders, make_order, specs, talk

# ----- the flow's tool ----------------------------------------------------------------------------


def test_the_return_flow_tool_is_built_from_its_questions():
    tool = flow_tool(specs()["return_exchange"])
    assert tool.name == "fill_return_exchange"
    schema = tool.parameters
    assert schema["additionalProperties"] is False and schema["required"] == []
    props = schema["properties"]
    assert set(props) == {"order_id", "phone_last4", "kind", "reason"}  # never photos
    assert props["order_id"]["pattern"] == r"^XP\d{4,}$" and props["phone_last4"]["pattern"] == r"^\d{4}$"
    assert props["reason"]["enum"] == ["no_reason", "quality"]
    assert props["kind"]["enum"] == ["return", "exchange"]


def test_confirmations_are_never_read_by_a_model():
    for name in ("cancel_order", "change_address"):
        props = flow_tool(specs()[name]).parameters["properties"]
        assert "confirm" not in props and "order_id" in props
    invoice = flow_tool(specs()["invoice"]).parameters["properties"]
    assert invoice["tax_id"]["pattern"] and invoice["title"]["minLength"] == 2


# ----- the engine's checks ------------------------------------------------------------------------

RETURNS = "return_exchange"


def check(arguments: Any, text: str) -> tuple[dict[str, Any], dict[str, str]]:
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    proposal = check_arguments(specs()[RETURNS], raw, text)
    return proposal.values, proposal.rejected


def test_values_the_message_states_are_kept():
    values, rejected = check(
        {"order_id": "xp1001", "phone_last4": "8001", "reason": "quality", "kind": None},
        "订单 xp1001，尾号 8001，耳机坏了",
    )
    assert values == {"order_id": "XP1001", "phone_last4": "8001", "reason": "quality"} and rejected == {}


def test_a_field_the_flow_does_not_define_voids_the_whole_call():
    values, rejected = check({"reason": "quality", "approve": True}, "左耳没声音")
    assert values == {} and "approve" in rejected[WHOLE_CALL]


@pytest.mark.parametrize(
    ("arguments", "text", "slot", "why"),
    [
        ({"order_id": "XP1002"}, "我要退货，订单号忘了", "order_id", "not written"),  # invented
        ({"order_id": "1001"}, "订单1001", "order_id", "not an order number"),
        ({"order_id": "XP1001; DROP"}, "XP1001; DROP", "order_id", "not an order number"),
        ({"phone_last4": "1013"}, "订单XP1013", "phone_last4", "standing alone"),  # from the order id
        ({"phone_last4": "80011"}, "80011", "phone_last4", "standing alone"),
        ({"reason": "refund_now"}, "马上退款", "reason", "allowed values"),
        ({"kind": 1}, "退货", "kind", "not a string"),
    ],
)
def test_values_that_fail_the_checks_are_dropped(arguments: dict, text: str, slot: str, why: str):
    values, rejected = check(arguments, text)
    assert slot not in values and why in rejected[slot]


@pytest.mark.parametrize("raw", ["not json", "[1, 2]", '"XP1001"'])
def test_arguments_that_are_not_an_object_are_refused(raw: str):
    assert check(raw, "XP1001") == ({}, {WHOLE_CALL: check(raw, "XP1001")[1][WHOLE_CALL]})
    assert WHOLE_CALL in check(raw, "XP1001")[1]


# ----- the engine with a model -------------------------------------------------------------------


def flows_with(model: ScriptedModel, erp: FakeOrders) -> FlowEngine:
    return FlowEngine(specs(), erp, Clock(), slot_reader=ModelSlotReader(model))


def test_the_model_reads_a_reason_the_word_lists_miss():
    erp, model = FakeOrders(make_order(delivered_days_ago=8)), ScriptedModel()
    flows = flows_with(model, erp)
    turns = talk(flows, RETURNS, "我要退货", "XP10023", PHONE)
    assert turns[-1].state.step == "ask_reason"
    model.enqueue_tool_call("fill_return_exchange", {"reason": "quality"})
    asked = flows.advance(turns[-1].state, "左耳时有时无，偶尔滋滋响")
    assert asked.state.slots["reason"] == "quality" and asked.state.step == "ask_photos"
    sent = model.history[-1]
    assert sent.tool_choice == "fill_return_exchange" and sent.tools == [flow_tool(specs()[RETURNS])]
    assert sent.messages[-1].content == "左耳时有时无，偶尔滋滋响"
    assert "请问是什么原因" in sent.messages[0].content  # the question the customer answers
    assert erp.calls_to("create_return") == []  # day 8: the photos are still the engine's condition


def test_deterministic_answers_do_not_ask_the_model():
    erp, model = FakeOrders(make_order(delivered_days_ago=5)), ScriptedModel()
    turns = talk(flows_with(model, erp), RETURNS, "我要退货", "XP10023", PHONE, "不想要了")
    assert turns[-1].outcome == "completed"
    assert len(model.history) == 1  # only the flow's first message


def test_an_invented_order_id_never_reaches_the_order_system():
    erp, model = FakeOrders(make_order("XP10023")), ScriptedModel()
    model.enqueue_tool_call("fill_return_exchange", {"order_id": "XP10023", "kind": "exchange"})
    first = flows_with(model, erp).start(RETURNS, "c1", "订单号我忘了，耳机的事想处理一下")
    assert first.state.step == "ask_order" and "order_id" not in first.state.slots
    assert first.state.slots["kind"] == "exchange"  # the valid part of the call is kept
    assert erp.calls_to("get_order") == []
    [note] = [h for h in first.state.history if h["event"] == "model_read"]
    assert "order_id" in note["rejected"] and note["filled"] == ["kind"]


def test_a_call_with_an_extra_field_changes_nothing():
    erp, model = FakeOrders(make_order(delivered_days_ago=8)), ScriptedModel()
    flows = flows_with(model, erp)
    turns = talk(flows, RETURNS, "我要退货", "XP10023", PHONE)
    model.enqueue_tool_call(
        "fill_return_exchange", {"reason": "quality", "photos": ["x.jpg"], "approve": True}
    )
    again = flows.advance(turns[-1].state, "别问了，直接批准")
    assert again.state.step == "ask_reason" and "reason" not in again.state.slots
    assert erp.calls_to("create_return") == []


def test_a_failing_model_leaves_the_deterministic_path():
    erp, model = FakeOrders(make_order(delivered_days_ago=5)), ScriptedModel()
    model.fail_next()
    turns = talk(flows_with(model, erp), RETURNS, "XP10023 想退货", PHONE, "不想要了")
    assert turns[-1].outcome == "completed" and len(erp.calls_to("create_return")) == 1


# ----- when the reader is on ---------------------------------------------------------------------


class NoTools(ChatModel):
    async def complete(self, request: ChatRequest) -> Reply:
        return Reply("", "none")


def test_auto_means_openai_only(make_settings: Callable[..., Settings]):
    assert slot_reader_for(make_settings(llm="scripted"), ScriptedModel()) is None
    assert slot_reader_for(make_settings(llm="openai", llm_tools="off"), ScriptedModel()) is None
    assert isinstance(slot_reader_for(make_settings(llm="openai"), ScriptedModel()), ModelSlotReader)
    assert slot_reader_for(make_settings(llm="openai"), NoTools()) is None
    assert isinstance(slot_reader_for(make_settings(llm_tools="on"), ScriptedModel()), ModelSlotReader)
    with pytest.raises(ConfigError, match="KEFU_LLM_TOOLS=on"):
        slot_reader_for(make_settings(llm_tools="on"), NoTools())
    with pytest.raises(ConfigError, match="KEFU_LLM_TOOLS"):
        slot_reader_for(make_settings(llm="none", llm_tools="on"), None)


# ----- through the chat, against the fake OpenAI server -------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    with FakeServer() as running:
        yield running


@pytest.fixture
def fake(server: FakeServer) -> FakeServer:
    server.reset()
    return server


@pytest.fixture
def shop(make_settings: Callable[..., Settings], fake: FakeServer) -> Iterator[TestClient]:
    settings = make_settings(
        kb_dir=MINI_KB, demo_erp=True, llm="openai", llm_base_url=fake.base_url, llm_model="fake-model"
    )
    with TestClient(create_app(settings)) as client:
        yield client


def tool_requests(fake: FakeServer) -> list[dict[str, Any]]:
    return [r for r in fake.state.requests if r.get("tools")]


def erp_requests(client: TestClient) -> list[tuple[str, str]]:
    erp = client.app.state.runtime.assistant.flows.orders.inner.server  # type: ignore[attr-defined]
    return [(r["method"], r["path"]) for r in erp.requests]


def test_the_model_gets_the_flow_schema_and_redacted_text(shop: TestClient, fake: FakeServer):
    conversation = new_conversation(shop)
    first = ask(shop, conversation, "我的手机号13812348001，订单XP1013到哪了")
    assert first["answer_kind"] == "flow" and "后 4 位" in first["content"]
    [sent] = tool_requests(fake)
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "fill_order_status"}}
    [tool] = sent["tools"]
    assert tool["function"]["parameters"]["properties"]["order_id"]["pattern"] == r"^XP\d{4,}$"
    assert tool["function"]["parameters"]["additionalProperties"] is False
    customer = sent["messages"][-1]["content"]
    assert "[手机号_1]" in customer and "13812348001" not in json.dumps(fake.state.requests)
    last = ask(shop, conversation, "尾号8001")
    assert "运单号" in last["content"]


def test_a_reason_read_by_the_model_creates_the_return(shop: TestClient, fake: FakeServer):
    conversation = new_conversation(shop)
    for text in ("耳机收到5天了想退", "XP1001", "8001"):
        ask(shop, conversation, text)
    fake.state.tool_calls.append({"arguments": {"reason": "quality"}})
    done = ask(shop, conversation, "左耳时有时无")
    assert "售后单号 RT" in done["content"]
    assert ("POST", "/orders/XP1001/returns") in erp_requests(shop)
    sent = tool_requests(fake)[-1]
    assert sent["messages"][-1]["content"] == "左耳时有时无"
    assert sent["tools"][0]["function"]["parameters"]["properties"]["reason"]["enum"] == [
        "no_reason",
        "quality",
    ]


def test_malicious_arguments_move_nothing(shop: TestClient, fake: FakeServer):
    conversation = new_conversation(shop)
    fake.state.tool_calls.append({"arguments": {"order_id": "XP1002"}})  # not what the customer wrote
    first = ask(shop, conversation, "我要退货")
    assert "订单号" in first["content"]
    for text in ("XP1002", "9002"):
        ask(shop, conversation, text)
    fake.state.tool_calls.append({"arguments": {"reason": "quality", "approve": True}})
    again = ask(shop, conversation, "直接给我批准退款")
    assert "RT" not in again["content"] and "原因" in again["content"]
    assert not any(path.endswith("/returns") for _, path in erp_requests(shop))
    runtime = shop.app.state.runtime  # type: ignore[attr-defined]
    calls = [
        runtime.audit.decrypt(r)
        for r in runtime.audit.records(conversation_id=conversation)
        if r.kind == "model_call"
    ]
    assert [c["accepted"] for c in calls] == [[], []]
    assert "order_id" in calls[0]["rejected"] and "approve" in calls[1]["rejected"]["(call)"]
