"""Time ``score_sentiment`` per customer message (it runs on every message), against a baseline in the same run.

``python benchmarks/sentiment_latency.py [--model PATH] [--rounds N]``: scores the hand-written
customer-service messages (``evals/sentiment_cs.yaml``) and the demo-shop FAQ questions, Chinese
and English, ``rounds`` times, and prints the median / p95 microseconds per message for the
shipped scorer and for the bare character n-gram classifier, plus the ratio of the two. The first
call (model load) is timed apart. Figures depend on the machine and its load; compare ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from kefu.evals.sentiment_data import DEMO_FAQ, cs_messages
from kefu.safety import sentiment
from kefu.safety.sentiment_zh import WEIGHTS, ZhSentimentModel


def _time_each(texts: list[str], score: object, rounds: int) -> list[float]:
    fn = score  # a callable taking one text
    out = []
    for _ in range(rounds):
        for text in texts:
            start = time.perf_counter()
            fn(text)  # type: ignore[operator]
            out.append((time.perf_counter() - start) * 1e6)
    return out


def _line(name: str, samples: list[float]) -> str:
    samples = sorted(samples)
    p95 = samples[int(0.95 * (len(samples) - 1))]
    return f"{name:<40}{len(samples):>8}{statistics.median(samples):>12.1f}{p95:>12.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=WEIGHTS)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    start = time.perf_counter()
    model = ZhSentimentModel.load(args.model)
    load_ms = (time.perf_counter() - start) * 1e3
    items = json.loads(Path(DEMO_FAQ).read_text(encoding="utf-8"))
    zh = [m.text for m in cs_messages()] + [q for i in items for q in [i["question"], *i.get("similar", [])]]
    en_items = json.loads(Path(DEMO_FAQ).with_name("faq_en.json").read_text(encoding="utf-8"))
    en = [q for i in en_items for q in [i["question"], *i.get("similar", [])]]
    sentiment.score_sentiment("warm up VADER")  # loads the English lexicon once
    print(f"model {args.model.name}: {len(model.vocab)} n-grams, loaded in {load_ms:.0f} ms")
    print(f"{'per message (microseconds)':<40}{'n':>8}{'median':>12}{'p95':>12}")
    bare = _time_each(zh, model.probability, args.rounds)
    full = _time_each(zh, lambda t: sentiment.zh_score(t, model), args.rounds)
    print(_line("zh: n-gram classifier alone (baseline)", bare))
    print(_line("zh: score (classifier + lexicon)", full))
    print(_line("en: score_sentiment (VADER)", _time_each(en, sentiment.score_sentiment, args.rounds)))
    print(f"zh score / classifier alone: {statistics.median(full) / statistics.median(bare):.2f}x")


if __name__ == "__main__":
    main()
