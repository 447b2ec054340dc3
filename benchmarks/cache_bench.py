"""Server time of a turn answered from the answer cache, against a cache miss measured in the same run.

Starts `kefu fake-llm` (0 ms latency, unlimited tokens/s) and `kefu serve` (KEFU_LLM=openai pointed at the
fake, the demo shop, a fresh SQLite database, the answer cache on), then sends demo-shop questions one at
a time, each as the first message of a new conversation:

* miss     — every text new (a per-round number makes it unique): search, model, checks, stored;
* exact    — the same texts again: answered from the exact tier;
* semantic — the same texts reworded (「请问，…」 / "Hi, …"): the semantic tier, where the cosine clears
             --threshold (KEFU_ANSWER_CACHE_THRESHOLD; the rest are misses and are counted as such);
* floor    — 「你好」: a turn with no search, no model and no cache (the fixed cost of any turn: validate,
             redact, guards, the database writes, the audit record).

Prints p50/p99 of server-side time (the Server-Timing header) per outcome, taken from the reply's
``cache`` field, and the hit/miss ratio. Figures, not pass/fail.

    python benchmarks/cache_bench.py [--rounds 5] [--threshold 0.98]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from chat_overhead import free_port, pct, server_ms, start, stop

QUESTIONS = [
    "你们发什么快递？多久能到？",
    "七天无理由退货怎么算时间？",
    "可以开增值税专用发票吗？",
    "支持花呗分期吗",
    "会员积分怎么用",
    "耳机保修多久",
    "偏远地区运费多少",
    "How long does a refund take?",
]


def texts(rounds: int) -> list[str]:
    return [f"{q} #{r:03d}{n:02d}" for r in range(rounds) for n, q in enumerate(QUESTIONS)]


def reworded(text: str) -> str:
    return f"Hi, {text}" if text[0].isascii() else f"请问，{text}"


def ask(http: httpx.Client, text: str) -> tuple[str, float]:
    """(outcome, server ms) of ``text`` as the first message of a new conversation."""
    cid = http.post("/v1/conversations", json={"channel": "api"}).json()["id"]
    response = http.post(f"/v1/conversations/{cid}/messages", json={"content": text})
    response.raise_for_status()
    reply = response.json()
    return reply.get("cache") or f"miss ({reply['answer_kind']})", server_ms(response)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the 8 questions per phase")
    parser.add_argument(
        "--threshold", default="0.98", help="KEFU_ANSWER_CACHE_THRESHOLD (1 = exact only, the default)"
    )
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    fake_port, port = free_port(), free_port()
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    times: dict[str, list[float]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as data:
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "KEFU_DATA_DIR": data,
            "KEFU_LLM": "openai",
            "KEFU_LLM_API_KEY": "bench",
            "KEFU_LLM_BASE_URL": f"http://127.0.0.1:{fake_port}/v1",
            "KEFU_ANSWER_CACHE": "on",
            "KEFU_ANSWER_CACHE_THRESHOLD": args.threshold,
            "KEFU_RATE_LIMIT_WEB": "off",
            "KEFU_RATE_LIMIT_CONVERSATION": "off",
            "KEFU_RATE_LIMIT_GLOBAL": "off",
        }
        fake = start([str(bin_dir / "kefu"), "fake-llm", "--port", str(fake_port)], env, fake_port)
        kefu = start([str(bin_dir / "kefu"), "serve", "--port", str(port)], env, port)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
                for warm in QUESTIONS:  # models loaded, first-call paths taken; then fresh texts
                    ask(http, f"{warm} #warm")
                began = time.perf_counter()
                phases = [texts(args.rounds), texts(args.rounds), [reworded(t) for t in texts(args.rounds)]]
                for text in [t for phase in phases for t in phase] + ["你好"] * 8 * args.rounds:
                    outcome, ms = ask(http, text)
                    times["floor (smalltalk)" if text == "你好" else outcome].append(ms)
                elapsed = time.perf_counter() - began
        finally:
            stop(kefu)
            stop(fake)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"{sum(len(v) for v in times.values())} turns in {elapsed:.1f} s, one at a time; fake-llm 0 ms; "
        f"KEFU_ANSWER_CACHE_THRESHOLD={args.threshold}"
    )
    print(f"{'outcome':<22}{'turns':>7}{'server p50':>12}{'server p99':>12}")
    for outcome in sorted(times, key=lambda o: (not o.startswith("miss"), o)):
        values = times[outcome]
        print(f"{outcome:<22}{len(values):>7}{pct(values, 0.5):>10.2f}ms{pct(values, 0.99):>10.2f}ms")
    misses = [v for o, vs in times.items() if o.startswith("miss (grounded") or o == "miss (faq)" for v in vs]
    floor = times.get("floor (smalltalk)")
    for tier in ("exact", "semantic"):
        if times.get(tier) and misses and floor:
            p50 = pct(times[tier], 0.5)
            print(
                f"{tier} hit p50 / answered miss p50: {p50 / pct(misses, 0.5):.3f}; "
                f"above the floor: {p50 - pct(floor, 0.5):+.2f} ms"
            )


if __name__ == "__main__":
    main()
