"""Checks and helpers every vector index shares, so all backends keep the same promises."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from kefu.errors import KnowledgeBaseError

NORM_TOLERANCE = 1e-3  # |‖v‖ - 1| above this is not an L2-normalised vector
_SAFE_MAX = 32


def safe_name(namespace: str) -> str:
    """A lower-case ``[a-z0-9_]`` name for ``namespace``, usable in file and table names. Any namespace
    that is not already such a name (or is longer than 32 characters) gets a hash suffix, so two
    namespaces never share a name."""
    if not isinstance(namespace, str) or not namespace.strip():
        raise KnowledgeBaseError(
            f"vector index namespace {namespace!r} is empty; name it, e.g. after the embedding model"
        )
    base = re.sub(r"[^a-z0-9_]", "_", namespace.lower())[:_SAFE_MAX]
    if base == namespace:
        return base
    return f"{base}_{hashlib.sha256(namespace.encode()).hexdigest()[:8]}"


def check_dim(dim: int) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise KnowledgeBaseError(f"vector index dim must be a positive integer, not {dim!r}")
    return dim


def check_vectors(
    ids: Sequence[str], vectors: np.ndarray, dim: int, where: str
) -> tuple[list[str], np.ndarray]:
    """``ids`` and ``vectors`` validated: (n, dim) float32, finite, L2-normalised, ids unique strings
    (a repeated id keeps its last vector, as two upserts in a row would)."""
    ids = list(ids)
    array = np.asarray(vectors)
    if array.ndim == 1 and array.shape[0] == dim and len(ids) == 1:
        array = array.reshape(1, dim)
    if array.ndim != 2 or array.shape[1] != dim:
        raise KnowledgeBaseError(
            f"vectors of shape {array.shape} do not fit {where}, which holds {dim}-dimensional vectors; "
            "embed with the model the index was built with, or open a new namespace for a new model"
        )
    if array.shape[0] != len(ids):
        raise KnowledgeBaseError(f"{len(ids)} ids but {array.shape[0]} vectors given to {where}")
    bad = [i for i in ids if not isinstance(i, str) or not i]
    if bad:
        raise KnowledgeBaseError(f"vector ids must be non-empty strings; got {bad[:3]!r}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    _check_normalised(array, where)
    last = {id_: row for row, id_ in enumerate(ids)}
    if len(last) != len(ids):
        rows = sorted(last.values())
        return [ids[r] for r in rows], array[rows]
    return ids, array


def check_query(query: np.ndarray, dim: int, where: str) -> np.ndarray:
    """The query as a (dim,) float32 L2-normalised vector (a (1, dim) array is accepted)."""
    array = np.asarray(query, dtype=np.float32)
    if array.ndim == 2 and array.shape[0] == 1:
        array = array[0]
    if array.shape != (dim,):
        raise KnowledgeBaseError(
            f"a query of shape {np.asarray(query).shape} does not fit {where}, which holds "
            f"{dim}-dimensional vectors; embed the query with the model the index was built with"
        )
    array = np.ascontiguousarray(array)
    _check_normalised(array.reshape(1, dim), where)
    return array


def _check_normalised(array: np.ndarray, where: str) -> None:
    if not array.size:
        return
    if not np.isfinite(array).all():
        raise KnowledgeBaseError(f"vectors given to {where} contain NaN or infinity; re-embed the text")
    norms = np.linalg.norm(array, axis=1)
    off = np.flatnonzero(np.abs(norms - 1.0) > NORM_TOLERANCE)
    if off.size:
        raise KnowledgeBaseError(
            f"{off.size} vector(s) given to {where} are not L2-normalised (norm {norms[off[0]]:.4f}); "
            "the index scores by inner product, so divide each vector by its norm first"
        )


def best_first(pairs: list[tuple[str, float]], k: int) -> list[tuple[str, float]]:
    """``pairs`` ordered by score (best first), equal scores by id, cut to ``k``."""
    return sorted(pairs, key=lambda pair: (-pair[1], pair[0]))[:k]
