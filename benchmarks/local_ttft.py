"""Time to first token (TTFT) and decode speed of the bundled local model.

    python benchmarks/local_ttft.py [--runs 3] [--threads 0]

Two prompts: a short question (system rules + one source) and a ~600-token grounded prompt
(system rules + the demo shop's shipping and returns documents as sources). Every run starts with
a different first line, so llama.cpp's prefix cache cannot help: the figures are for a fresh prompt.
The model is loaded (and, the first time, joined and verified) before timing starts.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from kefu.config import DEMO_SHOP_DIR, Settings
from kefu.llm.base import ChatRequest, Message
from kefu.llm.local import LocalModel

RULES = "你是「小铺优选」的在线客服。只根据【资料】回答顾客的问题，回答简洁、礼貌，使用中文，并标注来源编号。"
SHORT_SOURCE = "[1] 配送\n订单满99元包邮，不满99元收取运费8元。"


def long_sources(target_chars: int) -> str:
    text = ""
    for number, name in enumerate(["shipping.md", "returns.md", "exchanges.md", "payment.md"], start=1):
        text += f"[{number}] {name}\n{(DEMO_SHOP_DIR / 'docs' / name).read_text(encoding='utf-8')}\n\n"
    return text[:target_chars]


def request(run: int, sources: str, question: str) -> ChatRequest:
    system = f"（会话 {run}）{RULES}\n\n【资料】\n{sources}"
    return ChatRequest([Message("system", system), Message("user", question)], max_tokens=64, temperature=0)


async def measure(model: LocalModel, chat: ChatRequest) -> tuple[float, float, int, int]:
    start = time.perf_counter()
    first = 0.0
    async for chunk in model.stream(chat):
        if chunk.text and not first:
            first = time.perf_counter() - start
        if chunk.usage is not None:
            total = time.perf_counter() - start
            return first, total, chunk.usage.prompt_tokens, chunk.usage.completion_tokens
    raise RuntimeError("the stream ended without usage")


async def main(runs: int, threads: int) -> None:
    settings = Settings(local_threads=threads)
    model = LocalModel.from_settings(settings)
    started = time.perf_counter()
    await model.check()
    print(f"load (join/verify on first use + llama load): {time.perf_counter() - started:.2f} s")
    await measure(model, request(-1, SHORT_SOURCE, "你好"))  # warm-up
    cases = [
        ("short question", SHORT_SOURCE, "运费多少钱？"),
        ("~600-token prompt", long_sources(900), "退货运费谁出？"),
    ]
    for label, sources, question in cases:
        results = [await measure(model, request(run, sources, question)) for run in range(runs)]
        ttft = statistics.median(r[0] for r in results)
        decode = statistics.median((r[3] - 1) / max(r[1] - r[0], 1e-9) for r in results)
        print(
            f"{label:18s} prompt={results[0][2]:4d} tok  TTFT median={ttft * 1000:6.0f} ms "
            f"(min {min(r[0] for r in results) * 1000:.0f}, max {max(r[0] for r in results) * 1000:.0f})  "
            f"decode≈{decode:.1f} tok/s  over {runs} runs"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="0 = all cores")
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.threads))
