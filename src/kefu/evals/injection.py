"""``kefu eval injection``: the injection guard on attacks it was not written against, and on real customers.

For every attack set: recall per family, for the patterns alone, the classifier alone and the guard
as it runs (patterns, then the classifier on what they let through — ``detect_injection``). For
every customer set: the false-positive rate on its test half (a fixed-hash sample of ``per_set``
messages). Indirect injection: whether ``sanitize_source`` removes the instruction hidden in a
knowledge-base document or an OCR'd scan and keeps the rest, and how often it alters ordinary
documents. Every set prints where it comes from and what the guard was built from that it shares.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kefu.evals.injection_data import (
    Attack,
    IndirectDoc,
    MessageSet,
    SourceStatus,
    customer_sets,
    heldout_attacks,
    heldout_indirect,
    independent_attacks,
    kb_documents,
    suite_attacks,
    suite_indirect,
)
from kefu.evals.injection_train import embed_texts
from kefu.safety.injection import pattern_verdict, sanitize_source
from kefu.safety.injection_classifier import InjectionClassifier, load_classifier

if TYPE_CHECKING:
    from kefu.evals.injection_source_eval import SourceGuardReport

PER_SET = 600
KB_DOCS = 200


def wilson(hits: int, n: int) -> tuple[float, float]:
    """95 % Wilson interval of hits / n."""
    if n == 0:
        return 0.0, 0.0
    z, p = 1.96, hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - spread), min(1.0, centre + spread)


@dataclass
class Rate:
    """How many of ``n`` rows were flagged: by the patterns, by the classifier, by the guard."""

    name: str
    n: int = 0
    patterns: int = 0
    classifier: int = 0
    guard: int = 0

    def add(self, by_patterns: bool, by_classifier: bool, by_guard: bool | None = None) -> None:
        """``by_guard``: when the layers together differ from either alone (several sentences)."""
        self.n += 1
        self.patterns += by_patterns
        self.classifier += by_classifier
        self.guard += (by_patterns or by_classifier) if by_guard is None else by_guard

    def line(self) -> str:
        def pct(k: int) -> str:
            return f"{k / self.n:>8.1%}" if self.n else f"{'-':>8}"

        low, high = wilson(self.guard, self.n)
        return f"  {self.name:<34}{self.n:>5}{pct(self.patterns)}{pct(self.classifier)}{pct(self.guard)}   [{low:.1%}–{high:.1%}]"


@dataclass
class AttackSetReport:
    name: str
    provenance: str
    overlap: str
    total: Rate
    families: list[Rate]


@dataclass
class CustomerReport:
    name: str
    provenance: str
    overlap: str
    rate: Rate
    examples: list[str] = field(default_factory=list)  # a few flagged messages, to read


@dataclass
class IndirectReport:
    name: str
    n: int
    instruction_removed: int
    content_kept: int
    missed: list[str]


@dataclass
class InjectionReport:
    classifier: dict[str, Any]
    attacks: list[AttackSetReport]
    customers: list[CustomerReport]
    indirect: list[IndirectReport]
    kb_docs_altered: tuple[int, int]  # ordinary documents sanitize_source changed, of n
    sources: list[SourceStatus]
    notes: list[str]
    source_guard: SourceGuardReport | None = None  # planted KB instructions and real KB text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format_table(self) -> str:
        head = f"  {'set / family':<34}{'n':>5}{'pattern':>8}{'classif':>8}{'guard':>8}   95% CI of guard"
        out = [
            f"Classifier: threshold {self.classifier.get('threshold', 0):.3f}, {self.classifier.get('trained_on', '')}"
        ]
        out += ["", "ATTACKS — recall (share flagged)", head]
        for s in self.attacks:
            out += [f"{s.name} — {s.provenance}", f"  overlap: {s.overlap or 'none'}", s.total.line()]
            out += [r.line() for r in s.families]
        out += ["", "CUSTOMER MESSAGES — false-positive rate (test halves)", head]
        for c in self.customers:
            out += [f"{c.name} — {c.provenance}", f"  overlap: {c.overlap or 'none'}", c.rate.line()]
            out += [f"    flagged: {e!r}" for e in c.examples]
        out += ["", "INDIRECT — sanitize_source on documents with a hidden instruction"]
        for r in self.indirect:
            out.append(
                f"  {r.name:<34}{r.n:>5}  instruction removed {r.instruction_removed}/{r.n}, "
                f"content kept {r.content_kept}/{r.n}"
            )
            out += [f"    missed: {m}" for m in r.missed]
        altered, total = self.kb_docs_altered
        out.append(f"  ordinary KB documents altered by sanitize_source's patterns: {altered}/{total}")
        if self.source_guard is not None:
            out += self.source_guard.lines()
        out += ["", "INDEPENDENT COLLECTIONS (injection_sources.yaml)"]
        out += [
            f"  {s.name}: {s.rows} rows — {s.provenance}{'; ' + s.note if s.note else ''}"
            for s in self.sources
        ]
        out += ["", *self.notes]
        return "\n".join(out)


def _score(
    texts: list[str], classifier: InjectionClassifier, cache_dir: Path
) -> tuple[list[bool], list[bool]]:
    by_patterns = [pattern_verdict(t).is_attack for t in texts]
    vectors, _name = embed_texts(texts, cache_dir)
    probs = classifier.probabilities(vectors) if len(texts) else np.zeros(0)
    return by_patterns, [bool(p >= classifier.threshold) for p in probs]


def _attack_report(
    name: str,
    provenance: str,
    overlap: str,
    attacks: list[Attack],
    classifier: InjectionClassifier,
    cache_dir: Path,
) -> AttackSetReport:
    by_patterns, by_classifier = _score([a.text for a in attacks], classifier, cache_dir)
    total, families = Rate("all"), dict[str, Rate]()
    for attack, p, c in zip(attacks, by_patterns, by_classifier, strict=True):
        total.add(p, c)
        families.setdefault(f"{attack.family} ({attack.lang})", Rate(f"{attack.family} ({attack.lang})")).add(
            p, c
        )
    return AttackSetReport(name, provenance, overlap, total, [families[k] for k in sorted(families)])


def _customer_report(
    message_set: MessageSet, per_set: int | None, classifier: InjectionClassifier, cache_dir: Path
) -> CustomerReport:
    texts = message_set.sample("test", per_set)
    by_patterns, by_classifier = _score(texts, classifier, cache_dir)
    rate, flagged = Rate("test half"), []
    for text, p, c in zip(texts, by_patterns, by_classifier, strict=True):
        rate.add(p, c)
        if p or c:
            flagged.append(f"{'pattern' if p else 'classifier'}: {text[:80]}")
    return CustomerReport(
        message_set.name,
        f"{message_set.provenance} [{message_set.lang}]",
        message_set.overlap,
        rate,
        flagged[:5],
    )


def _indirect_report(name: str, docs: list[IndirectDoc]) -> IndirectReport:
    removed = kept = 0
    missed = []
    for doc in docs:
        cleaned = sanitize_source(doc.text)
        gone = all(h not in cleaned for h in doc.hidden)
        stays = all(k in cleaned for k in doc.keep)
        removed += gone
        kept += stays
        if not gone or not stays:
            missed.append(f"{doc.id}: {'instruction kept' if not gone else 'content lost'}")
    return IndirectReport(name, len(docs), removed, kept, missed)


def _kb_altered(data: Path, limit: int | None) -> tuple[int, int]:
    docs = kb_documents(data, limit)
    return sum(sanitize_source(text, semantic=False) != text.strip() for _name, text in docs), len(docs)


NOTES = [
    "Reading the figures:",
    "* 'guard' is detect_injection as it runs: patterns, then the classifier on what they let through.",
    "* own suite: the patterns were written against ALL of it before the dev/test split existed, so its test",
    "  half is unseen only by the classifier. From now on the patterns may be tuned on its dev half only.",
    "* held-out (written here): paraphrases written in this project, never used to tune the patterns; the",
    "  classifier trained on the dev half. Independent public collections were used for nothing but this.",
    "* KB path: sanitize_source runs on every chunk when documents are loaded (kb/loader.py): patterns, then",
    "  the source classifier (injection_source.npz) on each sentence; the INDIRECT lines above use both.",
    "  Replies that reproduce the system prompt are caught by leaks_prompt (dialog/knowledge.py).",
]


def run_injection_eval(
    data: Path,
    cache_dir: Path,
    attacks_dir: Path | None = None,
    per_set: int | None = PER_SET,
    kb_docs: int | None = KB_DOCS,
    progress: Callable[[str], None] = lambda line: None,
) -> InjectionReport:
    from kefu.evals.injection_source_eval import run_source_eval

    message_sets = customer_sets(data)  # first: a wrong --data fails before minutes of embedding
    classifier = load_classifier()
    own, held = suite_attacks(), heldout_attacks()
    public, sources = independent_attacks(attacks_dir)
    seen = "the classifier trained on this half"
    sets: list[tuple[str, str, str, list[Attack]]] = [
        (
            "own suite, dev half",
            "tests/data/injection_attacks.yaml",
            "patterns written on it; " + seen,
            [a for a in own if a.split == "dev"],
        ),
        (
            "own suite, test half",
            "tests/data/injection_attacks.yaml",
            "patterns written on it (before the split)",
            [a for a in own if a.split == "test"],
        ),
        (
            "held-out, dev half",
            "src/kefu/evals/injection_heldout.yaml (written here)",
            seen,
            [a for a in held if a.split == "dev"],
        ),
        (
            "held-out, test half",
            "src/kefu/evals/injection_heldout.yaml (written here)",
            "",
            [a for a in held if a.split == "test"],
        ),
    ]
    for status in sources:
        rows = [a for a in public if a.source == status.name]
        if rows:
            sets.append((status.name, status.provenance, "", rows))
    reports = []
    for name, provenance, overlap, attacks in sets:
        progress(f"scoring {len(attacks)} attacks: {name}")
        reports.append(_attack_report(name, provenance, overlap, attacks, classifier, cache_dir))
    customers = []
    for message_set in message_sets:
        progress(f"scoring customer messages: {message_set.name}")
        customers.append(_customer_report(message_set, per_set, classifier, cache_dir))
    indirect = []
    for name, docs in (("own suite (kb)", suite_indirect()), ("held-out", heldout_indirect())):
        for channel in sorted({d.channel for d in docs}):
            for split in ("dev", "test"):  # the source classifier trained on the dev halves
                in_half = [d for d in docs if d.channel == channel and d.split == split]
                indirect.append(_indirect_report(f"{name} [{channel}] {split}", in_half))
    meta = {**classifier.meta, "threshold": classifier.threshold}
    progress("scoring knowledge-base text: planted instructions and real documents")
    source_guard = run_source_eval(data, cache_dir)
    return InjectionReport(
        meta, reports, customers, indirect, _kb_altered(data, kb_docs), sources, NOTES, source_guard
    )
