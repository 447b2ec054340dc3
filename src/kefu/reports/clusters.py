"""Failed questions grouped by meaning, each group's likely cause and a suggested fix.

Clustering is deterministic average linkage, done greedily: the cases in time order, each joins the
cluster whose members it is most alike on average (mean cosine of the L2-normalised query embeddings)
at or above ``similarity``, else starts one; then every case is placed once more by the final clusters. Clusters rank by impact (a weight per signal:
anger counts most), then by count.

Causes (``cause``):
    missing_knowledge — "no answer" and the knowledge base holds nothing close to the question
    retrieval         — an answer exists and was missed: searching the cluster's questions now finds a
                        confident FAQ/grounded hit, or most of them point to the same chunk within
                        ``near_miss`` below the grounded threshold and share its keywords
    model             — the source check replaced the model's wording, or the model failed (fallback)
    policy            — a flow failed, or a sensitive topic was refused and handed over
    handoff           — customers asked for a person after a bot answer, complained or were angry
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from kefu.kb.types import Embedder, Retriever
from kefu.reports.failures import FailedCase

WEIGHTS = {
    "not_in_kb": 1.0,
    "replaced": 1.0,
    "fallback": 1.0,
    "low_rating": 1.0,
    "handoff": 1.5,
    "complaint": 1.5,
    "flow_failed": 1.5,
    "sensitive": 1.0,
    "anger": 2.0,
}
CATEGORY = {  # signal → the cause family it points to
    "not_in_kb": "knowledge",
    "low_rating": "knowledge",
    "replaced": "model",
    "fallback": "model",
    "flow_failed": "policy",
    "sensitive": "policy",
    "handoff": "handoff",
    "complaint": "handoff",
    "anger": "handoff",
}
CAUSE_LABELS = {
    "missing_knowledge": "missing knowledge",
    "retrieval": "retrieval missed an existing answer",
    "policy": "policy",
    "model": "model",
    "handoff": "handoff",
}
EXAMPLES = 3
PROBES = 10  # questions of one cluster searched again in the knowledge base


@dataclass
class Cluster:
    cases: list[FailedCase]
    representative: str  # the question nearest the centroid
    examples: list[FailedCase]  # up to 3, nearest the centroid, distinct texts
    impact: float
    signals: dict[str, int]
    cause: str = ""
    target: dict[str, str] | None = None  # the chunk retrieval missed: {"chunk_id", "kind", "title"}
    fix: str = ""

    @property
    def count(self) -> int:
        return len(self.cases)

    def to_dict(self, rank: int) -> dict[str, Any]:
        return {
            "rank": rank,
            "count": self.count,
            "impact": round(self.impact, 2),
            "cause": self.cause,
            "cause_label": CAUSE_LABELS[self.cause],
            "fix": self.fix,
            "representative": self.representative,
            "signals": self.signals,
            "target": self.target,
            "examples": [
                {"question": c.question, "conversation_id": c.conversation_id, "signals": c.signals}
                for c in self.examples
            ],
        }


@dataclass
class ClusterSettings:
    similarity: float = 0.88
    grounded_threshold: float = 0.89
    near_miss: float = 0.05


def cluster_cases(cases: list[FailedCase], embedder: Embedder, similarity: float) -> list[Cluster]:
    """The cases grouped by meaning, best first (impact, then count, then earliest)."""
    if not cases:
        return []
    texts = sorted({c.question for c in cases})
    vectors = embedder.embed_queries(texts)
    by_text = {t: np.asarray(vectors[i], dtype=np.float32) for i, t in enumerate(texts)}
    matrix = np.stack([by_text[c.question] for c in cases])
    labels = _assign(matrix, similarity)
    clusters = []
    for label in sorted(set(labels)):
        members = [i for i, lab in enumerate(labels) if lab == label]
        clusters.append(_cluster([cases[i] for i in members], matrix[members]))
    clusters.sort(key=lambda c: (-c.impact, -c.count, c.cases[0].created_at))
    return clusters


def _assign(matrix: np.ndarray, similarity: float) -> list[int]:
    """Average linkage, greedily: a vector's mean cosine with a cluster's members is its dot product with
    the members' mean vector (not re-normalised: that would flatter every newcomer)."""
    sums: list[np.ndarray] = []
    sizes: list[int] = []
    for vector in matrix:
        best = _nearest(vector, sums, sizes, similarity)
        if best is None:
            sums.append(vector.copy())
            sizes.append(1)
        else:
            sums[best] += vector
            sizes[best] += 1
    labels = [_nearest(v, sums, sizes, -1.0) for v in matrix]  # once more, by the final clusters
    return [int(label or 0) for label in labels]


def _nearest(vector: np.ndarray, sums: list[np.ndarray], sizes: list[int], floor: float) -> int | None:
    if not sums:
        return None
    scores = (np.stack(sums) @ vector) / np.asarray(sizes, dtype=np.float32)
    best = int(np.argmax(scores))
    return best if float(scores[best]) >= floor else None


def _cluster(cases: list[FailedCase], vectors: np.ndarray) -> Cluster:
    centroid = vectors.sum(axis=0)
    centroid /= np.linalg.norm(centroid) or 1.0
    order = sorted(range(len(cases)), key=lambda i: (-float(vectors[i] @ centroid), cases[i].question))
    examples: list[FailedCase] = []
    for i in order:
        if all(e.question != cases[i].question for e in examples):
            examples.append(cases[i])
        if len(examples) == EXAMPLES:
            break
    signals = Counter(s for c in cases for s in c.signals)
    impact = sum(max(WEIGHTS[s] for s in c.signals) for c in cases)
    return Cluster(cases, examples[0].question, examples, impact, dict(sorted(signals.items())))


def explain(cluster: Cluster, kb: Retriever | None, settings: ClusterSettings) -> None:
    """Set the cluster's likely cause, the chunk retrieval missed (if any) and a suggested fix."""
    family = _family(cluster)
    if family == "knowledge":
        target = _missed_answer(cluster, kb, settings) if kb is not None else None
        cluster.cause = "retrieval" if target is not None else "missing_knowledge"
        cluster.target = target
    else:
        cluster.cause = family
    cluster.fix = suggest_fix(cluster)


def _family(cluster: Cluster) -> str:
    votes = dict.fromkeys(CATEGORY.values(), 0.0)
    for case in cluster.cases:
        for signal in case.signals:
            votes[CATEGORY[signal]] += WEIGHTS[signal]
    order = ("policy", "model", "handoff", "knowledge")  # a tie: the more specific cause first
    return max(order, key=lambda family: (votes[family], -order.index(family)))


def _missed_answer(cluster: Cluster, kb: Retriever, settings: ClusterSettings) -> dict[str, str] | None:
    """The chunk that answers the cluster's questions, when retrieval missed it (None: nothing close)."""
    questions = [e.question for e in cluster.examples]
    questions += sorted({c.question for c in cluster.cases} - set(questions))[: PROBES - len(questions)]
    near: Counter[str] = Counter()
    chunks = {}
    for question in questions:
        found = kb.search(question, k=1)
        if not found.hits:
            continue
        hit = found.hits[0]
        chunks[hit.chunk.id] = hit.chunk
        if found.decision != "none":  # the knowledge base answers it now (a newer version, a new key)
            return _target(hit.chunk)
        if hit.dense >= settings.grounded_threshold - settings.near_miss and hit.sparse > 0:
            near[hit.chunk.id] += 1
    if not near:
        return None
    chunk_id, votes = min(near.items(), key=lambda item: (-item[1], item[0]))
    return _target(chunks[chunk_id]) if votes * 2 >= len(questions) else None


def _target(chunk: Any) -> dict[str, str]:
    return {"chunk_id": chunk.id, "kind": chunk.kind, "title": chunk.title, "source": chunk.source}


def suggest_fix(cluster: Cluster) -> str:
    question, s = cluster.representative, cluster.signals
    if cluster.cause == "missing_knowledge":
        return f"Add an FAQ entry (or a document section) answering: 「{question}」"
    if cluster.cause == "retrieval" and cluster.target is not None:
        t = cluster.target
        keys = "」「".join(_missed_questions(cluster))
        if t["kind"] == "faq":
            faq_id = t["chunk_id"].removeprefix("faq:")
            return f"Add 「{keys}」 as similar questions (match keys) of FAQ {faq_id} ({t['title']})"
        return (
            f"Add an FAQ entry for 「{keys}」 from {t['source']} ({t['title']}), "
            "or word that section the way customers ask"
        )
    if cluster.cause == "model":
        return (
            f"Review the model's answers to 「{question}」 in the audit log: the source check replaced "
            f"{s.get('replaced', 0)} and the model failed {s.get('fallback', 0)} time(s); "
            "make the sources answer it plainly (an FAQ answers verbatim) or change the route's model"
        )
    if cluster.cause == "policy":
        return (
            f"Review the flow or policy these conversations hit ({s.get('flow_failed', 0)} failed flow(s), "
            f"{s.get('sensitive', 0)} sensitive refusal(s)): its rules, its questions and its failure reply"
        )
    counts = {"handoff": "after a bot answer", "complaint": "complaint(s)", "anger": "angry"}
    why = ", ".join(f"{s[name]} {words}" for name, words in counts.items() if s.get(name))
    if s.get("handoff"):
        return (
            f"Customers wanted a person about 「{question}」 ({why}): the bot's answer did not settle it — "
            "make it answer the actual question (or add a flow that resolves it)"
        )
    return (
        f"Customers wanted a person about 「{question}」 ({why}): route it straight to the right team with "
        "an apology, and fix the cause the complaints name"
    )


def _missed_questions(cluster: Cluster) -> list[str]:
    """Up to 3 distinct questions retrieval missed (nearest the centroid first): the match keys to add."""
    missed = [c.question for c in cluster.examples if {"not_in_kb", "low_rating"} & set(c.signals)]
    missed += [c.question for c in cluster.cases if {"not_in_kb", "low_rating"} & set(c.signals)]
    return list(dict.fromkeys(missed or [cluster.representative]))[:EXAMPLES]
