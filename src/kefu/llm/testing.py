"""Test doubles for the model seam — documented product code, used by tests, demos and benchmarks.

``ScriptedModel`` answers in-process from a queue of replies and records every request it gets;
``create_fake_openai_app`` / ``run_fake_server`` (from ``kefu.llm.fake_server``) serve the same
replies over the OpenAI HTTP wire format, so the real ``OpenAICompatModel`` can be exercised
without a real model.

    model = ScriptedModel(["运费满99元包邮 [1]"])
    reply = await model.complete(request)
    assert "【资料】" in model.history[0].messages[0].content   # what the model was given
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

from kefu.errors import ModelError
from kefu.llm.base import ChatModel, ChatRequest, Reply, StreamChunk, Usage
from kefu.llm.fake_server import create_fake_openai_app, run_fake_server
from kefu.llm.text import estimate_prompt_tokens, estimate_tokens, pieces, scripted_reply

__all__ = ["ScriptedModel", "create_fake_openai_app", "run_fake_server", "scripted_reply"]


class ScriptedModel(ChatModel):
    """A model that replies from a script.

    * ``replies`` are returned in order, one per request; ``enqueue(text)`` adds more.
    * When the queue is empty it returns ``default`` if given, else ``scripted_reply(messages)``:
      the first numbered source's first line with its citation (``"满99元包邮。 [1]"``), or
      ``"收到：<last user message>"`` when the request holds no source.
    * ``history`` holds every ``ChatRequest`` received, in order — assert on what the model saw.
    * ``fail_next(exc)`` makes the next call raise ``exc`` (default: a ``ModelError``) instead.
    * ``delay`` seconds are awaited before the reply (and split across streamed pieces).
    * Usage is estimated with ``kefu.llm.text.estimate_tokens``; ``stream`` yields one piece per
      CJK character or word, then a last empty chunk with ``usage`` and ``finish_reason``.
    """

    name = "scripted"

    def __init__(
        self, replies: list[str] | None = None, default: str | None = None, delay: float = 0
    ) -> None:
        self._queue: deque[str] = deque(replies or [])
        self._failures: deque[BaseException] = deque()
        self.default = default
        self.delay = delay
        self.history: list[ChatRequest] = []

    def enqueue(self, text: str) -> None:
        self._queue.append(text)

    def fail_next(self, exc: BaseException | None = None) -> None:
        self._failures.append(exc or ModelError("scripted failure (ScriptedModel.fail_next)"))

    async def complete(self, request: ChatRequest) -> Reply:
        text = self._take(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        return Reply(text=text, model=self.name, usage=_usage(request, text))

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        text = self._take(request)
        parts = pieces(text)
        for part in parts:
            if self.delay:
                await asyncio.sleep(self.delay / len(parts))
            yield StreamChunk(text=part)
        yield StreamChunk(text="", usage=_usage(request, text), finish_reason="stop")

    def _take(self, request: ChatRequest) -> str:
        self.history.append(request)
        if self._failures:
            raise self._failures.popleft()
        if self._queue:
            return self._queue.popleft()
        return self.default if self.default is not None else scripted_reply(request.messages)


def _usage(request: ChatRequest, text: str) -> Usage:
    return Usage(
        prompt_tokens=estimate_prompt_tokens(request.messages), completion_tokens=estimate_tokens(text)
    )
