"""Three rankings from one ``KnowledgeBase.search`` call, and the metrics over them.

``search(query, k=<every chunk>)`` returns every chunk in the fused order the knowledge base uses
(an answered FAQ first), each hit carrying its dense cosine and BM25 score. So one call gives:

* fused: the units (FAQs or documents) in the order of their first hit — exactly what the KB serves;
* dense-only / BM25-only: units by their best chunk's dense / BM25 score. Ties are ranked
  pessimistically (a unit tied with others is ranked after all of them), so a query sharing no
  word with any candidate ranks every unit last under BM25 instead of winning by list order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kefu.evals.retrieval_data import EvalSet, Query, Unit, unit_of
from kefu.kb.embeddings import EmbeddingCache, embed_cached
from kefu.kb.index import KnowledgeBase
from kefu.kb.ranking import max_per_chunk
from kefu.kb.types import Decision, Embedder

RANKERS = ("fused", "dense", "bm25")


class CachingEmbedder:
    """An ``Embedder`` that looks every text up in an ``EmbeddingCache`` before embedding it, so
    queries embedded once in a batch cost a SQLite read when the KB embeds them one by one."""

    def __init__(self, inner: Embedder, cache: EmbeddingCache) -> None:
        self.name, self.dim = inner.name, inner.dim
        self._inner, self._cache = inner, cache

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return embed_cached(self._inner, self._cache, texts, "query")

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return embed_cached(self._inner, self._cache, texts, "passage")


@dataclass(frozen=True)
class Layout:
    """Which unit (FAQ or document) each chunk of a set belongs to."""

    units: list[str]
    chunk_unit: np.ndarray  # chunk index -> unit index
    chunk_index: dict[str, int]  # chunk id -> chunk index

    @classmethod
    def of(cls, eval_set: EvalSet) -> Layout:
        names = [unit_of(c, eval_set.unit) for c in eval_set.pack.chunks]
        units = list(dict.fromkeys(names))
        index = {u: i for i, u in enumerate(units)}
        chunk_unit = np.array([index[n] for n in names], dtype=np.int64)
        return cls(units, chunk_unit, {c.id: i for i, c in enumerate(eval_set.pack.chunks)})


@dataclass(frozen=True)
class Ranked:
    gold_ranks: dict[str, list[int]]  # ranker -> 1-based rank of each gold unit
    confidence: float
    decision: Decision
    top_unit: str  # unit of the best dense match: what a "faq" decision answers in an FAQ-only pack
    answered: str | None  # unit answered verbatim (decision "faq"), else None
    lead: float = 0.0  # the best FAQ question's lead over the next FAQ's (Retrieval.faq_lead)


def rank_query(kb: KnowledgeBase, layout: Layout, query: Query, unit: Unit) -> Ranked:
    result = kb.search(query.text, k=len(layout.chunk_unit))
    dense = np.full(len(layout.chunk_unit), -np.inf, dtype=np.float32)
    sparse = np.zeros(len(layout.chunk_unit), dtype=np.float32)
    fused: dict[str, int] = {}
    for hit in result.hits:
        i = layout.chunk_index[hit.chunk.id]
        dense[i], sparse[i] = hit.dense, hit.sparse
        fused.setdefault(layout.units[layout.chunk_unit[i]], len(fused) + 1)
    n = len(layout.units)
    by_dense = max_per_chunk(dense, layout.chunk_unit, n)
    by_bm25 = max_per_chunk(sparse, layout.chunk_unit, n)
    position = {u: i for i, u in enumerate(layout.units)}
    gold = [position[g] for g in sorted(query.gold) if g in position]
    ranks = {
        "fused": [fused[layout.units[g]] for g in gold],
        "dense": [pessimistic_rank(by_dense, g) for g in gold],
        "bm25": [pessimistic_rank(by_bm25, g) for g in gold],
    }
    answered = unit_of(result.faq.chunk, unit) if result.faq is not None else None
    top = layout.units[int(np.argmax(by_dense))]
    return Ranked(ranks, result.confidence, result.decision, top, answered, result.faq_lead)


def pessimistic_rank(scores: np.ndarray, index: int) -> int:
    """1 + the number of other units scoring at least as high as ``scores[index]``."""
    return int(np.count_nonzero(scores >= scores[index]))


def recall_at(ranks: list[int], k: int, unit: Unit) -> float:
    """FAQ: 1 when any gold FAQ is in the top ``k``; documents: the share of gold documents there."""
    if not ranks:
        return 0.0
    if unit == "faq":
        return float(min(ranks) <= k)
    return sum(r <= k for r in ranks) / len(ranks)


def reciprocal_rank(ranks: list[int]) -> float:
    return 1.0 / min(ranks) if ranks else 0.0
