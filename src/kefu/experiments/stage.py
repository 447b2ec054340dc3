"""An arm's knowledge stage: the same stage on the arm's settings, its model route forced, and the
retriever's decision redrawn at the arm's thresholds."""

from __future__ import annotations

from dataclasses import dataclass, replace

from kefu.dialog.knowledge import KnowledgeStage
from kefu.kb.ranking import decide
from kefu.kb.types import Hit, Retrieval, Retriever
from kefu.storage.base import SessionState


@dataclass
class ArmKnowledgeStage(KnowledgeStage):
    forced_route: str = ""  # the arm's model route (KEFU_MODELS): every question of the arm takes it

    def _scenario(self, state: SessionState, question: str, parts: list[str], hits: list[Hit]) -> str:
        chosen = super()._scenario(state, question, parts, hits)
        return self.forced_route if self.forced_route and chosen else chosen


class ThresholdRetriever:
    """``kb`` with the decision redrawn at other thresholds. An FAQ verbatim needs the index's FAQ
    checks (a paraphrase with a clear lead), so an arm's FAQ threshold can only make that stricter."""

    def __init__(self, kb: Retriever, faq_threshold: float, grounded_threshold: float) -> None:
        self.kb, self.faq_threshold, self.grounded_threshold = kb, faq_threshold, grounded_threshold

    @property
    def version(self) -> str:
        return str(getattr(self.kb, "version", ""))

    def search(self, query: str, k: int = 4) -> Retrieval:
        found = self.kb.search(query, k)
        if found.keywords_only or not found.hits:
            return found
        decision = decide(
            found.confidence, found.faq is not None, self.faq_threshold, self.grounded_threshold
        )
        return replace(found, decision=decision, faq=found.faq if decision == "faq" else None)

    def __getattr__(self, name: str) -> object:
        return getattr(self.kb, name)
