"""FAQ consistency checks: entries anywhere in the knowledge base that ask the same question, with
different answers (a conflict) or the same answer (a duplicate)."""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from kefu.kb.documents import SourceDocument

if TYPE_CHECKING:
    from kefu.kb.types import Embedder

ConflictKind = Literal["conflict", "duplicate"]


@dataclass(frozen=True)
class FaqRef:
    doc_id: str
    faq_id: str
    question: str
    answer: str


@dataclass(frozen=True)
class FaqConflict:
    kind: ConflictKind  # "conflict": answers differ; "duplicate": the same Q and A twice
    entry_a: FaqRef  # the earlier one in KB order (doc_id, then position in the file)
    entry_b: FaqRef
    similarity: float  # 1.0 for equal normalised questions, else the cosine of the embeddings
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_TRAILING = "？?。！!．.～~…"
_SPACE_BY_CJK = re.compile(r" (?=[^\x00-\x7f])|(?<=[^\x00-\x7f]) ")


def normalize_text(value: str) -> str:
    """For comparing questions and answers: NFKC, case-folded, whitespace collapsed (and dropped next
    to Chinese), trailing ？?。！! cut — "运费 多少钱？" and "运费多少钱" are equal."""
    folded = " ".join(unicodedata.normalize("NFKC", value).casefold().split())
    return _SPACE_BY_CJK.sub("", folded).rstrip(_TRAILING).rstrip()


def find_faq_conflicts(
    documents: Sequence[SourceDocument], *, embedder: Embedder | None = None, threshold: float = 0.95
) -> list[FaqConflict]:
    """Pairs of FAQ entries (anywhere in ``documents``) whose questions — or ``similar`` paraphrases —
    are equal once normalised, or, with ``embedder``, have query embeddings with cosine ≥ ``threshold``.
    ``kind`` is "conflict" when their normalised answers differ and "duplicate" when they are equal.
    Conflicts first, then by position in the knowledge base."""
    refs: list[FaqRef] = []
    keys: list[tuple[int, str]] = []  # (index into refs, question or paraphrase)
    for doc in sorted(documents, key=lambda d: d.doc_id):
        for entry in doc.faqs:
            refs.append(FaqRef(doc.doc_id, entry.id, entry.question, entry.answer))
            keys += [(len(refs) - 1, q) for q in dict.fromkeys([entry.question, *entry.similar])]
    best: dict[tuple[int, int], tuple[float, str, str]] = {}

    def note(i: int, j: int, similarity: float, qa: str, qb: str) -> None:
        if i == j:
            return
        pair, texts = ((i, j), (qa, qb)) if i < j else ((j, i), (qb, qa))
        if pair not in best or similarity > best[pair][0]:
            best[pair] = (similarity, *texts)

    groups: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for ref, question in keys:
        groups[normalize_text(question)].append((ref, question))
    groups.pop("", None)
    for group in groups.values():
        for n, (i, qa) in enumerate(group):
            for j, qb in group[n + 1 :]:
                note(i, j, 1.0, qa, qb)
    if embedder is not None and keys:
        for i, j, similarity, qa, qb in _similar_questions(keys, embedder, threshold):
            note(i, j, similarity, qa, qb)
    found = [_conflict(refs[i], refs[j], *best[(i, j)], threshold) for i, j in sorted(best)]
    return sorted(found, key=lambda c: c.kind != "conflict")


def _similar_questions(
    keys: list[tuple[int, str]], embedder: Embedder, threshold: float
) -> Iterator[tuple[int, int, float, str, str]]:
    texts = list(dict.fromkeys(q for _, q in keys))
    owners: dict[str, list[int]] = defaultdict(list)
    for ref, question in keys:
        owners[question].append(ref)
    vectors = embedder.embed_queries(texts)
    for start in range(0, len(texts), 256):
        sims = vectors[start : start + 256] @ vectors.T
        for row, col in zip(*(sims >= threshold).nonzero(), strict=True):
            a, b = start + int(row), int(col)
            if a >= b:
                continue
            for i in owners[texts[a]]:
                for j in owners[texts[b]]:
                    yield i, j, float(sims[row, col]), texts[a], texts[b]


def _conflict(a: FaqRef, b: FaqRef, similarity: float, qa: str, qb: str, threshold: float) -> FaqConflict:
    same_answer = normalize_text(a.answer) == normalize_text(b.answer)
    if normalize_text(qa) == normalize_text(qb):
        asked = f"the same question {qa!r}" if qa == qb else f"the same question ({qa!r} / {qb!r})"
        similarity = 1.0
    else:
        asked = f"paraphrases {qa!r} / {qb!r} (cosine {similarity:.3f} ≥ {threshold})"
    outcome = "with the same answer" if same_answer else "but different answers"
    return FaqConflict(
        kind="duplicate" if same_answer else "conflict",
        entry_a=a,
        entry_b=b,
        similarity=round(similarity, 4),
        reason=f"{a.doc_id}#{a.faq_id} and {b.doc_id}#{b.faq_id} answer {asked} {outcome}",
    )
