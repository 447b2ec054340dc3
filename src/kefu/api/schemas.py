"""Request and response bodies of the HTTP API (one schema family per entity)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kefu.storage.base import ConversationRecord, MessageRecord


class ConversationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: Literal["web", "api", "cli"] = "api"
    external_user: str | None = Field(default=None, max_length=200)


class ConversationPublic(BaseModel):
    id: str
    channel: str
    status: str
    created_at: datetime

    @classmethod
    def of(cls, record: ConversationRecord) -> ConversationPublic:
        return cls(id=record.id, channel=record.channel, status=record.status, created_at=record.created_at)


class MessageCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    content: str
    stream: bool = False
    # the client's id for this message (or the Idempotency-Key header): sending it again returns the
    # stored reply instead of storing the message twice — retry a cut request with the same id
    client_message_id: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[\w.:-]+$")


class MessagePublic(BaseModel):
    id: str
    role: str
    content: str
    created_at: datetime
    status: str
    answer_kind: str | None = None
    citations: list[dict[str, Any]] = Field(default_factory=list)
    agent: str | None = None  # role "agent": the display name of the agent who wrote it

    @classmethod
    def of(cls, record: MessageRecord, agent: str | None = None) -> MessagePublic:
        return cls(
            id=record.id,
            role=record.role,
            content=record.content,
            created_at=record.created_at,
            status=record.status,
            answer_kind=record.answer_kind,
            citations=record.citations,
            agent=agent,
        )


class MessageReply(BaseModel):
    message: MessagePublic | None  # None while a human agent has the conversation (answer "agent_pending")
    answer_kind: str | None = None
    handoff: dict[str, Any] | None = None  # when this message opened or waits on a handoff
    cache: str | None = None  # "exact" / "semantic": the reply came from the answer cache (no model)
    replayed: bool = False  # the message was sent before with this client_message_id: its stored reply


class MessagesPublic(BaseModel):
    data: list[MessagePublic]
    count: int


# --- OpenAI-compatible chat completions -------------------------------------------------------------


class ChatMessageIn(BaseModel):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        if not self.content:
            return ""
        return "".join(str(part.get("text", "")) for part in self.content if part.get("type") == "text")


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # unknown OpenAI parameters are accepted and ignored
    model: str = "kefu"
    messages: list[ChatMessageIn] = Field(min_length=1)
    stream: bool = False
    user: str | None = Field(default=None, max_length=200)
