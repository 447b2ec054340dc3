"""The knowledge-base side of ``kefu eval injection``: planted instructions removed, real KB text kept.

For the planted documents (``injection_indirect.yaml``), per half, family and language: the share
whose instruction ``sanitize_source`` removed with the patterns alone, with the source classifier
alone and as it runs (both), and the share whose ordinary content survived. For real knowledge-base
text (``injection_kb.kb_sentence_sets``), per set and half: the share of sentences it removes — the
false-positive rate. Precision on the test half pools the planted documents' sentences with the real
KB test sentences, so it depends on how many planted sentences there are (said in the output).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kefu.evals.injection import Rate
from kefu.evals.injection_kb import PLANTED, PlantedDoc, SentenceSet, kb_sentence_sets, planted_documents
from kefu.safety.injection import inspect_source, sanitize_source, source_sentences
from kefu.safety.injection_source import LAYER, instruction_flags, use_source_cache


@dataclass
class PlantedReport:
    split: str
    total: Rate
    content_kept: int
    by_family: list[Rate]
    by_lang: list[Rate]
    missed: list[str] = field(default_factory=list)  # test half only: the instructions left in


@dataclass
class KbTextReport:
    name: str
    lang: str
    provenance: str
    overlap: str
    dev: Rate
    test: Rate
    examples: list[str] = field(default_factory=list)  # removed test sentences, to read


@dataclass
class IndependentIndirect:
    """An indirect-injection collection written by others, scored as documents (something removed?)."""

    provenance: str
    note: str
    attacks: list[Rate]  # per category of its malicious document/tool-output rows
    benign: Rate  # its benign rows: share altered


@dataclass
class SourceGuardReport:
    classifier: dict[str, Any]
    planted_provenance: str
    planted: list[PlantedReport]
    kb_text: list[KbTextReport]
    test_precision: dict[str, float | int]
    independent: IndependentIndirect

    def lines(self) -> list[str]:
        c = self.classifier
        head = f"  {'set / family':<34}{'n':>5}{'pattern':>8}{'classif':>8}{'guard':>8}   95% CI of guard"
        out = [
            "",
            "KNOWLEDGE-BASE TEXT — sanitize_source (patterns, then the source classifier)",
            f"Source classifier: threshold {c.get('threshold', 0):.3f}, {c.get('trained_on', '')}",
            "",
            f"PLANTED INSTRUCTIONS — recall (share of documents whose instruction was removed) — {self.planted_provenance}",
            head,
        ]
        for r in self.planted:
            tuned = "read while tuning" if r.split == "dev" else "never read while tuning"
            out += [f"{r.split} half ({tuned}); ordinary content kept in {r.content_kept}/{r.total.n}"]
            out += [r.total.line(), *[x.line() for x in r.by_family], *[x.line() for x in r.by_lang]]
            out += [f"    missed: {m}" for m in r.missed]
        out += ["", "REAL KNOWLEDGE-BASE SENTENCES — false-positive rate (share removed)", head]
        for k in self.kb_text:
            out += [
                f"{k.name} [{k.lang}] — {k.provenance}",
                f"  overlap: {k.overlap}",
                k.dev.line(),
                k.test.line(),
            ]
            out += [f"    removed: {e!r}" for e in k.examples]
        ind = self.independent
        out += ["", f"INDEPENDENT INDIRECT — {ind.provenance}", f"  {ind.note}", head]
        out += [r.line() for r in ind.attacks] + [ind.benign.line()]
        p = self.test_precision
        out.append(
            f"Test-half precision (guard): {p['precision']:.1%} — {p['true']} planted of {p['removed']} removed "
            f"sentences, in a pool of {p['pool']} sentences of which {p['planted']} planted"
        )
        return out


def _planted_report(split: str, docs: list[PlantedDoc]) -> PlantedReport:
    total, families, langs = Rate("all"), dict[str, Rate](), dict[str, Rate]()
    kept, missed = 0, []
    for doc in docs:
        guarded = sanitize_source(doc.text)
        by_patterns = all(p not in sanitize_source(doc.text, semantic=False) for p in doc.planted_pieces)
        by_classifier = all(flag for flag, _p in instruction_flags(doc.planted_pieces))
        by_guard = all(p not in guarded for p in doc.planted_pieces)
        kept += all(k in guarded for k in doc.kept_pieces)
        for rate in (
            total,
            families.setdefault(doc.family, Rate(doc.family)),
            langs.setdefault(doc.lang, Rate(f"language: {doc.lang}")),
        ):
            rate.add(by_patterns, by_classifier, by_guard)
        if not by_guard and split == "test":
            missed.append(f"{doc.id} ({doc.family}, {doc.channel}): {doc.planted[:70]}")
    return PlantedReport(
        split,
        total,
        kept,
        [families[k] for k in sorted(families)],
        [langs[k] for k in sorted(langs)],
        missed,
    )


def _removed_flags(sentences: list[str]) -> tuple[list[bool], list[bool]]:
    by_patterns = [inspect_source(s, semantic=False).text != s.strip() for s in sentences]
    by_classifier = [flag for flag, _p in instruction_flags(sentences)]
    return by_patterns, by_classifier


def _kb_text_report(sentence_set: SentenceSet) -> KbTextReport:
    rates: dict[str, Rate] = {}
    examples: list[str] = []
    for split, rows in (("dev", sentence_set.dev), ("test", sentence_set.test)):
        rate = rates[split] = Rate(f"{split} half")
        for text, p, c in zip(rows, *_removed_flags(list(rows)), strict=True):
            rate.add(p, c)
            if split == "test" and (p or c) and len(examples) < 5:
                examples.append(f"{'pattern' if p else 'classifier'}: {text[:90]}")
    return KbTextReport(
        sentence_set.name,
        sentence_set.lang,
        sentence_set.provenance,
        "the source classifier trained on the dev half as negatives; the test half is unseen",
        rates["dev"],
        rates["test"],
        examples,
    )


def _precision(docs: list[PlantedDoc], kb_text: list[KbTextReport]) -> dict[str, float | int]:
    planted = [p for d in docs for p in d.planted_pieces]
    ordinary = [k for d in docs for k in d.kept_pieces]
    flags_planted = [p or c for p, c in zip(*_removed_flags(planted), strict=True)]
    flags_ordinary = [p or c for p, c in zip(*_removed_flags(ordinary), strict=True)]
    true = sum(flags_planted)
    removed = true + sum(flags_ordinary) + sum(k.test.guard for k in kb_text)
    pool = len(planted) + len(ordinary) + sum(k.test.n for k in kb_text)
    return {
        "precision": true / removed if removed else 0.0,
        "true": true,
        "removed": removed,
        "pool": pool,
        "planted": len(planted),
    }


BASTION = "bastioncorpus==0.6.0 (PyPI, MIT): bastioncorpus/corpus/injections.jsonl"
BASTION_CHANNELS = ("tool_output", "memory")  # text the model reads that no customer typed


def _altered(text: str) -> tuple[bool, bool, bool]:
    """(patterns alone, classifier alone, guard) removed something from ``text``."""
    sentences = [s for s in source_sentences(text) if s.strip()]
    by_classifier = any(flag for flag, _p in instruction_flags(sentences))
    return (
        sanitize_source(text, semantic=False) != text.strip(),
        by_classifier,
        sanitize_source(text) != text.strip(),
    )


def independent_indirect() -> IndependentIndirect:
    """bastioncorpus's indirect rows, when the package is installed (it is in kefu[eval])."""
    try:
        from bastioncorpus import load_corpus
    except ImportError:
        return IndependentIndirect(
            BASTION, "not installed: pip install bastioncorpus==0.6.0", [], Rate("benign")
        )
    rows = load_corpus()
    attacks: dict[str, Rate] = {}
    benign = Rate("benign rows (share altered)")
    for row in rows:
        text = row.text.replace("{canary}", "ZX-40219")  # the collection's slot for a tracking token
        if row.label == "benign":
            benign.add(*_altered(text))
        elif row.channel in BASTION_CHANNELS:
            name = f"{row.category} ({row.channel})"
            attacks.setdefault(name, Rate(name)).add(*_altered(text))
    note = (
        "written by others, used for nothing but this evaluation; English plus a few de/fr/es/it rows, no "
        "Chinese. A malicious row counts when anything is removed from it; a benign row when anything is."
    )
    return IndependentIndirect(BASTION, note, [attacks[k] for k in sorted(attacks)], benign)


def run_source_eval(data: Path, cache_dir: Path) -> SourceGuardReport:
    """The source guard as it runs, with its sentence vectors cached with the eval's other vectors."""
    sets = kb_sentence_sets(data)  # first: a wrong --data fails before minutes of embedding
    use_source_cache(cache_dir / "injection_embeddings.sqlite")
    ready = LAYER.get()
    meta = {**ready[0].meta, "threshold": ready[0].threshold} if ready else {"trained_on": "UNAVAILABLE"}
    docs = planted_documents()
    planted = [_planted_report(s, [d for d in docs if d.split == s]) for s in ("dev", "test")]
    kb_text = [_kb_text_report(s) for s in sets]
    test_docs = [d for d in docs if d.split == "test"]
    provenance = f"{PLANTED.name} (written here, split by a hash of the id)"
    return SourceGuardReport(
        meta, provenance, planted, kb_text, _precision(test_docs, kb_text), independent_indirect()
    )
