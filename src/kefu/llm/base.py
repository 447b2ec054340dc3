"""The model seam: one abstract method.

A chat model turns a ``ChatRequest`` into a ``Reply``. Streaming is optional: the default
``stream`` calls ``complete`` and yields the whole text as one chunk. Every backend — the bundled
local GGUF model, any OpenAI-compatible endpoint, the scripted test model — implements this and
nothing more, so the dialog code never knows which one it talks to.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class ChatRequest:
    messages: list[Message]
    max_tokens: int = 400
    temperature: float = 0.2
    stop: list[str] = field(default_factory=list)


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Reply:
    text: str
    model: str
    usage: Usage = field(default_factory=Usage)
    finish_reason: str = "stop"


@dataclass
class StreamChunk:
    """A piece of a streamed reply. The last chunk carries ``usage`` and ``finish_reason``."""

    text: str
    usage: Usage | None = None
    finish_reason: str | None = None


class ChatModel(ABC):
    """Implement ``complete``; override ``stream`` when the backend can stream."""

    name: str = "model"

    @abstractmethod
    async def complete(self, request: ChatRequest) -> Reply:
        """Return the whole reply. Raise ``kefu.errors.ModelError`` on failure or timeout."""

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        reply = await self.complete(request)
        yield StreamChunk(text=reply.text, usage=reply.usage, finish_reason=reply.finish_reason)

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections or memory. Default: nothing to release."""

    def describe(self) -> str:
        return self.name
