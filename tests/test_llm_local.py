"""The bundled GGUF model, really loaded (joined from its packages and sha256-verified) and run."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from kefu.config import Settings
from kefu.errors import ModelError, ModelUnavailable
from kefu.llm import build_chat_model, ensure_ready
from kefu.llm.base import ChatRequest, Message, StreamChunk
from kefu.llm.local import LocalModel, require_llama_cpp
from kefu.llm.weights import BUNDLED_FILENAME, BUNDLED_SIZE

try:
    require_llama_cpp()
except ModelUnavailable as missing:  # CI installs kefu[local], so these run there
    pytest.skip(missing.message, allow_module_level=True)

pytestmark = pytest.mark.local_model

# The developer's cache (not a temp dir), so the 491 MB file is joined once per machine.
CACHE_DIR = Settings(environment="test").cache_dir
CJK = re.compile(r"[\u4e00-\u9fff]")
SYSTEM = "你是「小铺优选」的在线客服。只根据【资料】回答，简洁，使用中文。\n\n【资料】\n[1] 配送\n订单满99元包邮，不满99元收取运费8元。"


def ask(question: str, max_tokens: int = 40) -> ChatRequest:
    return ChatRequest(
        [Message("system", SYSTEM), Message("user", question)], max_tokens=max_tokens, temperature=0
    )


@pytest.fixture
def model() -> LocalModel:
    return LocalModel(cache_dir=CACHE_DIR)


async def collect(model: LocalModel, request: ChatRequest) -> list[StreamChunk]:
    return [chunk async for chunk in model.stream(request)]


async def test_the_bundled_model_loads_verified_and_answers_in_chinese(model: LocalModel) -> None:
    await ensure_ready(model)
    cached = CACHE_DIR / "models" / BUNDLED_FILENAME
    assert cached.stat().st_size == BUNDLED_SIZE
    assert Path(f"{cached}.verified").is_file()
    reply = await model.complete(ask("运费多少钱？"))
    assert CJK.search(reply.text), reply.text
    assert reply.usage.prompt_tokens > 20 and 0 < reply.usage.completion_tokens <= 40
    assert reply.finish_reason in {"stop", "length"}


async def test_stream_yields_pieces_and_usage_last(model: LocalModel) -> None:
    chunks = await collect(model, ask("满多少钱包邮？"))
    text = "".join(c.text for c in chunks)
    assert CJK.search(text), text
    assert len(chunks) > 2 and all(c.usage is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.usage is not None and last.usage.prompt_tokens > 20 and last.usage.completion_tokens > 0
    assert last.finish_reason in {"stop", "length"}


async def test_concurrent_requests_queue_and_all_succeed(model: LocalModel) -> None:
    first, second, third = await asyncio.gather(
        model.complete(ask("运费多少？", 16)),
        collect(model, ask("包邮吗？", 16)),
        model.complete(ask("不满99元怎么收费？", 16)),
    )
    assert first.text and third.text
    assert second[-1].finish_reason in {"stop", "length"}


async def test_a_stream_abandoned_midway_does_not_block_the_next_request(model: LocalModel) -> None:
    async for chunk in model.stream(ask("请详细介绍一下配送政策。", 200)):
        if chunk.text:
            break
    reply = await model.complete(ask("运费多少？", 8))
    assert reply.usage.completion_tokens > 0


async def test_a_prompt_over_the_context_is_a_model_error() -> None:
    small = LocalModel(cache_dir=CACHE_DIR, n_ctx=512)
    long_question = "请问" + "运费和配送时间是多少" * 120
    with pytest.raises(ModelError, match="KEFU_LOCAL_N_CTX"):
        await small.complete(ask(long_question))


async def test_a_user_gguf_path_is_loaded_and_a_missing_one_refused(tmp_path: Path) -> None:
    own = LocalModel(CACHE_DIR / "models" / BUNDLED_FILENAME, cache_dir=CACHE_DIR)
    assert own.describe() == f"local:{BUNDLED_FILENAME}"
    assert (await own.complete(ask("运费？", 8))).text
    settings = Settings(environment="test", llm="local", local_model_path=tmp_path / "nope.gguf")
    missing = build_chat_model(settings)
    with pytest.raises(ModelUnavailable, match=r"KEFU_LOCAL_MODEL_PATH=.*does not exist"):
        await ensure_ready(missing)
