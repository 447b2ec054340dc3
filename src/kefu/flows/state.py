"""What a flow conversation carries between turns, and what one turn returns.

``FlowState`` is plain JSON (``to_json`` / ``from_json``): the caller stores it wherever it keeps
sessions, and any process — after a restart too — continues the flow from it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from kefu.errors import InvalidInput

Outcome = Literal["ongoing", "completed", "handoff", "abandoned", "failed"]


@dataclass(frozen=True)
class FlowMessage:
    zh: str
    en: str

    def text(self, lang: str) -> str:
        return self.en if lang == "en" else self.zh


@dataclass
class FlowState:
    flow: str
    conversation_id: str
    started_at: str
    updated_at: str
    step: str | None = None  # the ask waiting for the customer's answer; None once the flow is over
    lang: str = "zh"
    slots: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)  # order, result, verified_order
    asks: dict[str, int] = field(default_factory=dict)  # times each question was asked
    history: list[dict[str, Any]] = field(default_factory=list)
    outcome: Outcome = "ongoing"
    data: dict[str, Any] = field(default_factory=dict)
    last_messages: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> FlowState:
        names = {f.name for f in fields(cls)}
        unknown = set(raw) - names
        if unknown or not {"flow", "conversation_id", "started_at", "updated_at"} <= set(raw):
            raise InvalidInput(
                f"not a stored flow state (unknown keys {sorted(unknown)}, or flow/conversation_id/"
                "timestamps missing) — pass the dict FlowState.to_dict() produced"
            )
        return cls(**json.loads(json.dumps(raw)))  # a deep copy: the caller's dict is never shared

    @classmethod
    def from_json(cls, text: str) -> FlowState:
        return cls.from_dict(json.loads(text))

    def copy(self) -> FlowState:
        return FlowState.from_dict(self.to_dict())


@dataclass
class FlowTurn:
    messages: list[FlowMessage]
    state: FlowState
    outcome: Outcome
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The messages in the customer's language, one paragraph each."""
        return "\n\n".join(m.text(self.state.lang) for m in self.messages)
