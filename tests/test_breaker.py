"""Circuit breakers, the fallback chain and the fake model server's fault modes (issue #10 §4, §7).

The state machine runs on an injected clock; everything else runs against a real ``FakeServer`` over
HTTP: 500s, a hung server and a stream cut mid-way each end in the knowledge base's sentences or the
polite fallback reply — never a 500 — and an open breaker keeps later calls off the server."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from conftest import MINI_KB, new_conversation
from kefu.api.app import create_app
from kefu.config import Settings
from kefu.dialog import prompts
from kefu.errors import ConfigError, ModelError
from kefu.llm import build_chat_model
from kefu.llm.base import ChatRequest, Message
from kefu.llm.breaker import BreakerModel, BreakerOpen, CircuitBreaker, FallbackChain
from kefu.llm.fake_server import FAKE_MODEL, FakeServer
from kefu.llm.openai_compat import OpenAICompatModel

QUESTION = "你们发什么快递？多久能到？"  # answered from docs/shipping.md (not an FAQ entry)
REQUEST = ChatRequest(messages=[Message("user", "在吗")])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- the state machine ---------------------------------------------------------------------------


def breaker(clock: Clock, **options: Any) -> CircuitBreaker:
    values: dict[str, Any] = {"failure_rate": 0.5, "min_calls": 4, "window": 60, "cooldown": 30}
    values.update(options)
    return CircuitBreaker("m", clock=clock, **values)


def test_opens_at_the_failure_rate_once_enough_calls_were_seen(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        b.acquire()
        b.failure("500")
    assert b.state == "closed"  # 3 failures, but fewer calls than min_calls
    b.acquire()
    b.success()
    assert b.state == "closed"  # 3 of 4 failed… and the rate is checked on failures only
    with caplog.at_level(logging.INFO, logger="kefu.llm.breaker"):
        b.acquire()
        b.failure("HTTP 500")
    assert b.state == "open"
    assert [r.getMessage() for r in caplog.records] == [
        "circuit breaker m: closed → open (4 of 5 calls failed in 60 s; last: HTTP 500; "
        "calls fail at once for 30 s)"
    ]
    with pytest.raises(BreakerOpen, match=r"circuit breaker is open until .*another 30 s.*HTTP 500"):
        b.acquire()
    assert isinstance(BreakerOpen("x"), ModelError)  # the orchestrator's existing fallback catches it


def test_a_low_failure_rate_and_old_failures_keep_it_closed() -> None:
    clock = Clock()
    b = breaker(clock)
    for ok in [True, True, False, True, True, False, True, False]:  # never 50 % failed
        b.acquire()
        b.success() if ok else b.failure("500")
    assert b.state == "closed"
    clock.now += 61  # all of those left the window
    for _ in range(3):
        b.acquire()
        b.failure("500")
    assert b.state == "closed"  # 3 failures in the window, below min_calls
    b.failure("500")
    assert b.state == "open"


def test_half_open_lets_one_trial_through_and_closes_on_success(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    b = breaker(clock, min_calls=1)
    b.acquire()
    b.failure("500")
    assert b.state == "open"
    clock.now += 29.9
    with pytest.raises(BreakerOpen):
        b.acquire()
    clock.now += 0.1
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="kefu.llm.breaker"):
        assert b.state == "half-open"
        b.acquire()  # the one trial call
        with pytest.raises(BreakerOpen, match="trial call is running"):
            b.acquire()
        b.success()
    assert b.state == "closed"
    assert [r.getMessage() for r in caplog.records] == [
        "circuit breaker m: open → half-open (cool-down over; the next call is a trial)",
        "circuit breaker m: half-open → closed (the trial call succeeded)",
    ]
    b.acquire()  # closed again: calls go through


def test_a_failed_trial_opens_it_again_and_a_cancelled_one_frees_the_slot() -> None:
    clock = Clock()
    b = breaker(clock, min_calls=1)
    b.failure("500")
    clock.now += 30
    b.acquire()
    b.release()  # cancelled: no verdict
    b.acquire()  # so another trial may go
    b.failure("timeout")
    assert b.state == "open"
    assert b.describe().startswith("open until ") and b.describe().endswith("(another 30 s)")
    clock.now += 30
    assert b.describe() == "half-open"


# --- the fake server's fault modes ---------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    with FakeServer() as running:
        yield running


@pytest.fixture
def fake(server: FakeServer) -> Iterator[FakeServer]:
    server.reset()
    yield server
    server.reset()


def configure(fake: FakeServer, **values: Any) -> dict[str, Any]:
    response = httpx.post(f"{fake.root_url}/_fake/config", json=values)
    assert response.status_code == 200, response.text
    return dict(response.json())


def requests_seen(fake: FakeServer) -> int:
    return len(httpx.get(f"{fake.root_url}/_fake/requests").json()["requests"])


def chat(fake: FakeServer, stream: bool = False) -> httpx.Response:
    body = {"model": FAKE_MODEL, "messages": [{"role": "user", "content": "在吗"}], "stream": stream}
    return httpx.post(f"{fake.base_url}/chat/completions", json=body, timeout=5)


def test_error_rate_fails_a_seeded_share_of_calls_with_the_chosen_status(fake: FakeServer) -> None:
    assert configure(fake, error_rate=0.5, error_status=503, seed=7)["error_rate"] == 0.5
    first = [chat(fake).status_code for _ in range(20)]
    assert set(first) == {200, 503} and 5 <= first.count(503) <= 15
    configure(fake, seed=7)  # the same seed draws the same calls again
    assert [chat(fake).status_code for _ in range(20)] == first
    configure(fake, error_rate=1)
    failed = chat(fake)
    assert failed.status_code == 503 and "error_rate" in failed.json()["error"]["message"]
    assert requests_seen(fake) == 41  # every call is recorded, failed or not
    fake.reset()  # faults back to their start values
    assert chat(fake).status_code == 200


def test_bad_fault_settings_are_refused_with_the_reason(fake: FakeServer) -> None:
    response = httpx.post(f"{fake.root_url}/_fake/config", json={"error_rate": 2})
    assert response.status_code == 400
    assert "error_rate must be between 0 and 1" in response.json()["error"]["message"]


def test_drop_after_cuts_the_stream_without_its_end(fake: FakeServer) -> None:
    fake.state.replies.append("一二三四五六七八九十，这是一句很长的回答。")
    configure(fake, drop_after=2)
    received: list[str] = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream(
            "POST",
            f"{fake.base_url}/chat/completions",
            json={"model": FAKE_MODEL, "messages": [{"role": "user", "content": "在吗"}], "stream": True},
            timeout=5,
        ) as response,
    ):
        received.extend(response.iter_lines())
    data = [line for line in received if line.startswith("data:")]
    assert len(data) == 2 and '"role": "assistant"' in data[0]  # the role chunk, one piece, no [DONE]


def test_hang_never_answers_until_switched_off(fake: FakeServer) -> None:
    configure(fake, hang=True)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{fake.base_url}/chat/completions",
            json={"model": FAKE_MODEL, "messages": [{"role": "user", "content": "在吗"}]},
            timeout=0.3,
        )
    configure(fake, hang=False)
    assert chat(fake).status_code == 200


# --- BreakerModel and FallbackChain over HTTP ---------------------------------------------------


def guarded(fake: FakeServer, clock: Clock, timeout: float = 1.0) -> BreakerModel:
    remote = OpenAICompatModel(fake.base_url, "k", FAKE_MODEL, timeout=5, max_retries=0)
    return BreakerModel(remote, CircuitBreaker("fake", min_calls=2, cooldown=10, clock=clock), timeout)


async def test_breaker_model_turns_a_hang_and_a_cut_stream_into_model_errors(fake: FakeServer) -> None:
    model = guarded(fake, Clock(), timeout=0.3)
    try:
        configure(fake, hang=True)
        with pytest.raises(ModelError, match=r"no reply within 0.3 s \(KEFU_LLM_TIMEOUT\)"):
            await model.complete(REQUEST)
        configure(fake, hang=False, drop_after=2)
        with pytest.raises(ModelError, match="failed"):  # a ModelError, not a bare httpx error
            async for _ in model.stream(REQUEST):
                pass
        assert model.breaker.state == "open"  # 2 of 2 failed
        with pytest.raises(BreakerOpen):
            await model.complete(REQUEST)
        assert requests_seen(fake) == 2
    finally:
        await model.aclose()


async def test_fallback_chain_uses_the_secondary_while_the_primary_fails(fake: FakeServer) -> None:
    with FakeServer(replies=["备用模型的回答"]) as secondary_server:
        clock = Clock()
        primary = guarded(fake, clock)
        secondary = guarded(secondary_server, clock)
        chain = FallbackChain([primary, secondary])
        try:
            configure(fake, error_rate=1)
            reply = "".join([chunk.text async for chunk in chain.stream(REQUEST)])
            assert reply == "备用模型的回答"
            secondary_server.state.error_rate = 1.0
            with pytest.raises(ModelError, match="all 2 models of the fallback chain failed"):
                await chain.complete(REQUEST)
            assert primary.breaker.state == "open"  # 2 of 2 calls failed
            assert secondary.breaker.state == "open"  # 1 of 2: at the 50 % failure rate
            with pytest.raises(ModelError, match=r"breaker is open.* \| model fake is not called"):
                await chain.complete(REQUEST)
            assert requests_seen(fake) == 2 and requests_seen(secondary_server) == 2
        finally:
            await chain.aclose()


# --- the chat API against the fake server --------------------------------------------------------


@pytest.fixture
def api(make_settings: Callable[..., Settings], fake: FakeServer) -> Callable[..., TestClient]:
    def make(**overrides: Any) -> TestClient:
        values: dict[str, Any] = {
            "kb_dir": MINI_KB,
            "llm": "openai",
            "llm_base_url": fake.base_url,
            "llm_model": FAKE_MODEL,
            "answer_mode": "generate",
            "llm_timeout": 1,
            "llm_max_retries": 0,
            "breaker_min_calls": 2,
            "breaker_cooldown_seconds": 30,
            "llm_fallback_local": "off",  # one endpoint (the local step: test_breakers_chain.py)
        }
        values.update(overrides)
        return TestClient(create_app(make_settings(**values)))

    return make


def post(client: TestClient, conversation: str, text: str = QUESTION) -> dict[str, Any]:
    response = client.post(f"/v1/conversations/{conversation}/messages", json={"content": text})
    assert response.status_code == 200, response.text
    return dict(response.json()["message"])


def stored_user_messages(client: TestClient, conversation: str) -> list[str]:
    data = client.get(f"/v1/conversations/{conversation}/messages").json()["data"]
    return [m["content"] for m in data if m["role"] == "user"]


def test_model_errors_open_the_breaker_and_the_chat_answers_from_the_knowledge_base(
    api: Callable[..., TestClient], fake: FakeServer
) -> None:
    configure(fake, error_rate=1)
    with api() as client:
        breaker = client.app.state.runtime.model.breaker  # type: ignore[attr-defined]
        clock = Clock()
        breaker.clock = clock
        conversation = new_conversation(client)
        answers = [post(client, conversation) for _ in range(3)]
        for answer in answers:
            assert answer["answer_kind"] == "grounded" and "中通" in answer["content"]  # the KB's sentences
        assert stored_user_messages(client, conversation) == [QUESTION] * 3
        assert requests_seen(fake) == 2  # the breaker opened after 2 failed calls; the 3rd never left
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["model_breaker"].startswith("open until ")

        configure(fake, error_rate=0)  # the server recovers
        fake.state.replies.append("我们默认使用中通快递，江浙沪 1–2 天送达 [1]。")
        clock.now += 30  # cool-down over: one trial call
        trial = post(client, conversation)
        assert trial["content"] == "我们默认使用中通快递，江浙沪 1–2 天送达 [1]。"
        assert requests_seen(fake) == 3
        assert client.get("/readyz").json()["checks"]["model_breaker"] == "closed"


def test_a_hung_model_gets_the_polite_fallback_and_opens_the_breaker(
    api: Callable[..., TestClient], fake: FakeServer
) -> None:
    configure(fake, hang=True)
    with api(answer_check="off", llm_timeout=0.5) as client:  # streamed as generated: nothing held
        conversation = new_conversation(client)
        for _ in range(2):
            answer = post(client, conversation)
            assert answer["content"] == prompts.FALLBACK["zh"] and answer["answer_kind"] == "fallback"
        assert client.app.state.runtime.model.breaker.state == "open"  # type: ignore[attr-defined]
        third = post(client, conversation)  # fails at once, without waiting for the timeout
        assert third["content"] == prompts.FALLBACK["zh"]
        assert requests_seen(fake) == 2
        assert stored_user_messages(client, conversation) == [QUESTION] * 3


def test_a_stream_cut_mid_way_is_never_a_500(api: Callable[..., TestClient], fake: FakeServer) -> None:
    configure(fake, drop_after=3)
    fake.state.replies.extend(["我们默认使用中通快递，江浙沪 1–2 天送达 [1]。"] * 2)
    with api() as client:
        conversation = new_conversation(client)
        answer = post(client, conversation)
        assert answer["answer_kind"] == "grounded" and "中通" in answer["content"]
        with api(answer_check="off") as unheld:
            other = new_conversation(unheld)
            cut = post(unheld, other)
            assert cut["content"].endswith(prompts.FALLBACK["zh"])  # the part sent, then the apology
            assert stored_user_messages(unheld, other) == [QUESTION]


def test_a_secondary_endpoint_answers_while_the_primary_fails(
    api: Callable[..., TestClient], fake: FakeServer
) -> None:
    configure(fake, error_rate=1)
    with FakeServer(replies=["我们默认使用中通快递，江浙沪 1–2 天送达 [1]。"]) as secondary:
        options = {"llm_fallback_base_url": secondary.base_url, "llm_fallback_model": FAKE_MODEL}
        with api(**options) as client:
            answer = post(client, new_conversation(client))
            assert answer["content"] == "我们默认使用中通快递，江浙沪 1–2 天送达 [1]。"
            checks = client.get("/readyz").json()["checks"]
            assert (
                checks["model_breaker"].count("closed") == 2 and secondary.base_url in checks["model_breaker"]
            )


def test_the_fallback_endpoint_needs_its_model_name(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigError, match="KEFU_LLM_FALLBACK_BASE_URL and KEFU_LLM_FALLBACK_MODEL"):
        make_settings(llm="openai", llm_fallback_base_url="http://127.0.0.1:9/v1")
    settings = make_settings(
        llm="openai", llm_base_url="http://127.0.0.1:9/v1", llm_model=FAKE_MODEL, llm_fallback_local="off"
    )
    assert isinstance(build_chat_model(settings), BreakerModel)
