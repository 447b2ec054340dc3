"""The full fallback chain (issue #10 §4): primary model → secondary → the local model (KEFU_LLM_FALLBACK_LOCAL,
started when first needed) → FAQ / the knowledge base's sentences → the offer of a human; against a real
``FakeServer`` (``kefu fake-llm``) in its fault modes, never a 500, breakers in ``/readyz``."""

from __future__ import annotations

import asyncio
import importlib.util
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from conftest import MINI_KB, ask, new_conversation
from kefu.api.app import create_app
from kefu.config import Settings
from kefu.dialog import prompts
from kefu.errors import ModelError, ModelUnavailable
from kefu.llm import build_chat_model
from kefu.llm.base import ChatRequest, Message
from kefu.llm.breaker import BreakerModel, FallbackChain, LazyLocalModel
from kefu.llm.fake_server import FAKE_MODEL, FakeServer
from kefu.llm.openai_compat import OpenAICompatModel

FAQ_QUESTION = "支持花呗付款吗？"
FAQ_ANSWER = "支持花呗付款，也支持花呗分期（3、6、12 期）。"
KB_QUESTION = "你们发什么快递？多久能到？"  # answered from docs/shipping.md
LOCAL_READY_WAIT = 240.0  # a generous bound for loading the bundled model on a busy machine


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    with FakeServer() as server:
        yield server


def fail_all(fake: FakeServer) -> None:
    httpx.post(f"{fake.root_url}/_fake/config", json={"error_rate": 1}).raise_for_status()


def requests_seen(fake: FakeServer) -> int:
    return len(httpx.get(f"{fake.root_url}/_fake/requests").json()["requests"])


def openai_settings(make_settings: Callable[..., Settings], fake: FakeServer, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "kb_dir": MINI_KB,
        "llm": "openai",
        "llm_base_url": fake.base_url,
        "llm_model": FAKE_MODEL,
        "answer_mode": "generate",
        "llm_timeout": 2,
        "llm_max_retries": 0,
        "breaker_min_calls": 2,
        "llm_fallback_local": "off",
    }
    values.update(overrides)
    return make_settings(**values)


def test_with_the_model_in_error_mode_the_chat_answers_and_readyz_shows_the_open_breaker(
    make_settings: Callable[..., Settings], fake: FakeServer
) -> None:
    """The issue's done-when: FAQ verbatim, the knowledge base's own sentences, never a 500."""
    fail_all(fake)
    with TestClient(create_app(openai_settings(make_settings, fake))) as client:
        conversation = new_conversation(client)
        faq = ask(client, conversation, FAQ_QUESTION)  # no model needed (+ the compliance notice)
        assert faq["answer_kind"] == "faq" and faq["content"].startswith(FAQ_ANSWER)
        for _ in range(3):
            answer = ask(client, new_conversation(client), KB_QUESTION)
            assert answer["answer_kind"] == "grounded" and "中通" in answer["content"]  # KB sentences
            assert answer["citations"]  # the article it came from
        assert requests_seen(fake) == 2  # the breaker opened after 2 failures: the 3rd never left
        ready = client.get("/readyz")
        assert ready.status_code == 200
        checks = ready.json()["checks"]
        name = f"{FAKE_MODEL} @ {fake.base_url}"
        assert (
            checks["breakers"][name].startswith("open until ")
            and checks["model_breaker"] == (checks["breakers"][name])
        )


def test_with_nothing_held_to_quote_the_reply_offers_a_human_and_cites_the_articles(
    make_settings: Callable[..., Settings], fake: FakeServer
) -> None:
    fail_all(fake)
    with TestClient(create_app(openai_settings(make_settings, fake, answer_check="off"))) as client:
        conversation = new_conversation(client)
        answer = ask(client, conversation, KB_QUESTION)
        assert answer["answer_kind"] == "fallback" and answer["content"] == prompts.FALLBACK["zh"]
        assert [c["title"] for c in answer["citations"]]  # the related articles, shown with the reply
        stored = client.get(f"/v1/conversations/{conversation}/messages").json()["data"]
        assert [m["role"] for m in stored] == ["user", "assistant"] and stored[0]["content"] == KB_QUESTION


def test_the_fallback_reply_offers_a_human() -> None:
    assert "人工客服" in prompts.FALLBACK["zh"] and "human agent" in prompts.FALLBACK["en"]
    assert "人工客服" in prompts.NO_ANSWER["zh"] and "human agent" in prompts.NO_ANSWER["en"]


async def test_a_stream_cut_mid_way_says_where_it_broke(fake: FakeServer) -> None:
    fake.state.replies.append("一二三四五六七八九十，这是一句很长的回答。")
    httpx.post(f"{fake.root_url}/_fake/config", json={"drop_after": 3}).raise_for_status()
    model = OpenAICompatModel(fake.base_url, "k", FAKE_MODEL, timeout=5, max_retries=2)
    received: list[str] = []
    try:
        with pytest.raises(
            ModelError, match=r"the stream was cut after 3 chunk\(s\) \(RemoteProtocolError"
        ) as cut:
            async for chunk in model.stream(ChatRequest(messages=[Message("user", "在吗")])):
                received.append(chunk.text)
        assert "cannot connect" not in str(cut.value)
        assert requests_seen(fake) == 1  # a stream that began is never retried
        assert received and "".join(received) in "一二三四五六七八九十，这是一句很长的回答。"
    finally:
        await model.aclose()


# --- the local model as the chain's last model step ------------------------------------------------


def local_installed() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def test_fallback_local_off_auto_and_on(make_settings: Callable[..., Settings], tmp_path: Any) -> None:
    base = {"llm": "openai", "llm_base_url": "http://127.0.0.1:9/v1", "llm_model": FAKE_MODEL}
    assert isinstance(build_chat_model(make_settings(**base, llm_fallback_local="off")), BreakerModel)
    missing = tmp_path / "nope.gguf"
    # auto: left out (quietly) when the model cannot run here …
    auto = build_chat_model(make_settings(**base, llm_fallback_local="auto", local_model_path=missing))
    assert isinstance(auto, BreakerModel)
    # … on: refused at start-up, naming the setting
    with pytest.raises(ModelUnavailable, match=r"KEFU_LLM_FALLBACK_LOCAL=on, but .*nope.gguf is not a file"):
        build_chat_model(make_settings(**base, llm_fallback_local="on", local_model_path=missing))
    if not local_installed():
        return
    secondary = {"llm_fallback_base_url": "http://127.0.0.1:9/v1", "llm_fallback_model": "m2"}
    chain = build_chat_model(make_settings(**base, **secondary, llm_fallback_local="auto"))
    assert isinstance(chain, FallbackChain)
    assert [type(m) for m in chain.models] == [BreakerModel, BreakerModel, LazyLocalModel]
    assert chain.supports_tools  # the primary's: a function-calling request skips the local step
    assert chain.models[2].describe() == "the local model (started when first needed)"  # not started


@pytest.mark.local_model
async def test_the_local_step_starts_when_first_needed_and_answers_later(
    make_settings: Callable[..., Settings], fake: FakeServer
) -> None:
    if not local_installed():
        pytest.skip("llama-cpp-python is not installed: the local fallback step is not tested")
    fail_all(fake)
    settings = openai_settings(
        make_settings, fake, llm_fallback_local="on", cache_dir=Settings().cache_dir, llm_timeout=120
    )
    chain = build_chat_model(settings)
    assert isinstance(chain, FallbackChain)
    local = chain.models[-1]
    assert isinstance(local, LazyLocalModel)
    request = ChatRequest([Message("user", "你好，请用一句话问候我。")], max_tokens=12, temperature=0)
    try:
        with pytest.raises(ModelError, match="the local fallback model is not ready yet"):
            await chain.complete(request)  # at once: the customer gets the knowledge base's reply
        assert local.describe() == "the local model (starting)"
        deadline = time.monotonic() + LOCAL_READY_WAIT
        while "starting" in local.describe():
            assert time.monotonic() < deadline, "the local fallback model did not start"
            await asyncio.sleep(0.5)
        reply = await chain.complete(request)  # the primary fails; the local model answers
        assert reply.model.startswith("local:") and reply.text.strip()
        assert requests_seen(fake) == 2
    finally:
        await chain.aclose()
