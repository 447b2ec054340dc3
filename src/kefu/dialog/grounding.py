"""Is a generated answer supported by the sources it was given?

A cheap lexical check, used to hold back answers from small local models that wander off their
sources (「新疆是中华人民共和国自治区……」 in answer to 「那新疆呢？」 about delivery times):
- every number in the answer must appear in the context (policy is numbers: days, fees, limits);
- most of its content — Chinese character trigrams and English words — must appear in the context.
  Trigrams, not bigrams: word salad made of the sources' own words (「运费计算公式：[1] 元/尺码」) shares
  most bigrams with them but few trigrams; measured on the demo shop, restated answers score ≥ 0.75
  and off-source ones ≤ 0.2.
It cannot prove an answer right; it catches answers that are plainly not from the sources.
"""

from __future__ import annotations

import re

# A number with the unit that follows it (「3 天」→ "3天", "20 元" → "20元"): "3 days" must not pass
# because the context mentions "3 working days" for something else… or "[3]".
_NUMBER = re.compile(r"(\d+(?:\.\d+)?)\s*([\u4e00-\u9fff%]|[a-z]+)?", re.IGNORECASE)
_CJK_RUN = re.compile(r"[\u4e00-\u9fff]+")
_WORD = re.compile(r"[a-z]{3,}")
_CITATION = re.compile(r"\[\d+\]")
MIN_SUPPORT = 0.5
_GRAM = 3


def _units(text: str) -> set[str]:
    text = _CITATION.sub(" ", text).lower()
    runs = _CJK_RUN.findall(text)
    units = {run[i : i + _GRAM] for run in runs for i in range(max(len(run) - _GRAM + 1, 1))}
    units.update(_WORD.findall(text))
    return units


def _numbers(text: str) -> list[str]:
    return [f"{n}{unit.lower()}" for n, unit in _NUMBER.findall(_CITATION.sub(" ", text))]


def unsupported_numbers(answer: str, context: str) -> list[str]:
    """Numbers of the answer (with their unit) that the context does not contain."""
    known = set(_numbers(context))
    bare = {n.rstrip("abcdefghijklmnopqrstuvwxyz%") for n in known}
    return [n for n in _numbers(answer) if n not in known and not (n.isdigit() and n in bare)]


def support(answer: str, context: str) -> float:
    """The share of the answer's content units (CJK trigrams, English words) found in the context."""
    units = _units(answer)
    if not units:
        return 1.0
    return len(units & _units(context)) / len(units)


def is_grounded(answer: str, context: str, min_support: float = MIN_SUPPORT) -> bool:
    return not unsupported_numbers(answer, context) and support(answer, context) >= min_support
