"""Knowledge-base value types shared by ingestion, the index and the dialog layer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

Decision = Literal["faq", "grounded", "none"]


@dataclass(frozen=True)
class Chunk:
    id: str  # stable across rebuilds of the same content, e.g. "docs/shipping.md#3" or "faq:ship-001"
    doc_id: str  # the document it came from, e.g. "docs/shipping.md" or "faq/faq.json"
    kind: Literal["doc", "faq"]
    title: str  # document title (FAQ: the question)
    section: str  # heading path, e.g. "配送说明 > 偏远地区"
    text: str  # what is shown to the model and cited
    source: str  # path relative to the KB root
    question: str | None = None  # FAQ only
    answer: str | None = None  # FAQ only: answered verbatim when matched with high confidence
    lang: str = "zh"
    updated_at: str | None = None  # ISO 8601: when the source document last changed


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float  # fused score used for ranking
    dense: float  # cosine similarity of the query with the chunk (0 when not a dense hit)
    sparse: float  # BM25 score (0 when not a keyword hit)


@dataclass(frozen=True)
class Retrieval:
    query: str
    hits: list[Hit]  # best first, at most k
    confidence: float  # one number in [0, 1] that drives ``decision``
    decision: Decision  # "faq": answer ``faq`` verbatim; "grounded": LLM on ``hits``; "none": offer a human
    faq: Hit | None = None
    version: str = ""  # the knowledge-base version searched, e.g. "v7"
    # When the best key is an FAQ question: how far it leads the next FAQ's best question (else 0)
    faq_lead: float = 0.0
    # The query could not be embedded (the embeddings endpoint is down): hits ranked by BM25 alone,
    # decision "none" — no calibrated confidence for an FAQ or grounded answer
    keywords_only: bool = False


class Embedder(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        """(n, dim) float32, L2-normalised."""
        ...

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        """(n, dim) float32, L2-normalised."""
        ...


class Retriever(Protocol):
    """What the dialog layer needs from a knowledge base."""

    @property
    def version(self) -> str: ...

    def search(self, query: str, k: int = 4) -> Retrieval: ...
