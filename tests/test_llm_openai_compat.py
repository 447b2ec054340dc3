"""OpenAICompatModel and the fake OpenAI-compatible server, over real HTTP (uvicorn in a thread)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import openai
import pytest

from kefu.errors import ModelError, ModelUnavailable
from kefu.llm import ensure_ready
from kefu.llm.base import ChatRequest, Message
from kefu.llm.fake_server import FakeServer
from kefu.llm.openai_compat import OpenAICompatModel

REQUEST = ChatRequest(
    [Message("system", "【资料】\n[1] 配送\n订单满99元包邮。"), Message("user", "运费多少？")],
    max_tokens=50,
    temperature=0.1,
)


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
    chat = OpenAICompatModel(fake.base_url, "sk-test", "fake-model", timeout=5, max_retries=2)
    yield chat
    await chat.aclose()


async def test_complete_returns_text_usage_and_sends_the_request(
    model: OpenAICompatModel, fake: FakeServer
) -> None:
    fake.state.replies.append("满99元包邮 [1]")
    reply = await model.complete(REQUEST)
    assert reply.text == "满99元包邮 [1]"
    assert reply.model == "fake-model" and reply.finish_reason == "stop"
    assert reply.usage.completion_tokens > 0 and reply.usage.prompt_tokens > 0
    [sent] = fake.state.requests
    assert sent["messages"] == [{"role": m.role, "content": m.content} for m in REQUEST.messages]
    assert (sent["model"], sent["max_tokens"], sent["temperature"]) == ("fake-model", 50, 0.1)
    assert "stream" not in sent


async def test_stream_yields_pieces_and_a_last_chunk_with_usage(
    model: OpenAICompatModel, fake: FakeServer
) -> None:
    chunks = [chunk async for chunk in model.stream(REQUEST)]
    assert "".join(c.text for c in chunks) == "订单满99元包邮。 [1]"
    assert len(chunks) > 5
    last = chunks[-1]
    assert last.finish_reason == "stop" and last.usage is not None
    assert last.usage.completion_tokens == len(chunks) - 1  # the fake counts one token per piece
    [sent] = fake.state.requests
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


async def test_stream_estimates_usage_when_the_server_sends_none(
    model: OpenAICompatModel, fake: FakeServer
) -> None:
    fake.state.send_usage = False
    chunks = [chunk async for chunk in model.stream(REQUEST)]
    usage = chunks[-1].usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0


async def test_max_tokens_cut_is_reported_as_length(model: OpenAICompatModel, fake: FakeServer) -> None:
    fake.state.replies.append("一二三四五六七八九十")
    reply = await model.complete(ChatRequest(REQUEST.messages, max_tokens=3))
    assert (reply.text, reply.finish_reason) == ("一二三", "length")


async def test_retries_twice_after_server_errors(model: OpenAICompatModel, fake: FakeServer) -> None:
    fake.state.failures.extend([500, 500])
    reply = await model.complete(REQUEST)
    assert reply.text == "订单满99元包邮。 [1]"
    assert len(fake.state.requests) == 3


async def test_retries_a_rate_limited_stream(model: OpenAICompatModel, fake: FakeServer) -> None:
    fake.state.failures.append(429)
    chunks = [chunk async for chunk in model.stream(REQUEST)]
    assert chunks[-1].finish_reason == "stop"
    assert len(fake.state.requests) == 2


async def test_gives_up_after_max_retries_with_a_clear_error(fake: FakeServer) -> None:
    fake.state.failures.extend([503, 503])
    chat = OpenAICompatModel(fake.base_url, "k", "fake-model", timeout=5, max_retries=1)
    with pytest.raises(ModelError, match=r"server error 503 after 2 tries") as caught:
        await chat.complete(REQUEST)
    await chat.aclose()
    assert caught.value.status == 502


async def test_timeout_becomes_model_error(fake: FakeServer) -> None:
    fake.state.latency_ms = 3000
    chat = OpenAICompatModel(fake.base_url, "k", "fake-model", timeout=0.3, max_retries=0)
    with pytest.raises(ModelError, match="KEFU_LLM_TIMEOUT"):
        await chat.complete(REQUEST)
    await chat.aclose()


async def test_wrong_api_key_is_a_clear_error_at_run_time_and_start_up() -> None:
    with FakeServer(api_key="sk-right") as locked:
        chat = OpenAICompatModel(locked.base_url, "sk-wrong", "fake-model", max_retries=0)
        with pytest.raises(ModelError, match=r"API key was rejected \(401\).*KEFU_LLM_API_KEY"):
            await chat.complete(REQUEST)
        with pytest.raises(ModelUnavailable, match=r"KEFU_LLM_BASE_URL=.*KEFU_LLM_API_KEY"):
            await ensure_ready(chat)
        await chat.aclose()
        good = OpenAICompatModel(locked.base_url, "sk-right", "fake-model")
        await ensure_ready(good)
        await good.aclose()


async def test_check_names_the_base_url_when_nothing_listens() -> None:
    with FakeServer() as gone:
        url = gone.base_url
    chat = OpenAICompatModel(url, "k", "fake-model", timeout=1, max_retries=0)
    with pytest.raises(ModelUnavailable, match=f"KEFU_LLM_BASE_URL={url}.*cannot connect"):
        await chat.check()
    await chat.aclose()


async def test_check_accepts_an_unlisted_model_that_answers(fake: FakeServer) -> None:
    chat = OpenAICompatModel(fake.base_url, "k", "some-alias")
    await chat.check()
    await chat.aclose()
    assert fake.state.requests[-1]["max_tokens"] == 1


async def test_the_official_client_reads_the_fake_server(fake: FakeServer) -> None:
    client = openai.AsyncOpenAI(base_url=fake.base_url, api_key="k", max_retries=0)
    models = [m.id async for m in client.models.list()]
    assert models == ["fake-model"]
    messages: list[openai.types.chat.ChatCompletionMessageParam] = [{"role": "user", "content": "你好"}]
    done = await client.chat.completions.create(model="fake-model", messages=messages)
    assert done.choices[0].message.content == "收到：你好"
    assert done.usage is not None and done.usage.total_tokens > 0
    stream = await client.chat.completions.create(
        model="fake-model", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "收到：你好"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    await client.close()


def test_control_endpoints(fake: FakeServer) -> None:
    with httpx.Client(base_url=fake.root_url) as http:
        assert http.post("/_fake/fail", json={"status": 500, "times": 2}).json() == {
            "pending_failures": [500, 500]
        }
        assert http.post("/_fake/replies", json={"replies": ["甲", "乙"]}).json() == {"queued": 2}
        http.post("/_fake/config", json={"latency_ms": 5, "send_usage": False})
        assert (fake.state.latency_ms, fake.state.send_usage) == (5, False)
        body = {"model": "x", "messages": [{"role": "user", "content": "hi"}]}
        assert http.post("/v1/chat/completions", json=body).status_code == 500
        assert len(http.get("/_fake/requests").json()["requests"]) == 1
        http.post("/_fake/reset")
        assert http.get("/_fake/requests").json() == {"requests": []}
        assert fake.state.failures == type(fake.state.failures)() and fake.state.latency_ms == 0


async def test_an_endpoint_failing_at_start_up_is_a_warning_not_a_refusal_to_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Reachable and configured but answering 500s: kefu starts and answers from the knowledge base."""
    with FakeServer(error_rate=1) as failing:
        chat = OpenAICompatModel(failing.base_url, "k", "some-alias", max_retries=0)
        with caplog.at_level("WARNING", logger="kefu.llm"):
            await ensure_ready(chat)
        await chat.aclose()
    [line] = [r.getMessage() for r in caplog.records if r.name == "kefu.llm"]
    assert "KEFU_LLM_BASE_URL" in line and "starting anyway" in line and "/readyz" in line
