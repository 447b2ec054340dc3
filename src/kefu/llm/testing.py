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
import json
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from kefu.errors import ModelError
from kefu.llm.base import ChatModel, ChatRequest, Reply, StreamChunk, ToolCall, Usage
from kefu.llm.fake_server import create_fake_openai_app, run_fake_server, scripted_tool_call
from kefu.llm.text import estimate_prompt_tokens, estimate_tokens, pieces, scripted_reply

__all__ = [
    "ScriptedModel",
    "create_fake_openai_app",
    "run_fake_server",
    "scripted_reply",
    "scripted_tool_call",
]


class ScriptedModel(ChatModel):
    """A model that replies from a script.

    * ``replies`` are returned in order, one per request; ``enqueue(text)`` adds more.
    * When the queue is empty it returns ``default`` if given, else ``scripted_reply(messages)``:
      the first numbered source's first line with its citation (``"满99元包邮。 [1]"``), or
      ``"收到：<last user message>"`` when the request holds no source.
    * A request with ``tools`` (``tool_choice`` not "none") gets a tool call instead of text: the next
      one queued with ``enqueue_tool_call(name, arguments)`` (a dict, or raw JSON text — invalid on
      purpose if you like), else ``scripted_tool_call`` (the fake server's deterministic reading).
    * ``history`` holds every ``ChatRequest`` received, in order — assert on what the model saw.
    * ``fail_next(exc)`` makes the next call raise ``exc`` (default: a ``ModelError``) instead.
    * ``delay`` seconds are awaited before the reply (and split across streamed pieces).
    * Usage is estimated with ``kefu.llm.text.estimate_tokens``; ``stream`` yields one piece per
      CJK character or word, then a last empty chunk with ``usage`` and ``finish_reason``.
    """

    name = "scripted"
    supports_tools = True

    def __init__(
        self, replies: list[str] | None = None, default: str | None = None, delay: float = 0
    ) -> None:
        self._queue: deque[str] = deque(replies or [])
        self._tool_calls: deque[ToolCall] = deque()
        self._failures: deque[BaseException] = deque()
        self.default = default
        self.delay = delay
        self.history: list[ChatRequest] = []

    def enqueue(self, text: str) -> None:
        self._queue.append(text)

    def enqueue_tool_call(self, name: str, arguments: dict[str, Any] | str) -> None:
        raw = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
        self._tool_calls.append(ToolCall(name, raw, f"call_scripted_{len(self._tool_calls)}"))

    def fail_next(self, exc: BaseException | None = None) -> None:
        self._failures.append(exc or ModelError("scripted failure (ScriptedModel.fail_next)"))

    async def complete(self, request: ChatRequest) -> Reply:
        if _wants_tool(request):
            call = self._take_tool_call(request)
            if self.delay:
                await asyncio.sleep(self.delay)
            return Reply("", self.name, _usage(request, call.arguments), "tool_calls", [call])
        text = self._take(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        return Reply(text=text, model=self.name, usage=_usage(request, text))

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        if _wants_tool(request):
            reply = await self.complete(request)
            yield StreamChunk("", reply.usage, reply.finish_reason, reply.tool_calls)
            return
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

    def _take_tool_call(self, request: ChatRequest) -> ToolCall:
        self.history.append(request)
        if self._failures:
            raise self._failures.popleft()
        if self._tool_calls:
            return self._tool_calls.popleft()
        return scripted_tool_call(request.tools, request.tool_choice, request.messages)


def _wants_tool(request: ChatRequest) -> bool:
    return bool(request.tools) and request.tool_choice != "none"


def _usage(request: ChatRequest, text: str) -> Usage:
    return Usage(
        prompt_tokens=estimate_prompt_tokens(request.messages), completion_tokens=estimate_tokens(text)
    )
