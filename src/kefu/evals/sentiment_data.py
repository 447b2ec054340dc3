"""The Chinese review set used to train and score the sentiment model, and its fixed train/held-out split.

``chinese_sentiment/online_shopping_10_cats.csv`` (``cat,label,review``; label 1 = positive).
Rows are de-duplicated by text (texts seen with both labels are dropped), then split by a hash of
the text: one in five is held out. The split needs no stored indices, so the trainer and
``kefu eval sentiment`` agree on it on any machine.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from kefu.errors import InvalidInput

REVIEWS = Path("chinese_sentiment/online_shopping_10_cats.csv")
NEUTRAL = Path("bq_corpus/dev_half.tsv")
DEMO_FAQ = Path(__file__).parents[1] / "demo_shop" / "faq" / "faq_zh.json"
HELD_OUT_BUCKETS = 5  # 1 in 5 held out


@dataclass(frozen=True)
class Review:
    category: str
    positive: bool
    text: str


def is_held_out(text: str) -> bool:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % HELD_OUT_BUCKETS == 0


def load_reviews(eval_dir: Path) -> list[Review]:
    """Every usable review, de-duplicated by text, in file order."""
    path = eval_dir / REVIEWS
    if not path.is_file():
        raise InvalidInput(
            f"No Chinese sentiment data at {path}. Pass --data pointing at the shared evaluation "
            "folder (e.g. ../shared/eval) that holds chinese_sentiment/online_shopping_10_cats.csv."
        )
    labels: dict[str, set[bool]] = {}
    first: dict[str, Review] = {}
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            text = (row.get("review") or "").strip().lstrip("\ufeff")
            if not text or row.get("label") not in {"0", "1"}:
                continue
            review = Review(row.get("cat") or "", row["label"] == "1", text)
            labels.setdefault(text, set()).add(review.positive)
            first.setdefault(text, review)
    return [r for t, r in first.items() if len(labels[t]) == 1]


def load_neutral(eval_dir: Path) -> list[str]:
    """Plain customer-service questions (both sides of the BQ bank pairs), de-duplicated, in file order.

    Reviews are never neutral, so a model trained on them alone reads topic words ("发货", "退货")
    as complaints; these questions, trained towards P(positive) = 0.5, teach it otherwise.
    """
    path = eval_dir / NEUTRAL
    if not path.is_file():
        raise InvalidInput(
            f"No neutral customer-service questions at {path}. Pass --data pointing at the shared "
            "evaluation folder (e.g. ../shared/eval) that holds bq_corpus/dev_half.tsv."
        )
    texts: dict[str, None] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        for text in line.split("\t")[:2]:
            if text.strip():
                texts.setdefault(text.strip())
    return list(texts)


def shop_questions(faq_path: Path = DEMO_FAQ) -> dict[str, list[str]]:
    """The demo shop's Chinese FAQ questions and paraphrases, by FAQ id (neutral shop questions)."""
    items = json.loads(faq_path.read_text(encoding="utf-8"))
    return {item["id"]: [item["question"], *item.get("similar", [])] for item in items}


def split_reviews(reviews: list[Review]) -> tuple[list[Review], list[Review]]:
    """(train, held out)."""
    train = [r for r in reviews if not is_held_out(r.text)]
    held = [r for r in reviews if is_held_out(r.text)]
    return train, held
