"""``kefu report fairness``: do the guards treat customers differently by language or by name?

Fairlearn ``MetricFrame`` per measure (see ``fairness_groups``), per group, with the largest gap
between groups. Samples are drawn with a fixed seed and every figure prints its ``n``.

* Language (zh vs en). Scope guard: false refusals of in-scope questions (demo-shop FAQ and
  paraphrases; bank questions: BQ + AFQMC for zh, banking77 for en) and refusal recall on medical
  questions (``zh_medical_oos`` titles for zh, hand-written for en, plus the same hand-written
  questions in both languages). Sentiment: error rate on polar messages (the same hand-written
  messages in both languages; held-out ``chinese_sentiment`` reviews for zh) and the share of
  plain bank questions wrongly labelled negative. The Chinese classifier was trained on part of
  the reviews and of the BQ questions: the rows its model file records (``sentiment_zh``) are
  excluded from the sentiment figures, and the report says how many were.
* Name (presidio's fake identities: gender, and the ``NameSet`` the name was drawn from). The
  same ordinary requests, each carrying a phone number, filled with names from each group:
  refusal rate, phone redaction rate, name redacted (a name is PII: equal across groups is the aim),
  sentiment mean and negative rate.
  Names are sampled per NameSet, half of each gender, and every group gets the same phone
  numbers, so any gap comes from the name. Nothing here fails on a gap: it prints figures.
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from kefu.errors import InvalidInput
from kefu.evals.fairness_data import MEDICAL_PAIRS, NAME_TEMPLATES, SENTIMENT_PAIRS
from kefu.evals.fairness_groups import GroupTable, Measure, compare_groups, rate_where
from kefu.evals.sentiment_data import REVIEWS, load_neutral, load_reviews, split_reviews, trained_rows
from kefu.safety.pii import redact_pii
from kefu.safety.pii_detect import PiiType
from kefu.safety.scope import DEFAULT_EXAMPLES, QueryEmbedder, ScopeGuard
from kefu.safety.sentiment import NEUTRAL_BAND, score_sentiment
from kefu.safety.sentiment_zh import bundled_model

SEED = 11
DEMO_FAQ = Path(__file__).parents[1] / "demo_shop" / "faq"
FAKE_NAMES = Path("presidio/FakeNameGenerator.com_3000.csv")
BANKING77 = Path("banking77/train.csv")
BQ = Path("bq_corpus/dev_half.tsv")
AFQMC = Path("afqmc/dev_half.jsonl")
MEDICAL = Path("zh_medical_oos/questions_dev.tsv")
_PHONE_TYPES = {PiiType.MOBILE, PiiType.PHONE}
_US_AREA_CODES = ("212", "312", "415", "617", "206", "305", "404", "512")


@dataclass(frozen=True)
class Sizes:
    bank_questions: int = 150  # per language: banking77 (en); BQ + AFQMC (zh)
    medical_zh: int = 150  # zh_medical_oos titles
    reviews_zh: int = 400  # held-out chinese_sentiment reviews
    names_per_group: int = 8  # per presidio NameSet, half of each gender; each fills every template


@dataclass
class FairnessReport:
    tables: list[GroupTable] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def format_table(self) -> str:
        """The report as plain text (what ``kefu report fairness`` prints)."""
        lines = ["Samples (fixed seed):", *(f"  {n}" for n in self.notes)]
        for table in self.tables:
            lines += ["", *table.format_lines()]
        return "\n".join(lines)


def _sample(items: list[str], n: int) -> list[str]:
    return items if len(items) <= n else random.Random(SEED).sample(items, n)


def _shop_questions() -> dict[str, list[str]]:
    out = {}
    for lang in ("zh", "en"):
        items = json.loads((DEMO_FAQ / f"faq_{lang}.json").read_text(encoding="utf-8"))
        out[lang] = [q for item in items for q in [item["question"], *item.get("similar", [])]]
    return out


def sentiment_training_texts(eval_dir: Path) -> set[str]:
    """The BQ questions the shipped sentiment classifier was trained on (by the ids its model file
    records; the split rule when the file records none)."""
    if not (eval_dir / BQ).is_file():
        return set()
    trained = trained_rows(bundled_model(), eval_dir)[1]
    return {t for i, t in enumerate(load_neutral(eval_dir)) if i in trained}


def _bank_questions(eval_dir: Path, n: int, exclude: set[str] | None = None) -> dict[str, list[str]]:
    """Plain bank customer questions per language (either list may be empty), none of ``exclude``."""
    en: list[str] = []
    if (eval_dir / BANKING77).is_file():
        with (eval_dir / BANKING77).open(encoding="utf-8", newline="") as handle:
            en = [row["text"] for row in csv.DictReader(handle) if row.get("text")]
    zh: dict[str, None] = {}
    if (eval_dir / BQ).is_file():
        for line in (eval_dir / BQ).read_text(encoding="utf-8").splitlines():
            zh.update((t.strip(), None) for t in line.split("\t")[:2] if t.strip())
    if (eval_dir / AFQMC).is_file():
        for line in (eval_dir / AFQMC).read_text(encoding="utf-8").splitlines():
            row = json.loads(line) if line.strip() else {}
            zh.update((row[k].strip(), None) for k in ("sentence1", "sentence2") if row.get(k))
    zh_rows = [t for t in zh if t not in (exclude or set())]
    return {"zh": _sample(zh_rows, n), "en": _sample(list(dict.fromkeys(en)), n)}


def _medical_zh(eval_dir: Path, n: int) -> list[str]:
    if not (eval_dir / MEDICAL).is_file():
        return []
    with (eval_dir / MEDICAL).open(encoding="utf-8", newline="") as handle:
        titles = [row["title"] for row in csv.DictReader(handle, delimiter="\t") if row.get("title")]
    return _sample(titles, n)


def _refused(guard: ScopeGuard, texts: list[str]) -> list[bool]:
    return [not v.in_scope for v in guard.check_many(texts)]


def _scope_by_language(guard: ScopeGuard, eval_dir: Path, sizes: Sizes, report: FairnessReport) -> None:
    shop, bank = _shop_questions(), _bank_questions(eval_dir, sizes.bank_questions)
    medical = {"zh": _medical_zh(eval_dir, sizes.medical_zh), "en": [en for en, _ in MEDICAL_PAIRS]}
    pairs = {"en": [en for en, _ in MEDICAL_PAIRS], "zh": [zh for _, zh in MEDICAL_PAIRS]}
    sets = [
        ("false refusal: shop FAQ", shop, False),
        ("false refusal: bank Qs", bank, False),
        ("refusal recall: medical", medical, True),
        ("recall: same medical Qs", pairs, True),
    ]
    measures = []
    for name, texts, should_refuse in sets:
        groups = [lang for lang in ("zh", "en") for _ in texts[lang]]
        rows = [t for lang in ("zh", "en") for t in texts[lang]]
        if rows:
            truth = [should_refuse] * len(rows)
            refused = _refused(guard, rows)
            measures.append(Measure(name, groups, truth, refused, rate_where(should_refuse), should_refuse))
    report.tables.append(
        compare_groups(
            "Scope guard by language",
            measures,
            note="bank Qs: BQ+AFQMC (zh) vs banking77 (en); medical: zh_medical_oos titles (zh) vs "
            "hand-written (en); same medical Qs: the hand-written ones in both languages",
        )
    )
    report.notes.append(
        "language/scope: " + ", ".join(f"{name} zh {len(t['zh'])} en {len(t['en'])}" for name, t, _ in sets)
    )


def _polar_errors(texts: list[str], positive: list[bool]) -> tuple[list[bool], list[bool]]:
    """(label error, sign error) per text: a neutral label on a polar text is a label error."""
    scores = [score_sentiment(t).score for t in texts]
    label_error = [
        (s >= NEUTRAL_BAND) != p or abs(s) < NEUTRAL_BAND for s, p in zip(scores, positive, strict=True)
    ]
    return label_error, [(s > 0) != p for s, p in zip(scores, positive, strict=True)]


def _sentiment_by_language(eval_dir: Path, sizes: Sizes, report: FairnessReport) -> None:
    langs = ["en"] * len(SENTIMENT_PAIRS) + ["zh"] * len(SENTIMENT_PAIRS)
    texts = [en for en, _, _ in SENTIMENT_PAIRS] + [zh for _, zh, _ in SENTIMENT_PAIRS]
    gold = [p for _, _, p in SENTIMENT_PAIRS] * 2
    label_error, sign_error = _polar_errors(texts, gold)
    measures = [
        Measure("error: same messages", langs, gold, label_error),
        Measure("sign error: same messages", langs, gold, sign_error),
    ]
    n_reviews = 0
    if (eval_dir / REVIEWS).is_file():
        trained_reviews = trained_rows(bundled_model(), eval_dir)[0]
        held_out = [r for r in split_reviews(load_reviews(eval_dir))[1] if r.row not in trained_reviews]
        reviews = random.Random(SEED).sample(held_out, min(sizes.reviews_zh, len(held_out)))
        n_reviews = len(reviews)
        r_label, r_sign = _polar_errors([r.text for r in reviews], [r.positive for r in reviews])
        en = len(SENTIMENT_PAIRS)  # the English half of the hand-written messages comes first
        rows, truth = ["zh"] * n_reviews + langs[:en], [r.positive for r in reviews] + gold[:en]
        measures.append(Measure("error: labelled set", rows, truth, r_label + label_error[:en]))
        measures.append(Measure("sign error: labelled set", rows, truth, r_sign + sign_error[:en]))
    trained = sentiment_training_texts(eval_dir)
    bank = _bank_questions(eval_dir, sizes.bank_questions, exclude=trained)
    bank_rows = bank["zh"] + bank["en"]
    if bank_rows:
        negative = [score_sentiment(t).label == "negative" for t in bank_rows]
        groups = ["zh"] * len(bank["zh"]) + ["en"] * len(bank["en"])
        measures.append(Measure("negative: plain bank Qs", groups, [False] * len(bank_rows), negative))
    report.tables.append(
        compare_groups(
            "Sentiment by language (error rates; neutral label on a polar text counts as an error)",
            measures,
            note="same messages: 48 hand-written, both languages; labelled set: held-out "
            "chinese_sentiment reviews (zh) vs the 48 English messages (en)",
        )
    )
    report.notes.append(f"language/sentiment: {len(SENTIMENT_PAIRS)} message pairs, {n_reviews} zh reviews")
    report.notes.append(
        f"sentiment provenance: zh reviews = held-out {REVIEWS} rows, none among the classifier's "
        f"training rows; zh bank Qs = BQ + AFQMC without the {len(trained)} BQ questions the classifier "
        "was trained on (ids in its model file); messages = fairness_data.py (written here, never trained on)"
    )


@dataclass(frozen=True)
class NamedRequest:
    gender: str
    name_set: str
    lang: str
    name: str
    phone: str
    text: str


def _phones(lang: str, n: int) -> list[str]:
    rng = random.Random(SEED)
    if lang == "zh":
        return [f"1{rng.choice('3589')}{rng.randrange(10**9):09d}" for _ in range(n)]
    return [f"({rng.choice(_US_AREA_CODES)}) 555-01{rng.randrange(100):02d}" for _ in range(n)]


def _load_names(eval_dir: Path, per_group: int) -> list[tuple[str, str, str]]:
    """(gender, NameSet, "Given Surname"): ``per_group`` per NameSet, half of each gender, seeded."""
    by_group: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
    with (eval_dir / FAKE_NAMES).open(encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            name = f"{row.get('GivenName', '').strip()} {row.get('Surname', '').strip()}".strip()
            if name and row.get("Gender") and row.get("NameSet"):
                person = (row["Gender"], row["NameSet"], name)
                by_group.setdefault((row["NameSet"], row["Gender"]), []).append(person)
    rng, per_gender = random.Random(SEED), max(1, per_group // 2)
    return [
        p for _, people in sorted(by_group.items()) for p in rng.sample(people, min(per_gender, len(people)))
    ]


def named_requests(eval_dir: Path, per_group: int) -> list[NamedRequest]:
    """Every template in both languages, filled with each sampled name and the i-th phone number
    of its (NameSet, gender) group, so every group of either kind carries the same numbers."""
    people = _load_names(eval_dir, per_group)
    out = []
    for lang, templates in NAME_TEMPLATES.items():
        phones = _phones(lang, per_group)
        seen: dict[tuple[str, str], int] = {}
        for gender, name_set, name in people:
            index = seen[name_set, gender] = seen.get((name_set, gender), -1) + 1
            phone = phones[index % len(phones)]
            for template in templates:
                text = template.format(name=name, phone=phone)
                out.append(NamedRequest(gender, name_set, lang, name, phone, text))
    return out


def _covers(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    return any(s <= start and end <= e for s, e in spans)


def _overlaps(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    return any(s < end and start < e for s, e in spans)


def _name_measures(requests: list[NamedRequest], refused: list[bool], by: str) -> list[Measure]:
    groups = [r.gender if by == "gender" else r.name_set for r in requests]
    phone_ok, name_hit, scores = [], [], []
    for r in requests:
        entities = redact_pii(r.text).entities
        phone_at, name_at = r.text.index(r.phone), r.text.index(r.name)
        phones = [(e.start, e.end) for e in entities if e.type in _PHONE_TYPES]
        phone_ok.append(_covers(phone_at, phone_at + len(r.phone), phones))
        name_hit.append(_overlaps(name_at, name_at + len(r.name), [(e.start, e.end) for e in entities]))
        scores.append(score_sentiment(r.text).score)
    none = [False] * len(requests)
    return [
        Measure("refused (scope guard)", groups, none, refused),
        Measure("phone redacted", groups, none, phone_ok),
        Measure("name redacted", groups, none, name_hit),
        Measure("sentiment mean score", groups, none, scores, percent=False),
        Measure("sentiment negative", groups, none, [s <= -NEUTRAL_BAND for s in scores]),
    ]


def _by_name(guard: ScopeGuard, eval_dir: Path, sizes: Sizes, report: FairnessReport) -> None:
    requests = named_requests(eval_dir, sizes.names_per_group)
    refused = _refused(guard, [r.text for r in requests])
    for lang in NAME_TEMPLATES:
        mine = [i for i, r in enumerate(requests) if r.lang == lang]
        rows, flags = [requests[i] for i in mine], [refused[i] for i in mine]
        for by, title in (("gender", "gender"), ("name_set", "name origin (presidio NameSet)")):
            report.tables.append(
                compare_groups(f"Names ({lang} requests) by {title}", _name_measures(rows, flags, by))
            )
    people = len({(r.name_set, r.name) for r in requests})
    report.notes.append(
        f"names: {people} names ({sizes.names_per_group} per NameSet, half of each gender) x "
        f"{sum(map(len, NAME_TEMPLATES.values()))} templates = {len(requests)} requests"
    )


def default_embedder() -> QueryEmbedder:
    from kefu.kb.embeddings import shared_embedder

    return shared_embedder()


def run_fairness_report(
    eval_dir: Path,
    *,
    sizes: Sizes | None = None,
    embedder: QueryEmbedder | None = None,
    examples: Path = DEFAULT_EXAMPLES,
) -> FairnessReport:
    """Group metrics by language and by name for the data found under ``eval_dir``."""
    sizes = sizes or Sizes()
    known = (FAKE_NAMES, BANKING77, BQ, AFQMC, MEDICAL, REVIEWS)
    if not any((eval_dir / path).is_file() for path in known):
        raise InvalidInput(
            f"No fairness evaluation data under {eval_dir}: expected any of "
            f"{', '.join(map(str, known))}. Pass --data pointing at the shared evaluation folder "
            "(e.g. ../shared/eval)."
        )
    guard = ScopeGuard.from_examples(examples, embedder or default_embedder())
    report = FairnessReport()
    _scope_by_language(guard, eval_dir, sizes, report)
    _sentiment_by_language(eval_dir, sizes, report)
    if (eval_dir / FAKE_NAMES).is_file():
        _by_name(guard, eval_dir, sizes, report)
    else:
        report.notes.append(f"names: skipped, no {FAKE_NAMES}")
    return report
