"""Identical model requests in flight share one call (single flight).

Two customers asking the same first question at the same moment send the model the same request — the
same system prompt, sources, history and parameters — so one call can answer both. ``SingleFlightModel``
keys a request by all of it; while a call for that key is running, an identical request waits for the
same reply (``complete``) or reads the same chunks from the start (``stream``). The followers' replies
carry zero usage: the model was called once, and tokens and cost are counted once. Nothing is kept after
the call ends (answers that may be given again are the answer cache's business, kefu.dialog.cache).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

from kefu.llm.base import ChatModel, ChatRequest, Reply, StreamChunk, Usage


def request_key(request: ChatRequest) -> str:
    """sha256 of everything the model receives: messages, sampling parameters, tools."""
    return hashlib.sha256(
        json.dumps(dataclasses.asdict(request), ensure_ascii=False, sort_keys=True, default=str).encode()
    ).hexdigest()


class _Broadcast:
    """One stream of ``inner``, read by every identical request from its first chunk."""

    def __init__(self, stream: AsyncIterator[StreamChunk]) -> None:
        self.chunks: list[StreamChunk] = []
        self.error: BaseException | None = None
        self.finished = False
        self.readers = 0
        self._changed = asyncio.Condition()
        self.task = asyncio.create_task(self._pump(stream), name="kefu-single-flight-stream")

    async def _pump(self, stream: AsyncIterator[StreamChunk]) -> None:
        try:
            async for chunk in stream:
                async with self._changed:
                    self.chunks.append(chunk)
                    self._changed.notify_all()
        except Exception as exc:  # every reader sees the model's error, after the chunks it sent
            self.error = exc
        finally:
            async with self._changed:
                self.finished = True
                self._changed.notify_all()

    async def read(self, follower: bool) -> AsyncIterator[StreamChunk]:
        sent = 0
        while True:
            async with self._changed:
                while not self.finished and len(self.chunks) <= sent:
                    await self._changed.wait()
                fresh, done = self.chunks[sent:], self.finished  # finished: every chunk is in
            for chunk in fresh:
                yield _zero_usage(chunk) if follower and chunk.usage is not None else chunk
            sent += len(fresh)
            if done:
                if self.error is not None:
                    raise self.error
                return


class SingleFlightModel(ChatModel):
    """``inner`` with identical concurrent requests sharing one call; everything else is ``inner``'s."""

    def __init__(self, inner: ChatModel) -> None:
        self.inner = inner
        self.name = inner.name
        self.supports_tools = inner.supports_tools
        self._replies: dict[str, asyncio.Task[Reply]] = {}
        self._streams: dict[str, _Broadcast] = {}
        self.shared = 0  # requests answered by another request's call (for tests and benchmarks)

    def __getattr__(self, name: str) -> Any:  # readiness, breakers, check, breaker…: the inner model's
        return getattr(self.inner, name)

    def describe(self) -> str:
        return self.inner.describe()

    async def complete(self, request: ChatRequest) -> Reply:
        key = request_key(request)
        task = self._replies.get(key)
        follower = task is not None
        if task is None:
            task = asyncio.create_task(self.inner.complete(request), name="kefu-single-flight")
            self._replies[key] = task
            task.add_done_callback(lambda _: self._replies.pop(key, None))
        else:
            self.shared += 1
        reply = await asyncio.shield(task)  # one caller giving up does not cancel the others' call
        if follower:
            return dataclasses.replace(reply, usage=Usage(), tool_calls=list(reply.tool_calls))
        return reply

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        key = request_key(request)
        broadcast = self._streams.get(key)
        follower = broadcast is not None
        if broadcast is None:
            broadcast = _Broadcast(self.inner.stream(request))
            self._streams[key] = broadcast
            broadcast.task.add_done_callback(lambda _: self._streams.pop(key, None))
        else:
            self.shared += 1
        broadcast.readers += 1
        try:
            async for chunk in broadcast.read(follower):
                yield chunk
        finally:
            broadcast.readers -= 1
            if broadcast.readers == 0 and not broadcast.task.done():  # nobody reads any more: stop
                broadcast.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await broadcast.task

    async def aclose(self) -> None:
        await self.inner.aclose()


def _zero_usage(chunk: StreamChunk) -> StreamChunk:
    return dataclasses.replace(chunk, usage=Usage())


def single_flight(model: ChatModel | None) -> ChatModel | None:
    """``model`` with single flight on each model that is called: a router's models are wrapped one by
    one (the router itself stays, so routes and budgets work as before), any other model as a whole."""
    from kefu.llm.routing import ModelRouter

    if model is None or isinstance(model, SingleFlightModel):
        return model
    if isinstance(model, ModelRouter):
        wrapped: dict[int, ChatModel] = {}
        model.models = {
            name: wrapped.setdefault(id(inner), SingleFlightModel(inner))
            for name, inner in model.models.items()
        }
        return model
    return SingleFlightModel(model)
