"""``FaissIndex``: exact inner-product search with FAISS, persisted in a local folder.

Files, for namespace ``ns`` in ``directory``:

    ns.ids.json            the commit record: dim, the FAISS file's name and sha256, string id → FAISS id
    ns.<sha256[:16]>.faiss an ``IndexIDMap2(IndexFlatIP)`` in FAISS's own format (``faiss.read_index`` opens it)

Saving writes the new ``.faiss`` file under a new name (temp file, fsync, ``os.replace``), then
replaces ``ns.ids.json`` the same way; that replace is the commit. A crash at any point leaves the
previous commit whole (a half-written file is never named by ``ns.ids.json``), and the next save
removes files no commit names. Loading checks the sha256, so a damaged file is reported, never used.

When is it on disk? With ``autosave=True`` (the default) every ``upsert``/``delete`` call saves
before it returns: one call = one durable batch, so batch your writes (a save rewrites the whole
file: ~150 MB at 100k vectors of dim 384, 0.9 s on a shared 2-core machine, during which searches
wait). With ``autosave=False`` nothing is written until ``save()`` or ``close()``; a crash loses
the unsaved batches but not the last save. Either way this is a cache of embeddings stored
elsewhere: compare ``ids()`` with what should be there and upsert or delete the difference after
opening.

One writer per folder and namespace: two processes saving the same namespace overwrite each
other's batches (readers in other processes see the last commit when they open it). Use pgvector to
share an index between replicas.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# FAISS's loader logs (at INFO, with a traceback-like ModuleNotFoundError) each optional AVX512/AVX2
# build it cannot import before it loads the one that works: noise at every start-up, not a problem.
logging.getLogger("faiss.loader").setLevel(logging.WARNING)

import faiss  # noqa: E402
import numpy as np  # noqa: E402

from kefu.errors import KnowledgeBaseError  # noqa: E402
from kefu.kb.vectors.common import best_first, check_dim, check_query, check_vectors, safe_name  # noqa: E402

FORMAT = 1


class FaissIndex:
    name = "faiss"

    def __init__(
        self, directory: Path, dim: int, namespace: str, *, autosave: bool = True, threads: int | None = 1
    ) -> None:
        """``threads``: FAISS's OpenMP threads, process-wide (``None`` leaves FAISS's default, all cores).
        A single query is fastest on one thread: with two, a busy 2-core machine spent 5x longer per
        search at 100k vectors (OpenMP threads waiting for a core), and the app has other work for
        the cores (request threads, the local model)."""
        if threads is not None:
            faiss.omp_set_num_threads(threads)
        self.dim = check_dim(dim)
        self.namespace = namespace
        self.directory = Path(directory)
        self.autosave = autosave
        self._safe = safe_name(namespace)
        self._lock = threading.RLock()
        self._dirty = False
        self._index: Any = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._label: dict[str, int] = {}  # string id -> FAISS int64 id
        self._id: dict[int, str] = {}
        self._next_label = 0
        self._file: str | None = None  # the .faiss file of the last commit
        self._load()

    @property
    def record_path(self) -> Path:
        """The commit record; with the ``.faiss`` file it names, what to delete to rebuild."""
        return self.directory / f"{self._safe}.ids.json"

    def __repr__(self) -> str:
        return f"FaissIndex({str(self.directory)!r}, dim={self.dim}, namespace={self.namespace!r})"

    def upsert(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        ids, vectors = check_vectors(ids, vectors, self.dim, repr(self))
        if not ids:
            return
        with self._lock:
            self._remove([self._label[i] for i in ids if i in self._label])
            labels = np.arange(self._next_label, self._next_label + len(ids), dtype=np.int64)
            self._next_label += len(ids)
            self._index.add_with_ids(vectors, labels)
            for id_, label in zip(ids, labels.tolist(), strict=True):
                self._label[id_] = label
                self._id[label] = id_
            self._changed()

    def delete(self, ids: Sequence[str]) -> None:
        with self._lock:
            labels = [self._label[i] for i in dict.fromkeys(ids) if i in self._label]
            if not labels:
                return
            self._remove(labels)
            for label in labels:
                del self._label[self._id.pop(label)]
            self._changed()

    def search(self, query: np.ndarray, k: int) -> list[tuple[str, float]]:
        q = check_query(query, self.dim, repr(self)).reshape(1, self.dim)
        with self._lock:
            n = self._index.ntotal
            if k <= 0 or n == 0:
                return []
            last = min(k, n) - 1
            fetch = min(k + 1, n)
            while True:
                scores, labels = self._index.search(q, fetch)
                # FAISS orders equal scores arbitrarily: widen until the k-th score's ties are all in.
                if fetch == n or scores[0, fetch - 1] < scores[0, last]:
                    break
                fetch = min(n, 2 * fetch)
            pairs = [
                (self._id[int(label)], float(score))
                for score, label in zip(scores[0], labels[0], strict=True)
                if label >= 0
            ]
        return best_first(pairs, k)

    def ids(self) -> set[str]:
        with self._lock:
            return set(self._label)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def save(self) -> None:
        """Write the index and id map atomically (see the module docstring); a no-op when unchanged."""
        with self._lock:
            if not self._dirty:
                return
            self.directory.mkdir(parents=True, exist_ok=True)
            data = faiss.serialize_index(self._index).tobytes()
            digest = hashlib.sha256(data).hexdigest()
            file = f"{self._safe}.{digest[:16]}.faiss"
            _write_atomic(self.directory / file, data)
            record = {
                "format": FORMAT,
                "namespace": self.namespace,
                "dim": self.dim,
                "file": file,
                "sha256": digest,
                "next_id": self._next_label,
                "ids": self._label,
            }
            _write_atomic(self.record_path, json.dumps(record, ensure_ascii=False).encode())
            _fsync_dir(self.directory)
            self._file = file
            self._dirty = False
            self._remove_stale_files()

    def drop(self) -> None:
        """Remove every vector and this namespace's files."""
        with self._lock:
            self._index.reset()
            self._label.clear()
            self._id.clear()
            self.record_path.unlink(missing_ok=True)
            for path in self.directory.glob(f"{self._safe}.*.faiss"):
                path.unlink(missing_ok=True)
            self._file = None
            self._dirty = False

    def close(self) -> None:
        """Save unsaved changes (``autosave=False``)."""
        self.save()

    def _changed(self) -> None:
        self._dirty = True
        if self.autosave:
            self.save()

    def _remove(self, labels: list[int]) -> None:
        if labels:
            self._index.remove_ids(np.array(labels, dtype=np.int64))

    def _load(self) -> None:
        if not self.record_path.exists():
            return
        try:
            record = json.loads(self.record_path.read_text(encoding="utf-8"))
            if Path(record["file"]).name != record["file"]:
                raise ValueError(f"its commit record names {record['file']!r}, not a file in the folder")
            data = (self.directory / record["file"]).read_bytes()
            if hashlib.sha256(data).hexdigest() != record["sha256"]:
                raise ValueError(f"{record['file']} does not match the sha256 its commit record names")
            index: Any = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
            labels: dict[str, int] = {str(k): int(v) for k, v in record["ids"].items()}
            stored = faiss.vector_to_array(index.id_map).tolist()
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError) as exc:
            raise self._unreadable(exc) from exc
        if record["dim"] != self.dim or index.d != self.dim:
            raise KnowledgeBaseError(
                f"{self.record_path} holds {index.d}-dimensional vectors but the index was opened with "
                f"dim={self.dim}; use a new namespace for a new embedding model, or delete the namespace's "
                f"files in {self.directory} ({self._safe}.*) to rebuild it"
            )
        if sorted(stored) != sorted(labels.values()):
            raise self._unreadable(ValueError("its id map does not match the vectors in the file"))
        self._index = index
        self._label = labels
        self._id = {v: k for k, v in labels.items()}
        self._next_label = int(record["next_id"])
        self._file = record["file"]

    def _unreadable(self, exc: Exception) -> KnowledgeBaseError:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return KnowledgeBaseError(
            f"the FAISS vector index for namespace {self.namespace!r} in {self.directory} is unreadable "
            f"({reason}); it is only a cache of embeddings stored elsewhere: delete {self.record_path} "
            f"and the {self._safe}.*.faiss files next to it, then restart to rebuild it"
        )

    def _remove_stale_files(self) -> None:
        for path in self.directory.glob(f"{self._safe}.*"):
            stale_faiss = path.suffix == ".faiss" and path.name != self._file
            if stale_faiss or path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
