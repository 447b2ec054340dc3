"""The data of the knowledge-base side of ``kefu eval injection``: planted instructions and real KB text.

* planted documents (``injection_indirect.yaml``, written here): a policy page, manual, review, OCR'd
  scan or web page with one instruction to an AI planted in it, split dev/test by a hash of the id;
* real knowledge-base text, one row per sentence (cut exactly as ``sanitize_source`` cuts it), for
  the false-positive rate: the demo shop's documents, tau2's banking knowledge and retail policy, and
  Chinese e-commerce reviews (a shop may load reviews into its knowledge base). Documents are split
  dev/test by a hash of their name; the two single-document sets (retail policy) and the demo shop's
  short documents by a hash of the sentence.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from kefu.evals.injection_data import (
    DEMO_DOCS,
    DEMO_FAQ,
    HELDOUT,
    SUITE,
    Split,
    _need,
    _yaml,
    half,
    hash_order,
    heldout_indirect,
    kb_documents,
    suite_indirect,
)
from kefu.safety.injection import source_sentences

PLANTED = Path(__file__).with_name("injection_indirect.yaml")
REVIEWS_PER_HALF = 300
BANKING_DOCS_PER_HALF = 100


@dataclass(frozen=True)
class PlantedDoc:
    id: str
    lang: str
    family: str
    channel: str
    before: str
    planted: str
    after: str
    split: Split

    @property
    def text(self) -> str:
        sep = "\n" if self.channel == "ocr" else ("" if self.lang == "zh" else " ")
        return sep.join([self.before, self.planted, self.after])

    @property
    def planted_pieces(self) -> list[str]:
        """The planted instruction as sanitize_source cuts it: every piece must be gone."""
        return [s.strip() for s in source_sentences(self.planted) if len(s.strip()) >= 4]

    @property
    def kept_pieces(self) -> list[str]:
        """The ordinary content around it: every piece must stay."""
        return [s.strip() for s in source_sentences(f"{self.before}\n{self.after}") if s.strip()]


def planted_documents(path: Path = PLANTED) -> list[PlantedDoc]:
    rows = _yaml(path)["documents"]
    return [
        PlantedDoc(
            r["id"],
            r["lang"],
            r["family"],
            r["channel"],
            r["before"],
            r["planted"],
            r["after"],
            half(r["id"]),
        )
        for r in rows
    ]


@dataclass(frozen=True)
class SentenceSet:
    """Sentences of real knowledge-base text (deduplicated), cut into dev and test halves."""

    name: str
    lang: str
    provenance: str
    dev: tuple[str, ...]
    test: tuple[str, ...]


def _keep(sentences: list[str]) -> list[str]:
    """Sentences worth scoring: not empty, not pure markup or numbers."""
    out = []
    for s in sentences:
        s = s.strip()
        if sum(ch.isalpha() for ch in s) >= 2:
            out.append(s)
    return list(dict.fromkeys(out))


def _by_sentence(name: str, lang: str, provenance: str, texts: list[str]) -> SentenceSet:
    rows = _keep([s for t in texts for s in source_sentences(t)])
    return SentenceSet(
        name,
        lang,
        provenance,
        tuple(s for s in rows if half(s) == "dev"),
        tuple(s for s in rows if half(s) == "test"),
    )


def _by_document(
    name: str, lang: str, provenance: str, docs: list[tuple[str, str]], per_half: int
) -> SentenceSet:
    halves: dict[str, list[str]] = {"dev": [], "test": []}
    for split in ("dev", "test"):
        chosen = sorted((d for d in docs if half(d[0]) == split), key=lambda d: hash_order(d[0]))[:per_half]
        halves[split] = _keep([s for _name, text in chosen for s in source_sentences(text)])
    dev = set(halves["dev"])
    return SentenceSet(
        name, lang, provenance, tuple(halves["dev"]), tuple(s for s in halves["test"] if s not in dev)
    )


def _reviews(data: Path) -> list[tuple[str, str]]:
    path = _need(data / "chinese_sentiment" / "online_shopping_10_cats.csv")
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = [r["review"].lstrip("\ufeff") for r in csv.DictReader(f) if r.get("review")]
    return [(f"review-{n}", text) for n, text in enumerate(rows)]


def kb_sentence_sets(
    data: Path, banking_docs: int = BANKING_DOCS_PER_HALF, reviews: int = REVIEWS_PER_HALF
) -> list[SentenceSet]:
    """Real knowledge-base text, one set per source, each cut into dev and test halves."""
    demo = [(n, t) for n, t in kb_documents(data, 0) if n.startswith("demo_shop/")]
    faq = [
        f"问：{e['question']}\n答：{e['answer']}"
        for path in sorted(DEMO_FAQ.glob("*.json"))
        for e in json.loads(path.read_text(encoding="utf-8"))
    ]
    banking = [(n, t) for n, t in kb_documents(data, None) if n.startswith("tau2_banking")]
    retail = _need(data / "tau2_retail" / "policy.md").read_text(encoding="utf-8")
    return [
        _by_sentence(
            "demo_shop_docs",
            "zh",
            f"{DEMO_DOCS.relative_to(DEMO_DOCS.parents[3])} (written in this project; split by sentence)",
            [t for _n, t in demo],
        ),
        _by_sentence(
            "demo_shop_faq",
            "zh",
            "src/kefu/demo_shop/faq (questions and answers as the KB indexes them; split by sentence)",
            faq,
        ),
        _by_document(
            "tau2_banking_knowledge",
            "en",
            "sierra-research/tau2-bench@a2c0247:data/tau2/domains/banking_knowledge/documents, MIT "
            f"({banking_docs} documents a half, split by document)",
            banking,
            banking_docs,
        ),
        _by_sentence(
            "tau2_retail_policy",
            "en",
            "sierra-research/tau2-bench@a2c0247:data/tau2/domains/retail/policy.md, MIT "
            "(an agent policy: imperatives addressed to the agent; split by sentence)",
            [retail],
        ),
        _by_document(
            "chinese_reviews",
            "zh",
            "SophonPlus/ChineseNlpCorpus@a0b781d:online_shopping_10_cats.csv, research use "
            f"({reviews} reviews a half, split by review)",
            _reviews(data),
            reviews,
        ),
    ]


def earlier_indirect_sentences(split: Split) -> tuple[list[str], list[str]]:
    """(planted, ordinary) sentences of the earlier indirect sets (own suite, held-out) in ``split``."""
    planted: list[str] = []
    ordinary: list[str] = []
    for doc in suite_indirect(SUITE) + heldout_indirect(HELDOUT):
        if doc.split != split:
            continue
        for s in _keep(source_sentences(doc.text)):
            if any(h in s for h in doc.hidden):
                planted.append(s)
            elif any(s in k or k in s for k in doc.keep):
                ordinary.append(s)
    return planted, ordinary
