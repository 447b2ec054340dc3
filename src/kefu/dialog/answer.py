"""The plan of one turn's reply, shared by the orchestrator and its stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kefu.dialog.extractive import Extract
from kefu.kb.types import Hit
from kefu.llm.base import ChatRequest, Usage


@dataclass
class Answer:
    """What one turn will say and why: built by the stages (flow, knowledge, handoff), then produced,
    persisted and audited by ``Assistant``."""

    kind: str
    hits: list[Hit] = field(default_factory=list)
    text: str = ""
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    status: str = "ok"
    request: ChatRequest | None = None
    flow_state: str | None = None  # the flow to resume next turn (JSON), None when none is ongoing
    flow_data: dict[str, Any] = field(default_factory=dict)
    kb_version: str = ""  # the knowledge-base version searched for this answer ("v7"), if any
    disclaimers: list[str] = field(default_factory=list)
    topic: str | None = None  # the scope guard's refused topic ("legal", …)
    handoff: dict[str, Any] | None = None  # the handoff this turn opened (its customer view)
    extract: Extract | None = None  # the knowledge base's own sentences for this question (grounded)
    mode: str = ""  # how a knowledge answer was written: extractive, rephrase, translate, generate, policy
    policy: dict[str, Any] | None = None  # the policy rules' verdicts for a hypothetical question
    output: str | None = None  # what the model returned, when that is not what was sent (replaced)
    reminder: str = ""  # appended after the answer: what a waiting flow still needs from the customer
    route: str = ""  # the model route chosen for this turn ("faq", "complex", …; see llm/routing)
    cost: float = 0.0  # what this turn's model calls cost, in the matrix's currency units
    cache: str = ""  # "exact" / "semantic" when the answer came from the answer cache, else ""
    experiment: str = ""  # the A/B test the conversation is in (kefu.experiments), recorded per turn
    arm: str = ""  # …and its arm there
