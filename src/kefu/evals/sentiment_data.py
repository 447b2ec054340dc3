"""The data the Chinese sentiment model is trained and scored on, its fixed split, and row ids.

* Reviews: ``chinese_sentiment/online_shopping_10_cats.csv`` (``cat,label,review``; label 1 =
  positive, 10 product/service categories = the *domains*). Rows are de-duplicated by text (texts
  seen with both labels are dropped), then split by a hash of the text: one in five is held out.
  A review's id is its 0-based data row in the file (first occurrence), so a model can record
  exactly which rows it was trained on (``sentiment_zh`` stores them) and an eval can check its
  test rows against that record.
* Neutral anchors: both sides of the BQ bank question pairs (``bq_corpus/dev_half.tsv``,
  de-duplicated; id = index in that order) and the demo shop's Chinese FAQ questions (id = FAQ id),
  split by the same hash (of the text, or of the FAQ id).
* Never trained on: AFQMC questions (``afqmc/dev_half.jsonl``) and the hand-written
  customer-service messages in ``sentiment_cs.yaml`` (dev/test split written into the file).
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kefu.errors import InvalidInput
from kefu.safety.sentiment_zh import ZhSentimentModel

REVIEWS = Path("chinese_sentiment/online_shopping_10_cats.csv")
NEUTRAL = Path("bq_corpus/dev_half.tsv")
AFQMC = Path("afqmc/dev_half.jsonl")
DIALOGUE = Path("dialogflow_zh")
# Dialogflow small-talk intents (Chinese translations), mapped by their names to what the customer
# feels about the agent. Other moods (sad, lonely, tired: the customer's own, not about the service)
# and greetings are left out; the support intents (contacts, about, …) are plain questions.
DIALOGUE_NEGATIVE = frozenset(
    f"smalltalk.{n}"
    for n in (
        [
            "agent.annoying",
            "agent.bad",
            "agent.boring",
            "agent.crazy",
            "appraisal.bad",
            "dialog.wrong",
            "user.angry",
        ]
    )
)
DIALOGUE_POSITIVE = frozenset(
    f"smalltalk.{n}"
    for n in [
        "agent.beautiful",
        "agent.clever",
        "agent.funny",
        "agent.good",
        "appraisal.good",
        "appraisal.thank_you",
        "appraisal.well_done",
        "user.likes_agent",
        "user.loves_agent",
        "user.happy",
        "user.excited",
    ]
)
DEMO_FAQ = Path(__file__).parents[1] / "demo_shop" / "faq" / "faq_zh.json"
CS_MESSAGES = Path(__file__).with_name("sentiment_cs.yaml")
HELD_OUT_BUCKETS = 5  # 1 in 5 held out
SPLIT_RULE = "held out iff int(sha256(text)[:4 bytes], big-endian) % 5 == 0 (FAQ: of the FAQ id)"


@dataclass(frozen=True)
class Review:
    category: str
    positive: bool
    text: str
    row: int = -1  # 0-based data row in the csv (first occurrence); -1 for rows built in code


@dataclass(frozen=True)
class CsMessage:
    split: str  # dev | test
    label: str  # negative | neutral | positive
    text: str


def is_held_out(text: str) -> bool:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % HELD_OUT_BUCKETS == 0


def file_digest(path: Path) -> str:
    """sha256 of a data file (first 16 hex digits): which version of the data a model was built from."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


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
        for row_number, row in enumerate(csv.DictReader(handle)):
            text = (row.get("review") or "").strip().lstrip("\ufeff")
            if not text or row.get("label") not in {"0", "1"}:
                continue
            review = Review(row.get("cat") or "", row["label"] == "1", text, row_number)
            labels.setdefault(text, set()).add(review.positive)
            first.setdefault(text, review)
    return [r for t, r in first.items() if len(labels[t]) == 1]


def load_neutral(eval_dir: Path) -> list[str]:
    """Plain customer-service questions (both sides of the BQ bank pairs), de-duplicated, in file order.

    Reviews are never neutral, so a model trained on them alone reads topic words ("发货", "退货")
    as complaints; these questions, trained towards P(positive) = 0.5, teach it otherwise.
    A question's id is its index in the returned list.
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


def load_afqmc(eval_dir: Path) -> list[str]:
    """Both sides of the AFQMC (Alipay) question pairs, de-duplicated; [] when the file is absent."""
    path = eval_dir / AFQMC
    if not path.is_file():
        return []
    texts: dict[str, None] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line) if line.strip() else {}
        for key in ("sentence1", "sentence2"):
            if str(row.get(key) or "").strip():
                texts.setdefault(str(row[key]).strip())
    return list(texts)


@dataclass(frozen=True)
class DialogueMessage:
    intent: str
    label: str  # negative | positive | neutral
    text: str


def load_dialogue(eval_dir: Path) -> list[DialogueMessage]:
    """Chat-style messages from ``dialogflow_zh`` (never trained on): small-talk utterances about the
    agent, labelled by intent (``DIALOGUE_NEGATIVE`` / ``DIALOGUE_POSITIVE``), and the support intents'
    plain questions (neutral; ``support.problem`` and ``support.feedback`` left out). [] when absent."""
    out: list[DialogueMessage] = []
    for part in ("small-talk", "support"):
        path = eval_dir / DIALOGUE / part / "data.json"
        if not path.is_file():
            continue
        rows = json.loads(path.read_text(encoding="utf-8"))["rasa_nlu_data"]["common_examples"]
        for row in rows:
            intent, text = str(row.get("intent") or ""), str(row.get("text") or "").strip()
            if not text:
                continue
            if intent in DIALOGUE_NEGATIVE:
                out.append(DialogueMessage(intent, "negative", text))
            elif intent in DIALOGUE_POSITIVE:
                out.append(DialogueMessage(intent, "positive", text))
            elif part == "support" and not intent.startswith(("support.problem", "support.feedback")):
                out.append(DialogueMessage(intent, "neutral", text))
    return out


def shop_questions(faq_path: Path = DEMO_FAQ) -> dict[str, list[str]]:
    """The demo shop's Chinese FAQ questions and paraphrases, by FAQ id (neutral shop questions)."""
    items = json.loads(faq_path.read_text(encoding="utf-8"))
    return {item["id"]: [item["question"], *item.get("similar", [])] for item in items}


def cs_messages(path: Path = CS_MESSAGES) -> list[CsMessage]:
    """The hand-written customer-service messages (see the file's header for their provenance)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [CsMessage(m["split"], m["label"], m["text"]) for m in data["messages"]]


def split_reviews(reviews: list[Review]) -> tuple[list[Review], list[Review]]:
    """(train, held out)."""
    train = [r for r in reviews if not is_held_out(r.text)]
    held = [r for r in reviews if is_held_out(r.text)]
    return train, held


def trained_rows(model: ZhSentimentModel, eval_dir: Path) -> tuple[frozenset[int], frozenset[int], str]:
    """(review ids, BQ question ids) that ``model`` was trained on *in the files under eval_dir*, and a
    note saying how that was decided.

    The ids in the model file refer to the data files it was built from (their digests are in its
    provenance): a different file (a test fixture, a newer release) shares no row ids with them, so
    nothing of it was trained on. A model file without provenance falls back to the split rule.
    """
    record: dict[str, Any] = dict(model.provenance)
    reviews_path, bq_path = eval_dir / REVIEWS, eval_dir / NEUTRAL
    if not record:
        reviews = load_reviews(eval_dir) if reviews_path.is_file() else []
        bq = load_neutral(eval_dir) if bq_path.is_file() else []
        return (
            frozenset(r.row for r in reviews if not is_held_out(r.text)),
            frozenset(i for i, t in enumerate(bq) if not is_held_out(t)),
            "the model file records no rows: assumed trained on the whole training split",
        )
    same_reviews = reviews_path.is_file() and file_digest(reviews_path) == record["reviews"]["sha256_16"]
    same_bq = bq_path.is_file() and file_digest(bq_path) == record["neutral"]["bq"]["sha256_16"]
    note = "row ids recorded in the model file" + (
        ""
        if same_reviews and same_bq
        else " (a data file here differs from the one it was built from: no shared rows)"
    )
    return (
        model.trained_reviews if same_reviews else frozenset(),
        model.trained_neutral if same_bq else frozenset(),
        note,
    )
