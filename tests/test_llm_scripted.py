"""ScriptedModel, the shared text helpers and the backend factory."""

from __future__ import annotations

import pytest

from kefu.config import Settings
from kefu.errors import ModelError
from kefu.llm import build_chat_model, ensure_ready
from kefu.llm.base import ChatRequest, Message
from kefu.llm.breaker import BreakerModel
from kefu.llm.openai_compat import OpenAICompatModel
from kefu.llm.testing import ScriptedModel
from kefu.llm.text import estimate_tokens, pieces, scripted_reply

SOURCES = (
    "你是客服。\n\n【资料】\n[1] 配送\n订单满99元包邮。\n不满99元收8元运费。\n\n[2] 退货\n七天无理由退货。"
)


def grounded(question: str = "运费多少？") -> ChatRequest:
    return ChatRequest([Message("system", SOURCES), Message("user", question)])


async def test_replies_in_order_then_the_deterministic_reply() -> None:
    model = ScriptedModel(["第一条"])
    model.enqueue("第二条")
    texts = [(await model.complete(grounded())).text for _ in range(3)]
    assert texts == ["第一条", "第二条", "订单满99元包邮。 [1]"]


async def test_history_records_what_the_model_was_given() -> None:
    model = ScriptedModel()
    request = grounded("能退货吗？")
    await model.complete(request)
    [_ async for _ in model.stream(request)]
    assert model.history == [request, request]
    assert "【资料】" in model.history[0].messages[0].content


async def test_default_reply_overrides_the_deterministic_one() -> None:
    model = ScriptedModel(default="固定回复")
    assert (await model.complete(grounded())).text == "固定回复"


async def test_stream_yields_pieces_then_usage_and_finish_reason() -> None:
    model = ScriptedModel(["满99元包邮，谢谢 [1]"])
    chunks = [chunk async for chunk in model.stream(grounded())]
    assert len(chunks) > 3
    assert "".join(c.text for c in chunks) == "满99元包邮，谢谢 [1]"
    assert all(c.usage is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.text == "" and last.finish_reason == "stop"
    assert last.usage is not None and last.usage.completion_tokens == estimate_tokens("满99元包邮，谢谢 [1]")
    assert last.usage.prompt_tokens > 0


async def test_fail_next_raises_once_then_recovers() -> None:
    model = ScriptedModel(["好的"])
    model.fail_next()
    with pytest.raises(ModelError, match="fail_next"):
        await model.complete(grounded())
    assert (await model.complete(grounded())).text == "好的"
    assert len(model.history) == 2


async def test_fail_next_also_breaks_a_stream() -> None:
    model = ScriptedModel()
    model.fail_next(ModelError("boom"))
    with pytest.raises(ModelError, match="boom"):
        [_ async for _ in model.stream(grounded())]


def test_scripted_reply_without_sources_echoes_the_question() -> None:
    assert scripted_reply([Message("user", "你好")]) == "收到：你好"
    assert scripted_reply([Message("system", "[1] 标题\n\n[2] 别的")]) == "标题 [1]"


def test_pieces_rejoin_to_the_text_and_estimates_are_sane() -> None:
    text = "您好！Free shipping over 99 yuan。"
    assert "".join(pieces(text)) == text
    assert estimate_tokens("") == 0
    assert estimate_tokens("您好") == 2
    assert estimate_tokens("hello world") == 3


async def test_factory_builds_each_backend() -> None:
    assert build_chat_model(Settings(environment="test", llm="none")) is None
    scripted = build_chat_model(Settings(environment="test", llm="scripted", scripted_replies=["甲"]))
    assert isinstance(scripted, ScriptedModel)
    await ensure_ready(scripted)
    assert (await scripted.complete(grounded())).text == "甲"
    remote = build_chat_model(
        Settings(
            environment="test",
            llm="openai",
            llm_base_url="http://127.0.0.1:9/v1",
            llm_model="m",
            llm_fallback_local="off",
        )
    )
    assert isinstance(remote, BreakerModel) and isinstance(remote.model, OpenAICompatModel)
    assert remote.describe() == "m @ http://127.0.0.1:9/v1"
    await remote.aclose()
