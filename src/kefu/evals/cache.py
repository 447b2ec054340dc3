"""`kefu eval cache`: the semantic answer cache's threshold, calibrated on real paraphrase pairs.

Data: BQ (bank customer service) and AFQMC (Alipay) question pairs, each labelled "same meaning" or
not, read from the shared evaluation folder (see its README for the source repositories and commits).
Each pair stands for a cached question and a new one. At threshold ``t`` the pair is a *hit* when the
answer cache (``kefu.dialog.cache``) would serve the cached answer to the new question: the normalised
texts are equal (exact tier), or the cosine of their query embeddings is ≥ ``t`` and both name the same
numbers (semantic tier, ``cache_text.same_numbers``).

* precision — of the hits, the share that truly mean the same. A false hit serves the answer of another
  question, so this is what the threshold is chosen for.
* hit rate — of the same-meaning pairs, the share that hit (recall).

The pairs are split into dev and test by a stable hash of their text; the threshold is the lowest of the
sweep whose dev precision reaches the target on every set, and both halves are reported; when none does,
the semantic tier is not safe with this embedder and the report says to keep it off (threshold 1). These pairs are hard on
purpose (a negative pair shares most of its words), so precision on real traffic, where most questions
that meet in the cache are unrelated, is at least this.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kefu.dialog.cache_text import normalise, same_numbers
from kefu.errors import InvalidInput
from kefu.evals.retrieval_data import AFQMC, BQ, Pair, read_afqmc, read_bq, sample
from kefu.kb.embeddings import EmbeddingCache, embed_cached, shared_embedder
from kefu.kb.index import CACHE_FILE
from kefu.kb.types import Embedder

Progress = Callable[[str], None]
TARGET_PRECISION = 0.95
SWEEP = tuple(round(0.90 + 0.01 * i, 2) for i in range(10))  # 0.90 … 0.99
SOURCES = {
    "BQ (bank)": f"{BQ} — Chriszhangmw/LCQMC@2fa3ebd sourceData/bq_corpus/bq_corpus/dev.tsv, first half",
    "AFQMC (Alipay)": f"{AFQMC} — bigjeager/afqmc@e30c4f7 data/afqmc/dev.json, first half",
}


@dataclass(frozen=True)
class Sizes:
    bq_pairs: int | None = 2000  # None: every pair
    afqmc_pairs: int | None = 1000


FULL = Sizes(None, None)


@dataclass(frozen=True)
class Scored:
    """One pair: same meaning (label), exact-tier hit, cosine, and whether its numbers agree."""

    same: bool
    exact: bool
    cosine: float
    numbers_agree: bool
    dev: bool

    def hit(self, threshold: float) -> bool:
        return self.exact or (self.cosine >= threshold and self.numbers_agree)


@dataclass(frozen=True)
class Point:
    threshold: float
    hits: int
    true_hits: int
    positives: int

    @property
    def precision(self) -> float:
        return self.true_hits / self.hits if self.hits else 1.0

    @property
    def hit_rate(self) -> float:
        return self.true_hits / self.positives if self.positives else 0.0


def sweep(pairs: list[Scored], thresholds: tuple[float, ...] = SWEEP) -> list[Point]:
    positives = sum(p.same for p in pairs)
    points = []
    for t in thresholds:
        hits = [p for p in pairs if p.hit(t)]
        points.append(Point(t, len(hits), sum(p.same for p in hits), positives))
    return points


@dataclass
class CacheReport:
    embedder: str
    target: float
    sets: dict[str, int] = field(default_factory=dict)  # name → pairs
    dev: dict[str, list[Scored]] = field(default_factory=dict)  # per set
    test: dict[str, list[Scored]] = field(default_factory=dict)
    seconds: float = 0.0

    def chosen(self, names: list[str] | None = None) -> float | None:
        """The lowest threshold of the sweep whose dev precision reaches the target on every set (of
        ``names``), or None: then no threshold is safe and the semantic tier stays off."""
        names = names or list(self.dev)
        for t in SWEEP:
            points = [sweep(self.dev[n], (t,))[0] for n in names]
            if all(p.hits and p.precision >= self.target for p in points):
                return t
        return None

    def format_table(self) -> str:
        lines = ["Answer cache — semantic threshold on real paraphrase pairs", ""]
        lines.append("data (read from the evaluation folder, not copied):")
        lines += [f"  {name}: {n} pairs ({SOURCES[name]})" for name, n in self.sets.items()]
        every = [p for part in (self.dev, self.test) for pairs in part.values() for p in pairs]
        exact = [p for p in every if p.exact]
        lines.append(
            f"  split by sha256 of the pair: dev {sum(map(len, self.dev.values()))}, test "
            f"{sum(map(len, self.test.values()))}; {sum(p.same for p in every)} of {len(every)} pairs mean the same"
        )
        lines.append(f"embedder: {self.embedder} (query embeddings, as the product)")
        lines.append(
            f"exact tier: {len(exact)} pairs equal after normalising, {sum(p.same for p in exact)} of them "
            "labelled same meaning"
        )
        lines += [
            "",
            "dev precision / hit rate (hits) by threshold:",
            "threshold" + "".join(f"{n:>28}" for n in self.dev),
        ]
        for t in SWEEP:
            cells = [sweep(pairs, (t,))[0] for pairs in self.dev.values()]
            lines.append(
                f"{t:>9.2f}"
                + "".join(f"{p.precision:>13.3f} / {p.hit_rate:.3f} ({p.hits:>4})" for p in cells)
            )
        return "\n".join([*lines, "", *self._choice_lines()])

    def _choice_lines(self) -> list[str]:
        lines = []
        for name in self.dev:
            t = self.chosen([name])
            if t is None:
                lines.append(f"{name}: no threshold reaches precision {self.target:.2f} on dev")
                continue
            dev, test = sweep(self.dev[name], (t,))[0], sweep(self.test[name], (t,))[0]
            lines.append(
                f"{name} alone: {t:.2f} — dev precision {dev.precision:.3f} (hit rate {dev.hit_rate:.3f}), "
                f"test precision {test.precision:.3f} on {test.hits} hits (hit rate {test.hit_rate:.3f})"
            )
        t = self.chosen()
        if t is None:
            lines.append(
                f"chosen: none — no threshold reaches precision {self.target:.2f} on the dev half of every set; "
                "keep KEFU_ANSWER_CACHE_THRESHOLD=1 (exact matches only) with this embedder"
            )
        else:
            lines.append(
                f"chosen on dev (precision ≥ {self.target:.2f} on every set): KEFU_ANSWER_CACHE_THRESHOLD={t:.2f}"
            )
        return [*lines, f"({self.seconds:.0f} s)"]


def run_cache_eval(
    eval_dir: Path,
    *,
    sizes: Sizes = Sizes(),
    cache_dir: Path,
    embedder: Embedder | None = None,
    target: float = TARGET_PRECISION,
    progress: Progress | None = None,
) -> CacheReport:
    """Score every sampled pair (embeddings cached in ``cache_dir``) and sweep the threshold."""
    if not eval_dir.is_dir():
        raise InvalidInput(
            f"evaluation folder {eval_dir} does not exist; pass --data pointing at the shared "
            "evaluation folder (e.g. ../shared/eval)"
        )
    started = time.perf_counter()
    model = embedder or shared_embedder()
    vectors = EmbeddingCache(cache_dir / CACHE_FILE)
    report = CacheReport(model.name, target)
    chosen = {
        "BQ (bank)": sample(read_bq(eval_dir), sizes.bq_pairs),
        "AFQMC (Alipay)": sample(read_afqmc(eval_dir), sizes.afqmc_pairs),
    }
    for name, pairs in chosen.items():
        pairs = [p for p in pairs if p[0] and p[1]]
        report.sets[name] = len(pairs)
        if progress is not None:
            progress(f"{name}: embedding {2 * len(pairs)} questions (cache {vectors.path})")
        scored = score_pairs(pairs, model, vectors)
        report.dev[name] = [p for p in scored if p.dev]
        report.test[name] = [p for p in scored if not p.dev]
    report.seconds = time.perf_counter() - started
    return report


def score_pairs(pairs: list[Pair], embedder: Embedder, cache: EmbeddingCache) -> list[Scored]:
    texts = list(dict.fromkeys(t for q1, q2, _ in pairs for t in (q1, q2)))
    matrix = embed_cached(embedder, cache, texts, "query")
    row = {t: i for i, t in enumerate(texts)}
    scored = []
    for q1, q2, same in pairs:
        cosine = float(np.dot(matrix[row[q1]], matrix[row[q2]]))
        digest = hashlib.sha256(f"{q1}\t{q2}".encode()).digest()
        exact = normalise(q1) == normalise(q2)
        scored.append(Scored(same, exact, cosine, same_numbers(q1, q2), dev=digest[0] % 2 == 0))
    return scored
