"""Single flight (llm/singleflight.py) over a real OpenAI-compatible server (kefu's fake, over HTTP):
identical requests in flight make one call, different ones do not, streams are shared from their first
chunk, errors reach every waiter, and a router keeps its routes with each of its models wrapped."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kefu.errors import ModelError
from kefu.llm.base import ChatRequest, Message
from kefu.llm.fake_server import FAKE_MODEL, FakeServer
from kefu.llm.openai_compat import OpenAICompatModel
from kefu.llm.singleflight import SingleFlightModel, single_flight

REPLY = "我们默认使用中通快递发货，江浙沪一般一到两天送达。"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    with FakeServer() as running:
        yield running


@pytest.fixture
def fake(server: FakeServer) -> Iterator[FakeServer]:
    server.reset()
    httpx.post(f"{server.root_url}/_fake/replies", json={"replies": [REPLY] * 10})
    yield server
    server.reset()


def configure(fake: FakeServer, **values: Any) -> None:
    assert httpx.post(f"{fake.root_url}/_fake/config", json=values).status_code == 200


def received(fake: FakeServer) -> list[dict[str, Any]]:
    return list(httpx.get(f"{fake.root_url}/_fake/requests").json()["requests"])


def request(question: str = "你们发什么快递？", temperature: float = 0.2) -> ChatRequest:
    return ChatRequest(
        messages=[Message("system", "你是客服。"), Message("user", question)], temperature=temperature
    )


def model_for(fake: FakeServer) -> SingleFlightModel:
    return SingleFlightModel(OpenAICompatModel(fake.base_url, "k", FAKE_MODEL, timeout=10, max_retries=0))


async def test_identical_requests_in_flight_make_one_call_and_count_its_tokens_once(fake: FakeServer) -> None:
    configure(fake, latency_ms=200)
    model = model_for(fake)
    try:
        replies = await asyncio.gather(*(model.complete(request()) for _ in range(5)))
    finally:
        await model.aclose()
    assert len(received(fake)) == 1 and model.shared == 4
    assert {r.text for r in replies} == {REPLY}
    assert sorted(r.usage.total_tokens > 0 for r in replies) == [False] * 4 + [True]


async def test_different_requests_are_never_shared(fake: FakeServer) -> None:
    model = model_for(fake)
    try:
        await asyncio.gather(
            model.complete(request()),
            model.complete(request("耳机保修多久")),
            model.complete(request(temperature=0.7)),
        )
        await model.complete(request())  # the first call has ended: a new one
    finally:
        await model.aclose()
    asked = [(r["messages"][-1]["content"], r.get("temperature")) for r in received(fake)]
    assert sorted(asked) == sorted(
        [
            ("你们发什么快递？", 0.2),
            ("耳机保修多久", 0.2),
            ("你们发什么快递？", 0.7),
            ("你们发什么快递？", 0.2),
        ]
    )
    assert model.shared == 0


async def test_a_stream_is_shared_from_its_first_chunk_even_by_a_late_reader(fake: FakeServer) -> None:
    configure(fake, tokens_per_second=20)  # the reply takes about a second
    model = model_for(fake)

    async def read(early_stop: bool = False) -> str:
        text = ""
        async for chunk in model.stream(request()):
            text += chunk.text
            if early_stop and text:
                break  # this reader gives up: the others keep reading
        return text

    async def late() -> str:
        while not model._streams:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # some chunks have gone by
        return await read()

    try:
        texts = await asyncio.gather(read(), read(early_stop=True), late())
    finally:
        await model.aclose()
    assert len(received(fake)) == 1 and model.shared == 2
    assert texts[0] == REPLY and texts[2] == REPLY and REPLY.startswith(texts[1])


async def test_a_failed_call_fails_every_identical_waiter(fake: FakeServer) -> None:
    httpx.post(f"{fake.root_url}/_fake/fail", json={"status": 500, "times": 1})
    configure(fake, latency_ms=100)
    model = model_for(fake)
    try:
        results = await asyncio.gather(*(model.complete(request()) for _ in range(3)), return_exceptions=True)
        after = await model.complete(request())  # nothing is kept: the next call is a new one
    finally:
        await model.aclose()
    assert all(isinstance(r, ModelError) for r in results), results
    assert after.text == REPLY and len(received(fake)) == 2


def test_a_router_keeps_its_routes_with_each_model_wrapped_once(fake: FakeServer) -> None:
    from kefu.config import Settings
    from kefu.llm.routing import DEFAULT_ROUTE, ModelRouter, single_matrix

    inner = OpenAICompatModel(fake.base_url, "k", FAKE_MODEL)
    router = ModelRouter(single_matrix(Settings(llm="none")), {DEFAULT_ROUTE: inner})
    assert single_flight(router) is router
    wrapped = router.models[DEFAULT_ROUTE]
    assert isinstance(wrapped, SingleFlightModel) and wrapped.inner is inner
    assert single_flight(wrapped) is wrapped and single_flight(None) is None
    plain = single_flight(inner)
    assert isinstance(plain, SingleFlightModel) and plain.describe() == inner.describe()
