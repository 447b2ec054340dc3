"""Chinese sentiment: logistic regression over character 1–3-grams, weights shipped in ``sentiment_zh.npz``.

The weights are trained by ``python -m kefu.evals.sentiment_train --data DIR`` on the
online_shopping_10_cats reviews (hash split: the rows ``kefu eval sentiment`` scores are never
trained on). The file also records its provenance: a JSON summary (data files and their digests,
categories, split rule, recipe) and, as bitmaps, exactly which review rows and which BQ questions
it was trained on (``trained_reviews`` / ``trained_neutral``), so evals can check their test rows
against it (``kefu eval sentiment``, ``kefu report fairness``). A text's logit is ``bias + sum(w[g] for its known n-grams) / sqrt(all its n-grams)``:
dividing by *all* n-grams, known or not, pulls text the model knows little about towards neutral.
"""

from __future__ import annotations

import json
import math
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from kefu.errors import ConfigError

WEIGHTS = Path(__file__).with_name("sentiment_zh.npz")
NGRAM_SIZES = (1, 2, 3)


def normalize(text: str) -> str:
    """NFKC (full-width → half-width) with whitespace removed; letters keep their case."""
    return "".join(unicodedata.normalize("NFKC", text).split())


def char_ngrams(text: str) -> list[str]:
    """Every character n-gram of the normalised text, n in ``NGRAM_SIZES``, in order (repeats kept)."""
    chars = normalize(text)
    return [chars[i : i + n] for n in NGRAM_SIZES for i in range(len(chars) - n + 1)]


@dataclass(frozen=True)
class ZhSentimentModel:
    vocab: dict[str, int]
    weights: np.ndarray  # (len(vocab),) float32
    bias: float
    provenance: dict[str, object] = field(default_factory=dict)  # empty: an old file, unknown rows
    trained_reviews: frozenset[int] = frozenset()  # review ids (csv data rows) it was trained on
    trained_neutral: frozenset[int] = frozenset()  # BQ question ids (``load_neutral`` order)

    def logit(self, text: str) -> float:
        grams = set(char_ngrams(text))
        if not grams:
            return 0.0
        known = [self.vocab[g] for g in grams if g in self.vocab]
        return self.bias + float(self.weights[known].sum()) / math.sqrt(len(grams))

    def probability(self, text: str) -> float:
        """P(positive) in (0, 1)."""
        return 1.0 / (1.0 + math.exp(-self.logit(text)))

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
        )

    @classmethod
    def load(cls, path: Path = WEIGHTS) -> ZhSentimentModel:
        try:
            with np.load(path) as data:
                grams, weights, bias = data["grams"], data["weights"], float(data["bias"])
                provenance = json.loads(str(data["provenance"])) if "provenance" in data else {}
                reviews = _rows(data["trained_reviews"]) if "trained_reviews" in data else frozenset()
                neutral = _rows(data["trained_neutral"]) if "trained_neutral" in data else frozenset()
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError(
                f"cannot read the Chinese sentiment weights at {path} ({exc}); reinstall kefu or "
                "rebuild them with `python -m kefu.evals.sentiment_train --data ../shared/eval`"
            ) from exc
        vocab = {str(g): i for i, g in enumerate(grams)}
        return cls(vocab, weights.astype(np.float32), bias, provenance, reviews, neutral)


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
