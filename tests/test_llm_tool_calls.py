"""Function calling through the model seam: OpenAICompatModel sends ``tools`` / ``tool_choice`` and reads
tool calls (whole and streamed) from the fake OpenAI server, which answers them deterministically or from
its queue and records what it received; the scripted model does the same in process."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from kefu.llm.base import ChatRequest, Message, Tool
from kefu.llm.fake_server import FakeServer
from kefu.llm.openai_compat import OpenAICompatModel
from kefu.llm.testing import ScriptedModel

TOOL = Tool(
    "fill_order",
    "Record what the customer states.",
    {
        "type": "object",
        "properties": {
            "order_id": {"type": "string", "pattern": r"^XP\d{4,}$"},
            "phone_last4": {"type": "string", "pattern": r"^\d{4}$"},
            "kind": {"type": "string", "enum": ["return", "exchange"]},
        },
        "additionalProperties": False,
    },
)
REQUEST = ChatRequest(
    [Message("system", "extract"), Message("user", "order XP1013, phone ending 8001, exchange please")],
    max_tokens=100,
    temperature=0,
    tools=[TOOL],
    tool_choice="fill_order",
)
EXPECTED = {"order_id": "XP1013", "phone_last4": "8001", "kind": "exchange"}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    with FakeServer() as running:
        yield running


@pytest.fixture
def fake(server: FakeServer) -> FakeServer:
    server.reset()
    return server


@pytest.fixture
async def model(fake: FakeServer) -> AsyncIterator[OpenAICompatModel]:
    chat = OpenAICompatModel(fake.base_url, "sk-test", "fake-model", timeout=5, max_retries=0)
    yield chat
    await chat.aclose()


async def test_complete_sends_the_tools_and_reads_the_call(model: OpenAICompatModel, fake: FakeServer):
    reply = await model.complete(REQUEST)
    assert reply.finish_reason == "tool_calls" and reply.text == ""
    [call] = reply.tool_calls
    assert call.name == "fill_order" and json.loads(call.arguments) == EXPECTED
    [sent] = fake.state.requests
    assert sent["tools"] == [
        {"type": "function", "function": {"name": "fill_order", "description": TOOL.description, "parameters": TOOL.parameters}}
    ]  # fmt: skip
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "fill_order"}}
    assert reply.usage.completion_tokens > 0


async def test_a_streamed_call_is_assembled_on_the_last_chunk(model: OpenAICompatModel, fake: FakeServer):
    chunks = [chunk async for chunk in model.stream(REQUEST)]
    assert all(not c.tool_calls for c in chunks[:-1]) and "".join(c.text for c in chunks) == ""
    last = chunks[-1]
    assert last.finish_reason == "tool_calls" and last.usage is not None
    [call] = last.tool_calls
    assert call.name == "fill_order" and json.loads(call.arguments) == EXPECTED
    assert fake.state.requests[0]["stream"] is True


async def test_queued_calls_come_first_even_when_invalid(model: OpenAICompatModel, fake: FakeServer):
    with httpx.Client(base_url=fake.root_url) as http:
        queued = [{"arguments": {"order_id": "XP9999", "approve": True}}, {"arguments": "not json"}]
        assert http.post("/_fake/tool_calls", json={"tool_calls": queued}).json() == {"queued": 2}
    first, second, third = [await model.complete(REQUEST) for _ in range(3)]
    assert json.loads(first.tool_calls[0].arguments) == {"order_id": "XP9999", "approve": True}
    assert first.tool_calls[0].name == "fill_order"  # the forced tool's name by default
    assert second.tool_calls[0].arguments == "not json"
    assert json.loads(third.tool_calls[0].arguments) == EXPECTED  # the queue is empty again


async def test_tool_requests_leave_queued_text_replies_alone(model: OpenAICompatModel, fake: FakeServer):
    fake.state.replies.append("满99元包邮")
    await model.complete(REQUEST)
    plain = await model.complete(ChatRequest([Message("user", "运费？")]))
    assert plain.text == "满99元包邮" and plain.tool_calls == []
    assert "tools" not in fake.state.requests[-1]


async def test_tool_choice_none_and_auto_go_out_as_words(model: OpenAICompatModel, fake: FakeServer):
    none = await model.complete(ChatRequest(REQUEST.messages, tools=[TOOL], tool_choice="none"))
    assert none.tool_calls == [] and none.text
    await model.complete(ChatRequest(REQUEST.messages, tools=[TOOL], tool_choice="auto"))
    assert [r.get("tool_choice") for r in fake.state.requests] == ["none", "auto"]


async def test_the_scripted_model_answers_tool_requests_alike():
    model = ScriptedModel(["文字回复"])
    reply = await model.complete(REQUEST)
    assert json.loads(reply.tool_calls[0].arguments) == EXPECTED
    model.enqueue_tool_call("fill_order", {"kind": "refund_now"})
    streamed = [c async for c in model.stream(REQUEST)]
    assert json.loads(streamed[-1].tool_calls[0].arguments) == {"kind": "refund_now"}
    assert (await model.complete(ChatRequest([Message("user", "hi")]))).text == "文字回复"
    assert [r.tools for r in model.history] == [[TOOL], [TOOL], []]
