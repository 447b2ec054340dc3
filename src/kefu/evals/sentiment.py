"""``kefu eval sentiment``: the Chinese sentiment scorer on data it was not trained on.

* Held-out reviews (1 in 5 of ``chinese_sentiment``, by text hash; see ``sentiment_data``): binary
  accuracy and macro-F1 of the sign of ``score_sentiment`` (what the product uses) and of the bare
  classifier, per review category too; and how many reviews the three-way label calls neutral.
* Held-out neutral questions (BQ bank questions and demo-shop FAQ items outside the training
  split): the share labelled neutral, and the share wrongly labelled negative (false alarms that
  could feed the escalation signal).

``limit`` samples that many held-out reviews with a fixed seed (the neutral sets are small).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kefu.evals.sentiment_data import (
    NEUTRAL,
    Review,
    is_held_out,
    load_neutral,
    load_reviews,
    shop_questions,
    split_reviews,
)
from kefu.safety.sentiment import score_sentiment
from kefu.safety.sentiment_zh import ZhSentimentModel, bundled_model

SEED = 20240501


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


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


@dataclass
class NeutralScore:
    name: str
    n: int = 0
    neutral: int = 0
    negative: int = 0

    def format_line(self) -> str:
        n = max(self.n, 1)
        return f"{self.name:<34}{self.n:>7}{self.neutral / n:>10.1%}{self.negative / n:>10.1%}"


@dataclass
class SentimentEvalReport:
    product: BinaryScore = field(default_factory=lambda: BinaryScore("score_sentiment (sign)"))
    classifier: BinaryScore = field(default_factory=lambda: BinaryScore("classifier alone (p > 0.5)"))
    categories: dict[str, BinaryScore] = field(default_factory=dict)
    reviews_neutral: int = 0
    neutral_sets: list[NeutralScore] = field(default_factory=list)

    def format_table(self) -> str:
        """The report as a plain-text table (what ``kefu eval sentiment`` prints)."""
        head = f"{'held-out reviews':<34}{'n':>7}{'accuracy':>10}{'macro-F1':>10}"
        lines = [head, self.product.format_line(), self.classifier.format_line()]
        lines += ["  " + s.format_line()[2:] for s in self.categories.values()]
        lines.append(f"reviews labelled neutral (|score| < band): {self.reviews_neutral}/{self.product.n}")
        lines += ["", f"{'held-out neutral questions':<34}{'n':>7}{'neutral':>10}{'negative':>10}"]
        lines += [s.format_line() for s in self.neutral_sets]
        return "\n".join(lines)


def score_held_out(model: ZhSentimentModel, reviews: list[Review]) -> BinaryScore:
    """Binary accuracy / macro-F1 of ``model`` alone on ``reviews``."""
    score = BinaryScore("classifier alone (p > 0.5)")
    for review in reviews:
        score.add(review.positive, model.probability(review.text) > 0.5)
    return score


def _score_reviews(reviews: list[Review], report: SentimentEvalReport) -> None:
    for review in reviews:
        sentiment = score_sentiment(review.text)
        report.product.add(review.positive, sentiment.score > 0)
        category = report.categories.setdefault(review.category, BinaryScore(f"  {review.category}"))
        category.add(review.positive, sentiment.score > 0)
        report.reviews_neutral += sentiment.label == "neutral"
    report.classifier = score_held_out(bundled_model(), reviews)


def _score_neutral(name: str, texts: list[str]) -> NeutralScore:
    score = NeutralScore(name)
    for text in texts:
        label = score_sentiment(text).label
        score.n, score.neutral, score.negative = (
            score.n + 1,
            score.neutral + (label == "neutral"),
            score.negative + (label == "negative"),
        )
    return score


def run_sentiment_eval(
    eval_dir: Path, limit: int | None = None, shop_faq: Callable[[], dict[str, list[str]]] = shop_questions
) -> SentimentEvalReport:
    """Score Chinese sentiment on the held-out reviews (``limit``: a seeded sample) and neutral questions."""
    _, held_out = split_reviews(load_reviews(eval_dir))
    if limit is not None and limit < len(held_out):
        held_out = random.Random(SEED).sample(held_out, limit)
    report = SentimentEvalReport()
    _score_reviews(held_out, report)
    if (eval_dir / NEUTRAL).is_file():
        bank = [t for t in load_neutral(eval_dir) if is_held_out(t)]
        report.neutral_sets.append(_score_neutral("BQ bank questions", bank))
    shop = [q for faq_id, qs in shop_faq().items() if is_held_out(faq_id) for q in qs]
    report.neutral_sets.append(_score_neutral("demo-shop FAQ questions (zh)", shop))
    report.categories = dict(sorted(report.categories.items()))
    return report
