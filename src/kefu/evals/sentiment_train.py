"""Reproduce ``kefu/safety/sentiment_zh.npz``: ``python -m kefu.evals.sentiment_train --data ../shared/eval``.

L2-regularised logistic regression, numpy only, full-batch Adam, over character 1–3-grams of the
*training* part of the review set (see ``kefu.evals.sentiment_data`` for the split), plus
neutral anchors trained towards P(positive) = 0.5: the training part of the BQ bank questions and
of the demo shop's FAQ questions (reviews are never neutral, so without them every question about
shipping or returns reads as a complaint). The n-grams
kept are those in at least ``min_df`` training reviews (at most ``max_features`` of the most
frequent); after training, only the ``keep`` n-grams with the largest weights are shipped, so the
file stays a few hundred KB. Prints held-out accuracy and macro-F1 of the shipped weights.
"""

from __future__ import annotations

import argparse
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kefu.evals.sentiment_data import (
    Review,
    is_held_out,
    load_neutral,
    load_reviews,
    shop_questions,
    split_reviews,
)
from kefu.safety.sentiment_zh import WEIGHTS, ZhSentimentModel, char_ngrams


@dataclass(frozen=True)
class TrainOptions:
    min_df: int = 3
    max_features: int = 120_000
    keep: int = 40_000
    l2: float = 1e-5
    steps: int = 300
    learning_rate: float = 0.05
    neutral_share: float = 0.5  # total weight of the neutral questions, relative to the reviews


@dataclass(frozen=True)
class SparseRows:
    """A CSR-like matrix: row ``row_of[k]`` has feature ``cols[k]`` with value ``vals[k]``."""

    rows: int
    row_of: np.ndarray
    cols: np.ndarray
    vals: np.ndarray


def build_vocab(texts: list[str], options: TrainOptions) -> dict[str, int]:
    df: Counter[str] = Counter()
    for text in texts:
        df.update(set(char_ngrams(text)))
    ranked = sorted(df.items(), key=lambda item: (-item[1], item[0]))[: options.max_features]
    frequent = [g for g, n in ranked if n >= options.min_df]
    return {g: i for i, g in enumerate(frequent)}


def featurize(texts: list[str], vocab: dict[str, int]) -> SparseRows:
    row_of: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    for row, text in enumerate(texts):
        grams = sorted(set(char_ngrams(text)))  # sorted: the same sums, bit for bit, on every run
        known = [vocab[g] for g in grams if g in vocab]
        row_of += [row] * len(known)
        cols += known
        vals += [1.0 / math.sqrt(max(len(grams), 1))] * len(known)
    return SparseRows(
        len(texts), np.array(row_of, np.int64), np.array(cols, np.int64), np.array(vals, np.float64)
    )


def fit(
    x: SparseRows, y: np.ndarray, sample_weight: np.ndarray, n_features: int, options: TrainOptions
) -> tuple[np.ndarray, float]:
    """Weights and bias minimising the weighted mean log-loss + l2/2 * |w|^2 (Adam, full batch)."""
    share = sample_weight / sample_weight.sum()
    theta = np.zeros(n_features + 1)
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    for step in range(1, options.steps + 1):
        z = theta[-1] + np.bincount(x.row_of, weights=theta[x.cols] * x.vals, minlength=x.rows)
        residual = (1.0 / (1.0 + np.exp(-z)) - y) * share
        grad = np.empty_like(theta)
        grad[:-1] = np.bincount(x.cols, weights=residual[x.row_of] * x.vals, minlength=n_features)
        grad[:-1] += options.l2 * theta[:-1]
        grad[-1] = residual.sum()
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad**2
        theta -= options.learning_rate * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
    return theta[:-1], float(theta[-1])


def prune(vocab: dict[str, int], weights: np.ndarray, bias: float, keep: int) -> ZhSentimentModel:
    order = np.argsort(-np.abs(weights), kind="stable")[:keep]
    grams = list(vocab)
    kept = {grams[i]: rank for rank, i in enumerate(order)}
    return ZhSentimentModel(kept, weights[order].astype(np.float32), bias)


def train(reviews: list[Review], neutral: list[str], options: TrainOptions) -> ZhSentimentModel:
    """Reviews are trained towards their label (1 or 0), neutral questions towards 0.5."""
    texts = [r.text for r in reviews] + neutral
    y = np.array([float(r.positive) for r in reviews] + [0.5] * len(neutral))
    neutral_weight = options.neutral_share * len(reviews) / max(len(neutral), 1)
    sample_weight = np.array([1.0] * len(reviews) + [neutral_weight] * len(neutral))
    vocab = build_vocab(texts, options)
    weights, bias = fit(featurize(texts, vocab), y, sample_weight, len(vocab), options)
    return prune(vocab, weights, bias, options.keep)


def main(argv: list[str] | None = None) -> None:
    from kefu.evals.sentiment import score_held_out

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/eval"))
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    args = parser.parse_args(argv)
    train_set, held_out = split_reviews(load_reviews(args.data))
    neutral = [t for t in load_neutral(args.data) if not is_held_out(t)]
    neutral += [q for faq_id, qs in shop_questions().items() if not is_held_out(faq_id) for q in qs]
    model = train(train_set, neutral, TrainOptions())
    model.save(args.out)
    shipped = ZhSentimentModel.load(args.out)
    print(
        f"trained on {len(train_set)} reviews + {len(neutral)} neutral questions, {len(shipped.vocab)} n-grams -> {args.out}"
    )
    print(score_held_out(shipped, held_out).format_line())


if __name__ == "__main__":
    main()
