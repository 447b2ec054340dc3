"""Time ``redact_pii`` per customer message (it runs on every message), English and Chinese.

``python benchmarks/pii_latency.py [--data ../shared/eval] [--messages 2000] [--rounds 3]``: redacts
the first ``messages`` Banking77 questions (English) and BQ questions (Chinese) ``rounds`` times and
prints p50 / p99 / mean microseconds per message, plus the one-off cost of the first call (word lists
and phone metadata load lazily). It also times messages that carry a name, an address and phone
numbers, which reach the heavier paths. To compare with an older version, run the same script with
``PYTHONPATH=<old checkout>/src``. Figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from pathlib import Path

import kefu
from kefu.safety.pii import redact_pii

WITH_PII = [
    "Hi, I'm Sarah Johnson, I live at 1234 Oak Street, Apt 5, Springfield, IL 62704, call me on "
    "(555) 123-4567 or +44 20 7946 0958",
    "Please send the new card to 62 Rue de la Gare, 69002 Lyon, my mobile is 06 12 34 56 78",
    "我叫王小明，住北京市朝阳区建国路88号3单元502，电话13800138000",
]


def _english(data: Path, n: int) -> list[str]:
    with (data / "banking77" / "train.csv").open(encoding="utf-8", newline="") as handle:
        return [row["text"] for row in csv.DictReader(handle)][:n]


def _chinese(data: Path, n: int) -> list[str]:
    path = data / "bq_corpus" / "dev_half.tsv"
    if not path.is_file():
        return []
    rows = path.read_text(encoding="utf-8").splitlines()
    return [row.split("\t")[0] for row in rows if row][:n]


def _time_each(texts: list[str], rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        for text in texts:
            start = time.perf_counter()
            redact_pii(text)
            out.append((time.perf_counter() - start) * 1e6)
    return out


def _line(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[int(0.99 * (len(ordered) - 1))]
    return f"{name:<34}{len(ordered):>7}{statistics.median(ordered):>10.0f}{p99:>10.0f}{statistics.fmean(ordered):>10.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/eval"))
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not (args.data / "banking77" / "train.csv").is_file():
        raise SystemExit(f"No banking77/train.csv under {args.data}: pass --data pointing at shared/eval.")
    start = time.perf_counter()
    redact_pii(WITH_PII[0])
    print(f"kefu from {Path(kefu.__file__).parent}; first call {(time.perf_counter() - start) * 1e3:.0f} ms")
    print(f"{'per message (microseconds)':<34}{'n':>7}{'p50':>10}{'p99':>10}{'mean':>10}")
    print(_line("en: Banking77", _time_each(_english(args.data, args.messages), args.rounds)))
    chinese = _chinese(args.data, args.messages)
    if chinese:
        print(_line("zh: BQ corpus", _time_each(chinese, args.rounds)))
    print(_line("with a name, address and phones", _time_each(WITH_PII, args.rounds * 100)))


if __name__ == "__main__":
    main()
