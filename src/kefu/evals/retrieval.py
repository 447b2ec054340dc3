"""``kefu eval retrieval``: how well the knowledge base finds the right FAQ or document on real data.

Three rankers on the same queries and the same vectors (see ``retrieval_rank``): fused (what
``KnowledgeBase.search`` serves), dense-only and BM25-only. Sets (see ``retrieval_data``):

* BQ bank question pairs and AFQMC Alipay pairs, as FAQ matching: Recall@1/5/10 and MRR of the
  FAQs labelled "same meaning" among every distinct first question of the sample;
* tau2 banking_knowledge: Recall@10 of each task's required documents among the document pool,
  documents ranked by their best chunk.

Then the decision view for the FAQ sets: how often the KB's confidence would answer an FAQ
verbatim (decision "faq" at ``faq_direct_threshold``), and how often that FAQ is a wrong one —
for queries that have a right FAQ in the pool, and for unanswerable ones (second questions of
negative pairs with no positive in the pool). Embeddings go through an ``EmbeddingCache`` in
``cache_dir``: a cold run with the default sizes embeds ~8,900 texts (2–3.5 minutes on two
shared cores), a warm one only tokenises and ranks (~15 s). ``FULL`` runs every row of every set.
Figures are printed, never judged.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kefu.errors import InvalidInput
from kefu.evals.retrieval_data import SEED, EvalSet, pair_set, read_afqmc, read_bq, sample, tau2_set
from kefu.evals.retrieval_rank import (
    RANKERS,
    CachingEmbedder,
    Layout,
    Ranked,
    rank_query,
    recall_at,
    reciprocal_rank,
)
from kefu.kb.embeddings import EmbeddingCache, shared_embedder
from kefu.kb.index import (
    CACHE_FILE,
    FAQ_DIRECT_THRESHOLD,
    FAQ_MARGIN,
    GROUNDED_THRESHOLD,
    KnowledgeBase,
    embed_pack,
)
from kefu.kb.types import Embedder

KS = (1, 5, 10)
SWEEP = (0.92, 0.94, 0.95, 0.96, 0.97)
MARGINS = (0.0, 0.01, 0.02, 0.03)
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Sizes:
    """Rows sampled per set (None: all of them; 0: skip the set)."""

    bq_pairs: int | None = 2000  # of 5,000
    afqmc_pairs: int | None = None  # all 2,158
    tau2_tasks: int | None = 16  # of 49
    tau2_docs: int | None = (
        250  # of 698  # document pool: the sampled tasks' required documents + distractors
    )


FULL = Sizes(None, None, None, None)


@dataclass
class SetInfo:
    name: str
    rows: int
    queries: int  # queries with a right answer in the pool (scored)
    unanswerable: int
    verbatim: int  # queries dropped: their text is one of the FAQ questions
    pool: int  # FAQs or documents ranked per query
    chunks: int
    seconds: float


@dataclass
class RankerScore:
    dataset: str
    ranker: str
    recall: dict[int, float]
    mrr: float


@dataclass
class ThresholdPoint:
    threshold: float
    right: int  # answerable queries answered verbatim with a right FAQ
    wrong: int  # answerable queries answered verbatim with a wrong FAQ
    unanswerable: int  # unanswerable queries answered verbatim (all wrong)
    margin: float = 0.0  # the FAQ's lead over the next FAQ required too (KEFU_FAQ_MARGIN)


@dataclass
class DecisionView:
    dataset: str
    answerable: Counter[str] = field(
        default_factory=Counter
    )  # "faq right" / "faq WRONG" / "grounded" / "none"
    unanswerable: Counter[str] = field(default_factory=Counter)
    sweep: list[ThresholdPoint] = field(default_factory=list)


@dataclass
class RetrievalReport:
    faq_direct_threshold: float
    grounded_threshold: float
    sets: list[SetInfo] = field(default_factory=list)
    scores: list[RankerScore] = field(default_factory=list)
    decisions: list[DecisionView] = field(default_factory=list)

    def format_table(self) -> str:
        """The report as plain-text tables (what ``kefu eval retrieval`` prints)."""
        return "\n".join([*_set_lines(self), "", *_score_lines(self), "", *_decision_lines(self)])


def _set_lines(report: RetrievalReport) -> list[str]:
    lines = [
        f"retrieval sets (fixed-seed samples, seed {SEED})",
        _row("set", "rows", "queries", "unans.", "verbatim"),
    ]
    lines[-1] += f"{'pool':>7}{'chunks':>8}{'seconds':>9}"
    for s in report.sets:
        lines.append(
            _row(s.name, s.rows, s.queries, s.unanswerable, s.verbatim)
            + f"{s.pool:>7}{s.chunks:>8}{s.seconds:>9.1f}"
        )
    return lines


def _row(name: str, *cells: object) -> str:
    return f"{name:<20}" + "".join(f"{c!s:>9}" for c in cells)


def _score_lines(report: RetrievalReport) -> list[str]:
    head = f"{'dataset':<20}{'ranker':<8}" + "".join(f"{'R@' + str(k):>8}" for k in KS) + f"{'MRR':>8}"
    lines = [head]
    for s in report.scores:
        cells = "".join(f"{s.recall[k]:>8.3f}" for k in KS)
        lines.append(f"{s.dataset:<20}{s.ranker:<8}{cells}{s.mrr:>8.3f}")
    return lines


def _decision_lines(report: RetrievalReport) -> list[str]:
    lines = [
        f'FAQ verbatim answers (decision "faq" at faq_direct_threshold {report.faq_direct_threshold:.2f}, '
        f"grounded at {report.grounded_threshold:.2f})",
        f"{'dataset':<20}{'queries':<14}{'n':>6}{'faq right':>11}{'faq WRONG':>11}{'grounded':>10}{'none':>7}",
    ]
    for view in report.decisions:
        for label, counts in (("answerable", view.answerable), ("unanswerable", view.unanswerable)):
            n = sum(counts.values())
            cells = "".join(
                f"{_share(counts[k], n):>{w}}"
                for k, w in (("faq right", 11), ("faq WRONG", 11), ("grounded", 10), ("none", 7))
            )
            lines.append(f"{view.dataset:<20}{label:<14}{n:>6}{cells}")
    return [*lines, "", *_sweep_lines(report.decisions)]


def _sweep_lines(views: list[DecisionView]) -> list[str]:
    """One row per threshold; per set: % right / % WRONG of answerable, % of unanswerable (all WRONG)."""
    lines = [
        "threshold + FAQ margin sweep: answered verbatim, % right / % WRONG of answerable queries, "
        "% of unanswerable ones (all WRONG)",
        f"{'threshold':<11}" + "".join(f"{v.dataset:<24}" for v in views),
    ]
    for i, point in enumerate(views[0].sweep if views else []):
        cells = []
        for view in views:
            n_ans, n_un, p = sum(view.answerable.values()), sum(view.unanswerable.values()), view.sweep[i]
            cells.append(f"{_pct(p.right, n_ans)} / {_pct(p.wrong, n_ans)} / {_pct(p.unanswerable, n_un)}")
        label = f"{point.threshold:.2f} +{point.margin:.2f}"
        lines.append(f"{label:<11}" + "".join(f"{c:<24}" for c in cells))
    return lines


def _share(count: int, n: int) -> str:
    return f"{count / n:.1%}" if n else "-"


def _pct(count: int, n: int) -> str:
    return f"{100 * count / n:.1f}" if n else "-"


def run_retrieval_eval(
    eval_dir: Path,
    *,
    sizes: Sizes = Sizes(),
    cache_dir: Path,
    embedder: Embedder | None = None,
    faq_direct_threshold: float = FAQ_DIRECT_THRESHOLD,
    grounded_threshold: float = GROUNDED_THRESHOLD,
    faq_margin: float = FAQ_MARGIN,
    progress: Progress | None = None,
) -> RetrievalReport:
    """Rank every sampled query of every set with the three rankers; embeddings cached in ``cache_dir``."""
    if not eval_dir.is_dir():
        raise InvalidInput(
            f"evaluation folder {eval_dir} does not exist; pass --data pointing at the shared "
            "evaluation folder (e.g. ../shared/eval)"
        )
    inner = embedder or shared_embedder()
    cache = EmbeddingCache(cache_dir / CACHE_FILE)
    report = RetrievalReport(faq_direct_threshold, grounded_threshold)
    for build in _set_builders(eval_dir, sizes):
        start = time.perf_counter()
        eval_set = build()
        ranked = _rank_set(
            eval_set, inner, cache, (faq_direct_threshold, grounded_threshold, faq_margin), progress
        )
        _add_set(report, eval_set, ranked, time.perf_counter() - start)
    return report


def _set_builders(eval_dir: Path, sizes: Sizes) -> list[Callable[[], EvalSet]]:
    builders: list[Callable[[], EvalSet]] = []
    if sizes.bq_pairs != 0:
        builders.append(lambda: pair_set("BQ (bank)", sample(read_bq(eval_dir), sizes.bq_pairs)))
    if sizes.afqmc_pairs != 0:
        builders.append(lambda: pair_set("AFQMC (Alipay)", sample(read_afqmc(eval_dir), sizes.afqmc_pairs)))
    if sizes.tau2_tasks != 0 and sizes.tau2_docs != 0:
        builders.append(lambda: tau2_set(eval_dir, sizes.tau2_tasks, sizes.tau2_docs))
    return builders


def _rank_set(
    eval_set: EvalSet,
    inner: Embedder,
    cache: EmbeddingCache,
    thresholds: tuple[float, float, float],
    progress: Progress | None,
) -> list[Ranked]:
    if progress is not None:
        progress(
            f"{eval_set.name}: embedding {len(eval_set.pack.keys)} keys and {len(eval_set.queries)} "
            f"queries (cache {cache.path}), then ranking"
        )
    vectors = embed_pack(eval_set.pack, inner, cache)
    queries = CachingEmbedder(inner, cache)
    queries.embed_queries([q.text for q in eval_set.queries])  # one batch: faster than one by one
    faq_threshold, grounded_threshold, margin = thresholds
    kb = KnowledgeBase(eval_set.pack, queries, vectors, faq_threshold, grounded_threshold, faq_margin=margin)
    layout = Layout.of(eval_set)
    return [rank_query(kb, layout, q, eval_set.unit) for q in eval_set.queries]


def _add_set(report: RetrievalReport, eval_set: EvalSet, ranked: list[Ranked], seconds: float) -> None:
    answerable = [r for q, r in zip(eval_set.queries, ranked, strict=True) if q.gold]
    unanswerable = [r for q, r in zip(eval_set.queries, ranked, strict=True) if not q.gold]
    report.sets.append(
        SetInfo(
            eval_set.name,
            eval_set.rows,
            len(answerable),
            len(unanswerable),
            eval_set.verbatim,
            eval_set.pool,
            len(eval_set.pack.chunks),
            seconds,
        )
    )
    for ranker in RANKERS:
        ranks = [r.gold_ranks[ranker] for r in answerable]
        n = len(ranks) or 1
        recall = {k: sum(recall_at(x, k, eval_set.unit) for x in ranks) / n for k in KS}
        mrr = sum(reciprocal_rank(x) for x in ranks) / n
        report.scores.append(RankerScore(eval_set.name, ranker, recall, mrr))
    if eval_set.unit == "faq":
        gold = [q.gold for q in eval_set.queries if q.gold]
        report.decisions.append(_decision_view(eval_set.name, answerable, gold, unanswerable))


def _decision_view(
    name: str, answerable: list[Ranked], gold: list[frozenset[str]], unanswerable: list[Ranked]
) -> DecisionView:
    view = DecisionView(name)
    for r, g in zip(answerable, gold, strict=True):
        view.answerable[_outcome(r, g)] += 1
    for r in unanswerable:
        view.unanswerable[_outcome(r, frozenset())] += 1
    for t in SWEEP:
        for margin in MARGINS:

            def verbatim(r: Ranked, t: float = t, margin: float = margin) -> bool:
                return r.confidence >= t and r.lead >= margin

            right = sum(verbatim(r) and r.top_unit in g for r, g in zip(answerable, gold, strict=True))
            wrong = sum(verbatim(r) and r.top_unit not in g for r, g in zip(answerable, gold, strict=True))
            unanswered = sum(verbatim(r) for r in unanswerable)
            view.sweep.append(ThresholdPoint(t, right, wrong, unanswered, margin))
    return view


def _outcome(ranked: Ranked, gold: frozenset[str]) -> str:
    if ranked.decision != "faq":
        return ranked.decision
    return "faq right" if ranked.answered in gold else "faq WRONG"
