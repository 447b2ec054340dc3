"""The model seam: one abstract method.

A chat model turns a ``ChatRequest`` into a ``Reply``. Streaming is optional: the default
``stream`` calls ``complete`` and yields the whole text as one chunk. Every backend — the bundled
local GGUF model, any OpenAI-compatible endpoint, the scripted test model — implements this and
nothing more, so the dialog code never knows which one it talks to.

Function calling: a request may carry ``tools`` (each a name, a description and a JSON Schema of its
arguments) and a ``tool_choice``; a model with ``supports_tools`` answers with ``Reply.tool_calls`` (the
arguments as the raw JSON text the model wrote — validate before use). Models without it ignore both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class Tool:
    """A function the model may call; ``parameters`` is the JSON Schema of its arguments object."""

    name: str  # [a-zA-Z0-9_-]{1,64}
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    """One call the model made: the arguments exactly as it wrote them (JSON text, maybe invalid)."""

    name: str
    arguments: str
    id: str = ""


@dataclass(frozen=True)
class ChatRequest:
    messages: list[Message]
    max_tokens: int = 400
    temperature: float = 0.2
    stop: list[str] = field(default_factory=list)
    tools: list[Tool] = field(default_factory=list)
    # None or "auto": the model decides; "none": no call; "required": some call; a tool's name: that call
    tool_choice: str | None = None


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
    finish_reason: str = "stop"  # "tool_calls" when the model called tools
    tool_calls: list[ToolCall] = field(default_factory=list)


@dataclass
class StreamChunk:
    """A piece of a streamed reply. The last chunk carries ``usage``, ``finish_reason`` and any
    ``tool_calls`` (assembled from the streamed pieces)."""

    text: str
    usage: Usage | None = None
    finish_reason: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)


class ChatModel(ABC):
    """Implement ``complete``; override ``stream`` when the backend can stream."""

    name: str = "model"
    supports_tools: bool = False  # answers ChatRequest.tools with Reply.tool_calls

    @abstractmethod
    async def complete(self, request: ChatRequest) -> Reply:
        """Return the whole reply. Raise ``kefu.errors.ModelError`` on failure or timeout."""

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        reply = await self.complete(request)
        yield StreamChunk(reply.text, reply.usage, reply.finish_reason, list(reply.tool_calls))

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections or memory. Default: nothing to release."""

    def describe(self) -> str:
        return self.name
