"""What the orchestrator emits while answering one message; the API turns these into SSE or JSON."""

from __future__ import annotations

from dataclasses import dataclass

from kefu.storage.base import MessageRecord


@dataclass(frozen=True)
class Meta:
    conversation_id: str
    message_id: str  # the customer's persisted message
    answer_kind: str
    sentiment: float = 0.0  # the customer's message, in [-1, 1]
    escalate: bool = False  # sustained or strong negative sentiment: a signal for human handoff


@dataclass(frozen=True)
class Citations:
    citations: list[dict[str, object]]


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass(frozen=True)
class Done:
    message: MessageRecord  # the persisted assistant message


Event = Meta | Citations | Delta | Done
