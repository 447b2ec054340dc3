"""The text report of ``kefu eval shop``: wrong answers in full, totals by language and split, timings."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from kefu.evals.shop_data import OUTCOMES

if TYPE_CHECKING:
    from kefu.evals.shop import ItemResult, ShopReport

_COLUMNS = (*OUTCOMES, "error")


def format_report(report: ShopReport, show_all: bool = False) -> str:
    results = report.results
    langs = Counter(r.question.lang for r in results)
    head = (
        f"kefu eval shop — model: {report.llm} · split: {report.split} · {len(results)} questions "
        f"({', '.join(f'{lang} {n}' for lang, n in sorted(langs.items()))})"
    )
    lines = [head, ""]
    shown = [r for r in results if show_all or r.outcome in ("wrong", "error")]
    title = "every answer" if show_all else "wrong answers (and errors), in full"
    lines.append(f"{title}: {len(shown)}")
    for result in shown:
        lines += ["", *format_item(result)]
    lines += ["", *totals(results), "", *by_expectation(results), "", *answer_kinds(results)]
    lines += ["", *timings(results)]
    return "\n".join(lines)


def format_item(result: ItemResult) -> list[str]:
    q, reply, verdict = result.question, result.reply, result.verdict
    tags = ",".join(q.tags)
    lines = [f"{result.outcome.upper()}  {q.id}  [{q.lang} {q.split} expect={q.expect}] {tags}"]
    for text, answer in zip(q.previous, result.previous_replies, strict=False):
        lines += [f"  earlier Q: {text}", f"  earlier A: {_one_line(answer)}"]
    lines.append(f"  Q: {q.q}")
    first = f"{reply.first_text_s:.2f}" if reply.first_text_s is not None else "-"
    lines.append(
        f"  A ({reply.answer_kind}; first text {first} s, full {reply.full_s:.2f} s): {_one_line(reply.text)}"
    )
    if result.error:
        lines.append(f"  error: {result.error}")
    if verdict is not None:
        if verdict.forbidden:
            lines.append(f"  must_not matched: {' | '.join(verdict.forbidden)}")
        if verdict.missing:
            lines.append(f"  must missing: {' | '.join(' / '.join(group) for group in verdict.missing)}")
        if verdict.flow_started is not None:
            lines.append(f"  flow started: {'yes' if verdict.flow_started else 'no'}")
    if q.note:
        lines.append(f"  note: {q.note}")
    for cite in reply.citations:
        lines.append(
            f"  [{cite.get('index')}] {cite.get('chunk_id')} · {cite.get('title')} > {cite.get('section')}"
        )
    return lines


def totals(results: list[ItemResult]) -> list[str]:
    """Outcomes by language and split, then by language, then overall."""
    groups: dict[str, list[ItemResult]] = {}
    for lang in ("zh", "en"):
        for split in ("dev", "test"):
            groups[f"{lang} {split}"] = [
                r for r in results if (r.question.lang, r.question.split) == (lang, split)
            ]
    for lang in ("zh", "en"):
        groups[f"{lang} all"] = [r for r in results if r.question.lang == lang]
    for split in ("dev", "test"):
        groups[f"all {split}"] = [r for r in results if r.question.split == split]
    groups["all"] = results
    return [
        "outcome by language and split",
        _header("", 10),
        *(_row(k, v, 10) for k, v in groups.items() if v),
    ]


def by_expectation(results: list[ItemResult]) -> list[str]:
    """Outcomes by what was expected; for flows also how many started."""
    lines = ["outcome by expectation (decline questions: right = an honest decline or offer of a human)"]
    lines.append(_header("", 10))
    for expect in ("answer", "decline", "flow"):
        chosen = [r for r in results if r.question.expect == expect]
        if chosen:
            lines.append(_row(expect, chosen, 10))
    flows = [r for r in results if r.question.expect == "flow" and r.verdict is not None]
    if flows:
        started = sum(bool(r.verdict and r.verdict.flow_started) for r in flows)
        lines.append(f"flows started: {started}/{len(flows)}")
    return lines


def answer_kinds(results: list[ItemResult]) -> list[str]:
    kinds = Counter(r.reply.answer_kind for r in results)
    return ["answer kinds: " + ", ".join(f"{kind} {n}" for kind, n in kinds.most_common())]


def timings(results: list[ItemResult]) -> list[str]:
    """p50 / p90 / max of the time to the first text and to the full answer (the question only)."""
    first = [r.reply.first_text_s for r in results if r.reply.first_text_s is not None]
    full = [r.reply.full_s for r in results if r.verdict is not None]
    lines = [f"{'seconds':<16}{'n':>5}{'p50':>8}{'p90':>8}{'max':>8}"]
    for name, values in (("first text", first), ("full answer", full)):
        if values:
            cells = "".join(
                f"{v:>8.2f}" for v in (percentile(values, 50), percentile(values, 90), max(values))
            )
            lines.append(f"{name:<16}{len(values):>5}{cells}")
    return lines


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (p50 of [1, 2, 3, 4] is 2)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def _header(label: str, width: int) -> str:
    return f"{label:<{width}}{'n':>5}" + "".join(f"{c:>12}" for c in _COLUMNS)


def _row(label: str, results: list[ItemResult], width: int) -> str:
    counts = Counter(r.outcome for r in results)
    n = len(results)
    cells = "".join(f"{f'{counts[c]} {100 * counts[c] / n:.0f}%':>12}" for c in _COLUMNS)
    return f"{label:<{width}}{n:>5}{cells}"


def _one_line(text: str) -> str:
    return " ⏎ ".join(line for line in text.strip().splitlines() if line.strip())
