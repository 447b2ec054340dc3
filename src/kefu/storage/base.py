"""Store protocols. Implementations: ``sql.py`` (SQLAlchemy: SQLite default, PostgreSQL) and
``redis_sessions.py`` (Redis). The contract test suite runs the same promises against each.

Stores are synchronous (SQLAlchemy sessions, redis-py); async callers offload them to a thread.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

MessageRole = Literal["user", "assistant", "agent", "system"]
# "replaced": a generated answer that failed the grounding check, replaced by the KB's own text
MessageStatus = Literal["ok", "pending", "fallback", "replaced", "error"]


@dataclass
class ConversationRecord:
    id: str
    channel: str  # "web" | "api" | "openai" | "cli"
    external_user: str | None
    status: str  # "open" | "closed"
    created_at: datetime
    updated_at: datetime


@dataclass
class MessageRecord:
    id: str
    conversation_id: str
    role: MessageRole
    content: str
    created_at: datetime
    status: MessageStatus = "ok"
    # How the answer was produced: "faq" | "grounded" | "no_answer" | "fallback" | "smalltalk" | "flow" |
    # "refused" | "handoff" | "ticket" | None
    answer_kind: str | None = None
    citations: list[dict[str, Any]] = field(default_factory=list)
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float | None = None
    sentiment: float | None = None  # per-turn sentiment score of a customer message
    agent_id: str | None = None  # role "agent": the agent who wrote it
    route: str | None = None  # the model route of the turn: "faq", "complex", … (kefu.llm.routing)
    cost: float | None = None  # what the turn's model calls cost, in the model matrix's currency
    cache: str | None = None  # "exact" / "semantic" when the reply came from the answer cache
    # a customer message's id given by the client (Idempotency-Key): a retry is answered, not stored again
    client_id: str | None = None
    experiment: str | None = None  # the A/B test this answer was given under (kefu.experiments)
    experiment_arm: str | None = None  # …and the conversation's arm in it


@runtime_checkable
class ConversationStore(Protocol):
    def create_conversation(self, *, channel: str, external_user: str | None = None) -> ConversationRecord:
        """Create and return a new open conversation."""
        ...

    def get_conversation(self, conversation_id: str) -> ConversationRecord:
        """Return it, or raise ``kefu.errors.NotFound`` naming the id."""
        ...

    def find_conversation(self, *, channel: str, external_user: str) -> ConversationRecord | None:
        """The most recent open conversation of this user on this channel, if any."""
        ...

    def add_message(
        self, conversation_id: str, role: MessageRole, content: str, **meta: Any
    ) -> MessageRecord:
        """Append a message (``meta``: the optional MessageRecord fields). Durable when it returns.
        Raises ``NotFound`` for an unknown conversation."""
        ...

    def list_messages(self, conversation_id: str, *, limit: int | None = None) -> list[MessageRecord]:
        """Messages in the order they were added (the last ``limit`` ones when given)."""
        ...

    def find_sent(
        self, conversation_id: str, client_id: str
    ) -> tuple[MessageRecord, MessageRecord | None] | None:
        """The customer message stored under the client's id, and the bot's reply to it if one was
        stored (the next assistant message before the customer's next message); None when not sent."""
        ...

    def ping(self) -> None:
        """Raise if the backend cannot be reached (used by /readyz)."""
        ...


@dataclass
class Turn:
    user: str
    assistant: str


@dataclass
class SessionState:
    """Multi-turn state of one conversation: the recent turns verbatim plus a summary of older ones."""

    session_id: str
    conversation_id: str
    turns: list[Turn] = field(default_factory=list)
    summary: str = ""
    sentiment: list[float] = field(default_factory=list)  # the customer's recent per-turn scores
    flow: str | None = None  # an ongoing task flow (kefu.flows.FlowState as JSON), resumed next turn
    updated_at: float = field(default_factory=time.time)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str | bytes) -> SessionState:
        data = json.loads(raw)
        data["turns"] = [Turn(**t) for t in data.get("turns", [])]
        return cls(**data)


@runtime_checkable
class SessionStore(Protocol):
    def load(self, session_id: str) -> SessionState | None:
        """The state, or None when absent or expired (TTL)."""
        ...

    def save(self, state: SessionState) -> None:
        """Store it and (re)start its TTL."""
        ...

    def delete(self, session_id: str) -> None: ...

    def ping(self) -> None: ...
