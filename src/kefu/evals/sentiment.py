"""``kefu eval sentiment``: the Chinese sentiment scorer on data it was not trained on, with provenance.

* **Leave one domain out** (the figure that says how it does on product domains it never saw):
  for each of the review categories, the shipped training recipe (``sentiment_train``) is re-run
  on the other categories' training rows, and scored on the held-out rows of the left-out one
  (at most ``Sizes.domain_test`` each, seeded). Every fold checks, by row id, that no test row and
  no row of the left-out category is among its training rows, and prints the overlap (0).
* **In domain, seen**: the shipped model on held-out rows of the categories it was trained on
  (different rows, same domains): the optimistic figure, labelled as such.
* **Customer-service messages** (``sentiment_cs.yaml``, hand-written here, never trained on), dev
  and test apart: three-way accuracy, recall of negative messages, and the share of neutral or
  positive ones wrongly labelled negative.
* **Plain questions** (they should read neutral): held-out BQ bank questions, held-out demo-shop
  FAQ questions (the "misread as negative" rate of issue #12 is this set's ``negative`` column),
  and AFQMC questions (never trained on).

Every set prints where it comes from and how many of its rows the shipped model was trained on.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kefu.evals.sentiment_data import (
    NEUTRAL,
    REVIEWS,
    SPLIT_RULE,
    CsMessage,
    Review,
    cs_messages,
    file_digest,
    is_held_out,
    load_afqmc,
    load_neutral,
    load_reviews,
    shop_questions,
    split_reviews,
    trained_rows,
)
from kefu.evals.sentiment_train import TrainOptions, neutral_anchors, select_reviews, train
from kefu.safety.sentiment import label_of, zh_score
from kefu.safety.sentiment_zh import WEIGHTS, ZhSentimentModel, bundled_model

SEED = 20240501


@dataclass(frozen=True)
class Sizes:
    held_out: int | None = None  # in-domain held-out reviews (None: all ~12k)
    domain_test: int = 500  # held-out rows of the left-out category per fold
    leave_one_out: bool = True


@dataclass
class BinaryScore:
    name: str
    n: int = 0
    tp: int = 0  # positive predicted positive
    fp: int = 0
    tn: int = 0
    fn: int = 0

    def add(self, gold: bool, predicted: bool) -> None:
        self.n += 1
        if gold:
            self.tp, self.fn = self.tp + predicted, self.fn + (not predicted)
        else:
            self.fp, self.tn = self.fp + predicted, self.tn + (not predicted)

    @property
    def accuracy(self) -> float:
        return (self.tp + self.tn) / self.n if self.n else 0.0

    @property
    def macro_f1(self) -> float:
        return (_f1(self.tp, self.fp, self.fn) + _f1(self.tn, self.fn, self.fp)) / 2

    def format_line(self) -> str:
        return f"{self.name:<34}{self.n:>7}{self.accuracy:>10.3f}{self.macro_f1:>10.3f}"

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "accuracy": round(self.accuracy, 4), "macro_f1": round(self.macro_f1, 4)}


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


@dataclass
class NeutralScore:
    name: str
    source: str = ""
    n: int = 0
    neutral: int = 0
    negative: int = 0
    trained_on: int = 0  # rows of this set the shipped model was trained on (must be 0)

    def format_line(self) -> str:
        n = max(self.n, 1)
        return f"{self.name:<34}{self.n:>7}{self.neutral / n:>10.1%}{self.negative / n:>10.1%}"

    def to_dict(self) -> dict[str, Any]:
        n = max(self.n, 1)
        return {
            "source": self.source,
            "n": self.n,
            "neutral_rate": round(self.neutral / n, 4),
            "negative_rate": round(self.negative / n, 4),
            "rows_trained_on": self.trained_on,
        }


@dataclass
class DomainFold:
    """One leave-one-domain-out fold: trained without ``domain``, scored on its held-out rows."""

    domain: str
    trained_rows: int
    product: BinaryScore
    classifier: BinaryScore
    overlap: int  # test rows among the fold's training rows (must be 0)
    domain_rows_in_training: int  # rows of the left-out domain in the fold's training (must be 0)

    def format_line(self) -> str:
        return (
            f"  {self.domain:<10}{self.trained_rows:>8}{self.product.n:>7}{self.product.macro_f1:>10.3f}"
            f"{self.classifier.macro_f1:>12.3f}{self.overlap:>9}"
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["product"], out["classifier"] = self.product.to_dict(), self.classifier.to_dict()
        return out


@dataclass
class CsScore:
    split: str
    n: int = 0
    correct: int = 0
    negatives: int = 0
    negatives_caught: int = 0
    others: int = 0
    false_alarms: int = 0

    def add(self, gold: str, predicted: str) -> None:
        self.n += 1
        self.correct += gold == predicted
        if gold == "negative":
            self.negatives, self.negatives_caught = (
                self.negatives + 1,
                self.negatives_caught + (predicted == gold),
            )
        else:
            self.others, self.false_alarms = self.others + 1, self.false_alarms + (predicted == "negative")

    def format_line(self) -> str:
        return (
            f"  {self.split:<32}{self.n:>7}{self.correct / max(self.n, 1):>11.3f}"
            f"{self.negatives_caught / max(self.negatives, 1):>12.3f}{self.false_alarms / max(self.others, 1):>11.1%}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "accuracy_3way": round(self.correct / max(self.n, 1), 4),
            "negative_recall": round(self.negatives_caught / max(self.negatives, 1), 4),
            "false_negative_alarm_rate": round(self.false_alarms / max(self.others, 1), 4),
        }


@dataclass
class SentimentEvalReport:
    provenance: list[str] = field(default_factory=list)
    product: BinaryScore = field(default_factory=lambda: BinaryScore("score_sentiment (sign)"))
    classifier: BinaryScore = field(default_factory=lambda: BinaryScore("classifier alone (p > 0.5)"))
    categories: dict[str, BinaryScore] = field(default_factory=dict)
    reviews_neutral: int = 0
    held_out_trained_on: int = 0  # held-out reviews the shipped model was trained on (must be 0)
    folds: list[DomainFold] = field(default_factory=list)
    customer_service: list[CsScore] = field(default_factory=list)
    neutral_sets: list[NeutralScore] = field(default_factory=list)

    def format_table(self) -> str:
        """The report as a plain-text table (what ``kefu eval sentiment`` prints)."""
        lines = ["Provenance:", *(f"  {line}" for line in self.provenance), ""]
        if self.folds:
            lines += [
                "leave one domain out (unseen domains: trained without it, scored on its held-out rows)",
                f"  {'domain':<10}{'trained':>8}{'n':>7}{'macro-F1':>10}{'classifier':>12}{'overlap':>9}",
                *(f.format_line() for f in self.folds),
                f"  {'range':<25}{self._lodo_range()}",
                "",
            ]
        else:
            lines += ["leave one domain out: skipped (--no-lodo)", ""]
        head = f"{'in domain, seen (held-out rows)':<34}{'n':>7}{'accuracy':>10}{'macro-F1':>10}"
        lines += [head, self.product.format_line(), self.classifier.format_line()]
        lines += ["  " + s.format_line()[2:] for s in self.categories.values()]
        lines.append(f"reviews labelled neutral (|score| < band): {self.reviews_neutral}/{self.product.n}")
        lines += [
            "",
            f"{'customer-service messages':<34}{'n':>7}{'3-way acc':>11}{'neg recall':>12}{'false neg':>11}",
        ]
        lines += [s.format_line() for s in self.customer_service]
        lines += ["", f"{'plain questions (should be neutral)':<34}{'n':>7}{'neutral':>10}{'negative':>10}"]
        lines += [s.format_line() for s in self.neutral_sets]
        return "\n".join(lines)

    def _lodo_range(self) -> str:
        f1 = [f.product.macro_f1 for f in self.folds]
        return f"macro-F1 {min(f1):.3f}–{max(f1):.3f}, mean {sum(f1) / len(f1):.3f}"

    def to_dict(self) -> dict[str, Any]:
        """Everything in the table, for ``--json`` (CI keeps the history)."""
        return {
            "provenance": self.provenance,
            "leave_one_domain_out": [f.to_dict() for f in self.folds],
            "in_domain_seen": {
                "product": self.product.to_dict(),
                "classifier": self.classifier.to_dict(),
                "categories": {c.strip(): s.to_dict() for c, s in self.categories.items()},
                "labelled_neutral": self.reviews_neutral,
                "rows_trained_on": self.held_out_trained_on,
            },
            "customer_service": {s.split: s.to_dict() for s in self.customer_service},
            "plain_questions": {s.name: s.to_dict() for s in self.neutral_sets},
        }


def score_held_out(model: ZhSentimentModel, reviews: list[Review]) -> BinaryScore:
    """Binary accuracy / macro-F1 of ``model`` alone on ``reviews``."""
    score = BinaryScore("classifier alone (p > 0.5)")
    for review in reviews:
        score.add(review.positive, model.probability(review.text) > 0.5)
    return score


def _sample(items: list[Any], n: int | None, salt: str = "") -> list[Any]:
    return items if n is None or len(items) <= n else random.Random(f"{SEED}{salt}").sample(items, n)


def _score_reviews(
    model: ZhSentimentModel, reviews: list[Review], trained: frozenset[int], report: SentimentEvalReport
) -> None:
    for review in reviews:
        score = zh_score(review.text, model)
        report.product.add(review.positive, score > 0)
        category = report.categories.setdefault(review.category, BinaryScore(f"  {review.category}"))
        category.add(review.positive, score > 0)
        report.reviews_neutral += label_of(score) == "neutral"
    report.classifier = score_held_out(model, reviews)
    report.categories = dict(sorted(report.categories.items()))
    report.held_out_trained_on = sum(r.row in trained for r in reviews)


def leave_one_domain_out(
    reviews: list[Review], anchors: list[str], options: TrainOptions, test_per_domain: int
) -> list[DomainFold]:
    """Each category left out in turn: train the recipe on the rest, score its held-out rows."""
    held_out = split_reviews(reviews)[1]
    folds = []
    for domain in sorted({r.category for r in reviews}):
        chosen = select_reviews(reviews, options, exclude=domain)
        model = train(chosen, anchors, options)
        test = _sample([r for r in held_out if r.category == domain], test_per_domain, domain)
        product, classifier = BinaryScore(domain), BinaryScore(domain)
        for review in test:
            product.add(review.positive, zh_score(review.text, model) > 0)
            classifier.add(review.positive, model.probability(review.text) > 0.5)
        trained = {r.row for r in chosen}
        folds.append(
            DomainFold(
                domain,
                len(chosen),
                product,
                classifier,
                overlap=sum(r.row in trained for r in test),
                domain_rows_in_training=sum(r.category == domain for r in chosen),
            )
        )
    return folds


def _score_neutral(name: str, source: str, texts: list[str], trained_on: int = 0) -> NeutralScore:
    score = NeutralScore(name, source, trained_on=trained_on)
    for text in texts:
        label = label_of(zh_score(text, bundled_model()))
        score.n, score.neutral, score.negative = (
            score.n + 1,
            score.neutral + (label == "neutral"),
            score.negative + (label == "negative"),
        )
    return score


def _score_cs(model: ZhSentimentModel, messages: list[CsMessage]) -> list[CsScore]:
    out = {split: CsScore(split) for split in ("dev", "test")}
    for message in messages:
        out[message.split].add(message.label, label_of(zh_score(message.text, model)))
    return list(out.values())


def _provenance(eval_dir: Path, model: ZhSentimentModel) -> list[str]:
    lines = [f"model: {WEIGHTS.name} (python -m kefu.evals.sentiment_train)"]
    record: Any = model.provenance
    if record:
        reviews = record["reviews"]
        cats = ", ".join(f"{c} {n}" for c, n in reviews["categories"].items())
        lines.append(f"  trained on {reviews['rows_trained']} rows of {reviews['file']} ({cats})")
        lines.append(
            f"  + {record['neutral']['bq']['questions']} BQ questions, {len(record['neutral']['faq']['ids'])} "
            "demo-shop FAQ items as neutral anchors; split: " + reviews["split"]
        )
        digest = file_digest(eval_dir / REVIEWS)
        if digest != reviews["sha256_16"]:
            lines.append(
                f"  NOTE: {REVIEWS} here (sha256 {digest}) is not the file the model was built from "
                f"({reviews['sha256_16']})"
            )
    else:
        lines.append(
            "  WARNING: the model file records no training rows; overlap checks fall back to the split rule"
        )
    lines += [
        f"leave one domain out: {REVIEWS} held-out rows ({SPLIT_RULE}); each fold re-trains the recipe",
        "in domain, seen: the same held-out rows, scored by the shipped model (its categories, not its rows)",
        "customer-service messages: evals/sentiment_cs.yaml, written here by hand, never trained on",
        f"plain questions: {NEUTRAL} held-out half-sides; demo_shop/faq/faq_zh.json held-out FAQ ids; "
        "afqmc/dev_half.jsonl (never trained on)",
    ]
    return lines


def run_sentiment_eval(
    eval_dir: Path,
    limit: int | None = None,
    shop_faq: Callable[[], dict[str, list[str]]] = shop_questions,
    *,
    sizes: Sizes | None = None,
    options: TrainOptions | None = None,
) -> SentimentEvalReport:
    """Score Chinese sentiment on data the model never saw (``limit``: a seeded sample of held-out reviews)."""
    sizes = sizes or Sizes(held_out=limit, leave_one_out=False)
    reviews = load_reviews(eval_dir)
    model = bundled_model()
    report = SentimentEvalReport(provenance=_provenance(eval_dir, model))
    if sizes.leave_one_out:
        anchors = neutral_anchors(eval_dir).texts if (eval_dir / NEUTRAL).is_file() else []
        report.folds = leave_one_domain_out(reviews, anchors, options or TrainOptions(), sizes.domain_test)
        bad = [f.domain for f in report.folds if f.overlap or f.domain_rows_in_training]
        report.provenance.append(
            "leave one domain out overlap check (by row id): "
            + (f"FAILED for {', '.join(bad)}" if bad else "no test row in any fold's training rows")
        )
    trained_reviews, trained_bq, note = trained_rows(model, eval_dir)
    report.provenance.append(f"overlap checks against the shipped model: {note}")
    held_out = _sample(split_reviews(reviews)[1], sizes.held_out)
    _score_reviews(model, held_out, trained_reviews, report)
    report.provenance.append(
        f"in domain, seen: {len(held_out)} held-out rows, {report.held_out_trained_on} of them in the model's "
        "training rows" + (" (should be 0: rebuild the model)" if report.held_out_trained_on else "")
    )
    report.customer_service = _score_cs(model, cs_messages())
    if (eval_dir / NEUTRAL).is_file():
        indexed = list(enumerate(load_neutral(eval_dir)))
        bank = [(i, t) for i, t in indexed if is_held_out(t)]
        overlap = sum(i in trained_bq for i, _ in bank)
        report.neutral_sets.append(
            _score_neutral("BQ bank questions", f"{NEUTRAL} held out", [t for _, t in bank], overlap)
        )
    shop = [q for faq_id, qs in shop_faq().items() if is_held_out(faq_id) for q in qs]
    report.neutral_sets.append(
        _score_neutral("demo-shop FAQ questions (zh)", "faq_zh.json held-out ids", shop)
    )
    afqmc = load_afqmc(eval_dir)
    if afqmc:
        report.neutral_sets.append(_score_neutral("AFQMC questions", "afqmc/dev_half.jsonl", afqmc))
    return report
