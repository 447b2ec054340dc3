"""What the orchestrator emits while answering one message; the API turns these into SSE or JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kefu.storage.base import MessageRecord


@dataclass(frozen=True)
class Meta:
    conversation_id: str
    message_id: str  # the customer's persisted message
    answer_kind: str
    sentiment: float = 0.0  # the customer's message, in [-1, 1]
    escalate: bool = False  # sustained or strong negative sentiment: a signal for human handoff
    # "handoff" / "ticket" / "agent_pending": {"id", "status", "position", "expected_wait_s", "reason", "agent"}
    handoff: dict[str, Any] | None = None
    cache: str | None = None  # "exact" / "semantic" when the answer is served from the answer cache
    route: str | None = None  # the model route picked for this turn, when a model may be asked
    replayed: bool = False  # a retried message (same client id): the reply stored the first time


@dataclass(frozen=True)
class Citations:
    citations: list[dict[str, object]]


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass(frozen=True)
class Done:
    message: MessageRecord | None  # the persisted assistant message; None while an agent has the conversation


Event = Meta | Citations | Delta | Done
