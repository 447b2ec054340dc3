"""Keyword retrieval: jieba tokens (Chinese and English) scored with Okapi BM25.

The scorer is a small inverted index with precomputed per-posting weights (Lucene's always-positive
idf), so a query costs one numpy add per query term.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections import Counter
from types import ModuleType

import numpy as np

_STOPWORD_TEXT = """
的 了 吗 呢 吧 啊 呀 哦 嘛 么 嗯 哈 是 在 和 与 及 或 就 都 也 还 又 把 被 让 给 这 那 这个 那个
我 你 您 他 她 它 我们 你们 他们 请问 请 一下 啥 什么 怎么 怎么样 怎样 如何 为什么 可以 能 能不能 会 要 想 有没有
a an the is are was were be been am do does did to of and or in on at for with
i you we it this that what how can could would will my your our me please
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_WORD = re.compile(r"\w", re.UNICODE)
_jieba_lock = threading.Lock()
_jieba_ready = False


def _jieba() -> ModuleType:
    """jieba, initialised once with its start-up chatter (it logs to stderr) silenced."""
    global _jieba_ready
    import jieba

    if not _jieba_ready:
        with _jieba_lock:
            if not _jieba_ready:
                jieba.setLogLevel(logging.WARNING)
                jieba.initialize()
                _jieba_ready = True
    return jieba


def tokenize(text: str) -> list[str]:
    """Search tokens: jieba's fine-grained cut, lower-cased, without punctuation and stopwords."""
    tokens = (t.strip().lower() for t in _jieba().lcut_for_search(text))
    return [t for t in tokens if t and _WORD.search(t) and t not in STOPWORDS and t != "_"]


class BM25:
    """Okapi BM25 over pre-tokenised documents."""

    def __init__(self, docs: list[list[str]], k1: float = 1.2, b: float = 0.75) -> None:
        self.size = len(docs)
        lengths = np.array([len(d) for d in docs], dtype=np.float32)
        avg = float(lengths.mean()) if self.size and lengths.sum() else 1.0
        norm = k1 * (1 - b + b * lengths / avg)
        postings: dict[str, list[tuple[int, int]]] = {}
        for i, doc in enumerate(docs):
            for term, count in Counter(doc).items():
                postings.setdefault(term, []).append((i, count))
        self._postings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for term, rows in postings.items():
            ids = np.array([i for i, _ in rows], dtype=np.int64)
            tf = np.array([t for _, t in rows], dtype=np.float32)
            idf = math.log(1 + (self.size - len(rows) + 0.5) / (len(rows) + 0.5))
            self._postings[term] = (ids, idf * tf * (k1 + 1) / (tf + norm[ids]))

    def scores(self, query_tokens: list[str]) -> np.ndarray:
        """BM25 score of every document for the query (0 where no term matches)."""
        out = np.zeros(self.size, dtype=np.float32)
        for term in query_tokens:
            posting = self._postings.get(term)
            if posting is not None:
                out[posting[0]] += posting[1]
        return out
