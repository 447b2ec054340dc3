"""Is a generated answer supported by the sources it was given?

A cheap lexical check, used to hold back answers from small local models that wander off their
sources (「新疆是中华人民共和国自治区……」 in answer to 「那新疆呢？」 about delivery times):
- every number in the answer must appear in the context (policy is numbers: days, fees, limits);
- most of its content — Chinese character trigrams and English words — must appear in the context.
  Trigrams, not bigrams: word salad made of the sources' own words (「运费计算公式：[1] 元/尺码」) shares
  most bigrams with them but few trigrams; measured on the demo shop, restated answers score ≥ 0.75
  and off-source ones ≤ 0.2.
It cannot prove an answer right; it catches answers that are plainly not from the sources.

Overlap cannot see a flipped fact made of the sources' own words (「能保修，要自己出运费」 against
「保修期内…来回运费都由小铺优选承担」), so ``contradictions`` also compares, answer against evidence:
- who pays: the payer the answer names (the customer / the shop) must be one the evidence names;
- negation: a word the evidence only ever negates (「不支持」「无需」「不能」, "not", "no") must not be
  affirmed by the answer, and a word it only affirms must not be negated;
- numbers with their units (「8 元」 = "8 yuan", 「7 天」 = "7 days"), across Chinese and English.
"""

from __future__ import annotations

import re

# A number with the unit that follows it (「3 天」→ "3天", "20 元" → "20元"): "3 days" must not pass
# because the context mentions "3 working days" for something else… or "[3]".
# A range is one number: 「2–4 天」 is "2-4天", and "2 days" is not in it ("to Beijing: about 2 days" from
# 「其他省份（含北京）一般 2–4 天」 was a wrong answer that a per-number check let through).
_RANGE_DASH = r"\s*(?:[-–—~〜至到]|to)\s*"
_NUMBER = re.compile(
    rf"(\d+(?:\.\d+)?(?:{_RANGE_DASH}\d+(?:\.\d+)?)?)\s*([\u4e00-\u9fff%]|[a-z]+)?", re.IGNORECASE
)
_DIGITS = re.compile(r"\d+(?:\.\d+)?")
_CJK_RUN = re.compile(r"[\u4e00-\u9fff]+")
_WORD = re.compile(r"[a-z]{3,}")
_CITATION = re.compile(r"\[\d+\]")
MIN_SUPPORT = 0.5
_GRAM = 3


def _units(text: str, gram: int = _GRAM) -> set[str]:
    text = _CITATION.sub(" ", text).lower()
    runs = _CJK_RUN.findall(text)
    units = {run[i : i + gram] for run in runs for i in range(max(len(run) - gram + 1, 1))}
    units.update(_WORD.findall(text))
    return units


# English units written as the Chinese sources write them, so that "8 yuan" is found as 「8 元」.
_UNIT_ALIASES = {
    "yuan": "元",
    "rmb": "元",
    "cny": "元",
    "day": "天",
    "days": "天",
    "日": "天",
    "hour": "小",
    "hours": "小",
    "h": "小",
    "month": "个",
    "months": "个",
    "year": "年",
    "years": "年",
    "working": "个",
    "business": "个",
    "percent": "%",
}


_CN_NUMERAL = {
    "一": "1",
    "两": "2",
    "二": "2",
    "三": "3",
    "四": "4",
    "五": "5",
    "六": "6",
    "七": "7",
    "八": "8",
}
_CN_NUMERAL |= {"九": "9", "十": "10"}
# 「四个等级」 is "4 levels": a lone Chinese numeral before a measure word reads as its digits
_CN_COUNT = re.compile(r"(?<![一二两三四五六七八九十])([一二两三四五六七八九十])(?=[个天年月期次种位件元倍])")


def _numbers(text: str) -> list[str]:
    """Numbers with their unit: a Chinese unit character, or an English unit word written the Chinese
    way (yuan → 元, days → 天); other English words after a number ("4 levels", "7th") are not units."""
    text = _CITATION.sub(" ", text).replace("¥", " ").replace("￥", " ")
    text = _CN_COUNT.sub(lambda m: _CN_NUMERAL[m.group(1)], text)
    found = []
    for number, unit in _NUMBER.findall(text):
        unit = unit.lower()
        if unit.isascii():
            unit = _UNIT_ALIASES.get(unit, "")
        found.append(re.sub(_RANGE_DASH, "-", number) + _UNIT_ALIASES.get(unit, unit))
    return found


def unsupported_numbers(answer: str, context: str) -> list[str]:
    """Numbers of the answer (with their unit) that the context does not contain."""
    known = set(_numbers(context))
    digits = set(
        _DIGITS.findall(_CN_COUNT.sub(lambda m: _CN_NUMERAL[m.group(1)], _CITATION.sub(" ", context)))
    )
    return [
        n
        for n in _numbers(answer)
        if n not in known and not (re.fullmatch(r"[\d.\-]+", n) and set(n.split("-")) <= digits)
    ]


def support(answer: str, context: str, gram: int = _GRAM) -> float:
    """The share of the answer's content units (CJK trigrams, English words) found in the context."""
    units = _units(answer, gram)
    if not units:
        return 1.0
    return len(units & _units(context, gram)) / len(units)


# A rewording of a few chosen sentences keeps their words but not their order: bigrams, not trigrams
# (「偏远地区的订单如果不满 199 元，要收 20 元运费」 against 「偏远地区订单不满 199 元收取运费 20 元」: 0.5;
# 「新疆是中华人民共和国的自治区…」 against the sentence on delivery to Xinjiang: 0.05).
REWORDING_SUPPORT = 0.4


def is_rewording(answer: str, sentences: str) -> bool:
    """Whether ``answer`` says the same as ``sentences`` in other words (numbers, payer, negation, and
    most of its bigrams); see ``contradictions``."""
    return not contradictions(answer, sentences) and support(answer, sentences, gram=2) >= REWORDING_SUPPORT


def is_grounded(answer: str, context: str, min_support: float = MIN_SUPPORT) -> bool:
    return not unsupported_numbers(answer, context) and support(answer, context) >= min_support


# --- contradictions -------------------------------------------------------------------------------------

_BUYER = r"(?:买家|顾客|客户|您|你|自己|自费|自付|个人)"
_SHOP = r"(?:小铺优选|我们|商家|店铺|卖家|本店|平台|我方)"
_PAYS = r"(?:来|全部|都|也|来回|需|需要|要)?(?:承担|出|付|支付|负责|报销|垫付)"
_PAYER_ZH = re.compile(rf"(?:由)?({_BUYER}|{_SHOP})(?:来|全部|都|也|需要|需|要)?{_PAYS}")
_SHOP_FREE = re.compile(r"免费(?:上门)?取件|包邮|免运费|运费全免|不用(?:您|你)?(?:出|付)")
_BUYER_EN = re.compile(
    r"\b(?:you|the customer|the buyer|customers?)\b(?:\s+\w+){0,2}\s+(?:pay|pays|cover|covers|bear|bears)\b"
    r"|at your (?:own )?(?:cost|expense)",
    re.I,
)
_SHOP_EN = re.compile(
    r"\b(?:we|the shop|us|the store)\b(?:\s+\w+){0,2}\s+(?:pay|pays|cover|covers|bear|bears)\b"
    r"|\bfree (?:pickup|pick-up|return|shipping)|at our (?:cost|expense)|on us\b|\bfree of charge",
    re.I,
)
_NEG_ZH = re.compile(
    r"(?:不再|不能|不可以|不可|不支持|不需要|无需|不用|无法|不会|没有|不|无)([\u4e00-\u9fff]{2})"
)
_NEG_EN = re.compile(
    r"\b(?:not|no|never|cannot|can't|won't|don't|doesn't|isn't|aren't)\s+(?:be\s+|a\s+|an\s+)?([a-z]{3,})",
    re.I,
)


def payers(text: str) -> set[str]:
    """Who the text says pays ("buyer" / "shop"), e.g. 「来回运费都由小铺优选承担」 → {"shop"}."""
    found = set()
    for who in _PAYER_ZH.findall(text):
        found.add("shop" if re.fullmatch(_SHOP, who) else "buyer")
    if _SHOP_FREE.search(text) or _SHOP_EN.search(text):
        found.add("shop")
    if _BUYER_EN.search(text):
        found.add("buyer")
    return found


def _negations(text: str) -> tuple[set[str], set[tuple[int, int]]]:
    """The words right after a negation (「不支持退货」 → 「支持」, "not eligible" → "eligible"), and where."""
    words: set[str] = set()
    spans: set[tuple[int, int]] = set()
    for pattern in (_NEG_ZH, _NEG_EN):
        for found in pattern.finditer(text):
            words.add(found.group(1).lower())
            spans.add(found.span(1))
    return words, spans


def _affirmed(text: str, words: set[str], negated_at: set[tuple[int, int]]) -> set[str]:
    """Those of ``words`` that occur in ``text`` somewhere not right after a negation."""
    return {
        word
        for word in words
        if any(m.span() not in negated_at for m in re.finditer(re.escape(word), text, re.I))
    }


def contradictions(answer: str, evidence: str, *, numbers: bool = True) -> list[str]:
    """What the answer states against the evidence (empty when nothing was caught), in words for the log.

    ``numbers=False`` leaves numbers out (checked against all the sources, not just this evidence)."""
    found = unsupported_numbers(answer, evidence) if numbers else []
    problems = [f"number {n} is not in the sources" for n in found]
    said, known = payers(answer), payers(evidence)
    for who in sorted(said - known):
        problems.append(
            f"says the {who} pays; the sources say {' or '.join(sorted(known)) or 'nothing of it'}"
        )
    negated_a, at_a = _negations(answer)
    negated_e, at_e = _negations(evidence)
    for word in sorted(_affirmed(evidence, negated_a - negated_e, at_e)):
        problems.append(f"negates 「{word}」, which the sources affirm")
    for word in sorted(_affirmed(answer, negated_e, at_a) - _affirmed(evidence, negated_e, at_e)):
        problems.append(f"affirms 「{word}」, which the sources negate")
    return problems
