"""/v1/chat/completions through the official ``openai`` SDK against a real kefu server, and kefu's own
``KEFU_LLM=openai`` path against the fake OpenAI-compatible server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from openai import OpenAI

from conftest import live_server
from kefu.api.app import create_app
from kefu.config import Settings
from kefu.llm.fake_server import FakeServer
from kefu.llm.testing import ScriptedModel

MINI_KB = Path(__file__).parent / "data" / "mini_kb"
Q1, Q2 = "你们发什么快递？多久能到？", "那新疆呢？"


@pytest.fixture
def model() -> ScriptedModel:
    return ScriptedModel()


@pytest.fixture
def sdk(make_settings: Callable[..., Settings], model: ScriptedModel) -> Iterator[OpenAI]:
    app = create_app(make_settings(kb_dir=MINI_KB), model=model)
    with TestClient(app), live_server(app) as base:  # TestClient runs the lifespan; uvicorn serves it
        yield OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)


def test_sdk_keeps_the_session_by_user_and_gets_citations(sdk: OpenAI, model: ScriptedModel):
    model.enqueue("默认中通快递，江浙沪 1–2 天 [1]。")
    first = sdk.chat.completions.create(
        model="kefu", user="customer-42", messages=[{"role": "user", "content": Q1}]
    )
    assert first.choices[0].message.content == "默认中通快递，江浙沪 1–2 天 [1]。"
    extra = first.model_extra["kefu"]
    assert extra["answer_kind"] == "grounded"
    assert any(c["source"] == "docs/shipping.md" for c in extra["citations"])
    assert first.usage is not None and first.usage.completion_tokens > 0

    model.enqueue("新疆走 EMS，5–8 天 [1]。")
    second = sdk.chat.completions.create(
        model="kefu", user="customer-42", messages=[{"role": "user", "content": Q2}]
    )
    assert second.model_extra["kefu"]["conversation_id"] == extra["conversation_id"]
    assert any("偏远地区" in c["section"] for c in second.model_extra["kefu"]["citations"])
    assert [m.content for m in model.history[-1].messages[1:]] == [
        Q1,
        "默认中通快递，江浙沪 1–2 天 [1]。",
        f"{Q2}（接着问：{Q1}）",
    ]


@pytest.fixture
def live_sdk(make_settings: Callable[..., Settings], model: ScriptedModel) -> Iterator[OpenAI]:
    """Answers streamed as generated (KEFU_ANSWER_CHECK=off), not held for the check."""
    app = create_app(make_settings(kb_dir=MINI_KB, answer_check="off"), model=model)
    with TestClient(app), live_server(app) as base:
        yield OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)


def test_sdk_streaming_carries_citations_in_the_first_chunk(live_sdk: OpenAI, model: ScriptedModel):
    sdk = live_sdk
    model.enqueue("新疆属于偏远地区，使用 EMS 发货 [1]。")
    stream = sdk.chat.completions.create(
        model="kefu", stream=True, messages=[{"role": "user", "content": "新疆用什么快递？多久到？"}]
    )
    chunks = list(stream)
    assert chunks[0].model_extra["kefu"]["citations"]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "新疆属于偏远地区，使用 EMS 发货 [1]。"
    assert chunks[-1].choices[0].finish_reason == "stop" and chunks[-1].usage is not None
    assert len(chunks) > 3  # really streamed


def test_without_a_session_key_the_request_messages_are_the_history(sdk: OpenAI, model: ScriptedModel):
    model.enqueue("好的 [1]。")
    sdk.chat.completions.create(
        model="kefu",
        messages=[
            {"role": "system", "content": "ignored: kefu builds its own system prompt"},
            {"role": "user", "content": Q1},
            {"role": "assistant", "content": "中通快递。"},
            {"role": "user", "content": Q2},
        ],
    )
    received = model.history[-1].messages
    assert [(m.role, m.content) for m in received[1:]] == [
        ("user", Q1),
        ("assistant", "中通快递。"),
        ("user", f"{Q2}（接着问：{Q1}）"),
    ]
    assert "ignored" not in received[0].content and "偏远地区" in received[0].content


def test_last_message_must_be_the_customers(sdk: OpenAI):
    from openai import BadRequestError

    with pytest.raises(BadRequestError, match="role 'user'"):
        sdk.chat.completions.create(model="kefu", messages=[{"role": "assistant", "content": "hi"}])


def test_kefu_llm_openai_talks_to_an_openai_compatible_server(make_settings: Callable[..., Settings]):
    with FakeServer() as fake:
        settings = make_settings(kb_dir=MINI_KB, llm="openai", llm_base_url=fake.base_url, llm_api_key="k")
        with TestClient(create_app(settings)) as client:
            fake.state.replies.append("偏远地区统一用 EMS，一般 5–8 天送达 [1]。")
            cid = client.post("/v1/conversations", json={}).json()["id"]
            reply = client.post(
                f"/v1/conversations/{cid}/messages", json={"content": "新疆、西藏这些偏远地区多久能送到？"}
            ).json()
        sent = fake.state.requests[-1]
    message = reply["message"]
    assert message["content"] == "偏远地区统一用 EMS，一般 5–8 天送达 [1]。"
    assert message["answer_kind"] == "grounded"
    system = sent["messages"][0]["content"]
    assert "【资料】" in system and "EMS" in system
    assert sent["messages"][-1] == {"role": "user", "content": "新疆、西藏这些偏远地区多久能送到？"}
