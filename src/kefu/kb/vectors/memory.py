"""``MemoryIndex``: exact inner-product search over a numpy matrix, in process, not persisted.

The reference the other backends are tested against (tests/test_kb_vectors.py), and the backend for
tests and small packs. Rows live in one float32 matrix that grows by doubling; a deleted row is
filled by the last row, so the matrix never has holes.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from kefu.kb.vectors.common import best_first, check_dim, check_query, check_vectors, safe_name


class MemoryIndex:
    name = "memory"

    def __init__(self, dim: int, namespace: str = "default") -> None:
        self.dim = check_dim(dim)
        self.namespace = namespace
        safe_name(namespace)
        self._matrix = np.zeros((0, dim), dtype=np.float32)
        self._ids: list[str] = []
        self._row: dict[str, int] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryIndex(dim={self.dim}, namespace={self.namespace!r}, size={len(self)})"

    def upsert(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        ids, vectors = check_vectors(ids, vectors, self.dim, repr(self))
        with self._lock:
            for id_, vector in zip(ids, vectors, strict=True):
                row = self._row.get(id_)
                if row is None:
                    row = self._append(id_)
                self._matrix[row] = vector

    def delete(self, ids: Sequence[str]) -> None:
        with self._lock:
            for id_ in ids:
                row = self._row.pop(id_, None)
                if row is None:
                    continue
                last = len(self._ids) - 1
                if row != last:
                    moved = self._ids[last]
                    self._matrix[row] = self._matrix[last]
                    self._ids[row] = moved
                    self._row[moved] = row
                self._ids.pop()

    def search(self, query: np.ndarray, k: int) -> list[tuple[str, float]]:
        q = check_query(query, self.dim, repr(self))
        with self._lock:
            n = len(self._ids)
            if k <= 0 or n == 0:
                return []
            scores = self._matrix[:n] @ q
            candidates = np.arange(n)
            if k < n:
                kth_best = -np.partition(-scores, k - 1)[k - 1]
                candidates = np.flatnonzero(scores >= kth_best)  # every tie at the boundary
            pairs = [(self._ids[i], float(scores[i])) for i in candidates]
        return best_first(pairs, k)

    def ids(self) -> set[str]:
        with self._lock:
            return set(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def drop(self) -> None:
        """Remove every vector."""
        with self._lock:
            self._matrix = np.zeros((0, self.dim), dtype=np.float32)
            self._ids.clear()
            self._row.clear()

    def close(self) -> None:
        """Nothing to release: the vectors go with the object."""

    def _append(self, id_: str) -> int:
        row = len(self._ids)
        if row == self._matrix.shape[0]:
            grown = np.zeros((max(16, 2 * row), self.dim), dtype=np.float32)
            grown[:row] = self._matrix
            self._matrix = grown
        self._ids.append(id_)
        self._row[id_] = row
        return row
