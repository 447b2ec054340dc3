"""Policy questions answered by the flows' own rules: 「收到10天了还能退吗」, "Can I return after 10 days?".

A question that names a number of days since delivery and asks about a return or an exchange is not
left to retrieval or a model: the return flow's ``policy`` decision (the same YAML branches that decide
a real return, ``flows/demo/return_exchange.yaml``) is evaluated on the hypothetical facts — the days,
and the reason when the customer gave one (a quality problem or not) — and the verdict is written from
fixed sentences in the customer's language. When the reason is unknown, both verdicts are given.

The verdict of a branch is read from the step it leads to: a call (the return is created) → allowed; an
ask for photos → allowed with evidence; a handoff for "no reason after 7 days" → refused; a handoff for
"over 15 days" → over. A flow whose policy step does not have that shape gives no policy answers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from kefu.dialog.extractive import cases
from kefu.dialog.language import Lang
from kefu.flows.spec import Ask, Call, Decide, End, FlowSpec, Handoff

Verdict = Literal["yes", "evidence", "no", "over"]
Reason = Literal["quality", "other"]

_CN_DIGITS = {
    "零": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_SPANS = {
    "半个月": 15,
    "一个月": 30,
    "两个月": 60,
    "半年": 182,
    "一年": 365,
    "一周": 7,
    "一个星期": 7,
    "一个礼拜": 7,
    "一星期": 7,
    "两周": 14,
    "两个星期": 14,
    "三周": 21,
}
_EN_NUMBERS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "twenty": 20,
    "thirty": 30,
}
_EN_UNITS = {"day": 1, "days": 1, "week": 7, "weeks": 7, "month": 30, "months": 30}

_ZH_DAYS = re.compile(r"(?:第\s*)?(\d{1,3}|[零一二两三四五六七八九十]{1,3})\s*(?:天|日)(?!无理由|之?内)")
_ZH_SPAN = re.compile("|".join(_SPANS))
_EN_DAYS = re.compile(
    r"\b(\d{1,3}|" + "|".join(_EN_NUMBERS) + r")\s+(days?|weeks?|months?)\b(?!\s+(?:no|without)\b)", re.I
)
_RETURN = re.compile(
    r"退货|退款|退掉|退了|能退|可以退|还退|退吗|退不退|退回|\breturn|\brefund|send (?:it )?back", re.I
)
_EXCHANGE = re.compile(r"换货|换吗|能换|可以换|换尺码|换颜色|换个|换一个|换码|\bexchange|\bswap", re.I)
_ACT = {
    "zh": {"return": "退货", "exchange": "换货"},
    "en": {"return": "return it", "exchange": "exchange it"},
}
_TEXT = {
    "zh": {
        "yes": "签收后第 {days} 天还在 7 天无理由退换期内（从签收次日算起），可以申请{act}，不需要说明理由；"
        "商品需保持完好、无使用痕迹，包装、配件齐全。",
        "evidence": "签收后第 {days} 天：如果是质量问题，可以申请{act}，需要能清楚显示问题的照片或视频作为凭证（由人工客服查看）。",
        "no": "签收后第 {days} 天已超过 7 天无理由退换期：第 8–15 天只有质量问题才能{act}，"
        "不喜欢、不合适等非质量问题不能再{act}了。",
        "over": "签收已 {days} 天，超过 15 天不再办理{act}；质量问题在保修期内可以申请免费维修，维修不了的换同款新品。",
        "offer": "需要办理的话，告诉我「我要{act}」，我来帮您提交。",
    },
    "en": {
        "yes": "Day {days} after delivery is still within the 7-day no-reason window (counted from the day "
        "after you signed for it), so you can {act} without giving a reason, as long as the item is unused "
        "and complete with its packaging and accessories.",
        "evidence": "On day {days} after delivery, a quality problem still qualifies: you can {act}, with a "
        "photo or video that clearly shows the problem as evidence (a member of staff checks it).",
        "no": "Day {days} is past the 7-day no-reason window: from day 8 to day 15 only a quality problem "
        "qualifies, so if there is none (you don't like it, it doesn't fit) you can no longer {act}.",
        "over": "After {days} days — more than 15 days since delivery — you can no longer {act}; a quality "
        "problem within the warranty is repaired free, or replaced with the same model if it can't be "
        "repaired.",
        "offer": "If you'd like to go ahead, say \"I want to {act}\" and I'll start it for you.",
    },
}
_OFFER_ACT = {
    "zh": {"return": "退货", "exchange": "换货"},
    "en": {"return": "return", "exchange": "exchange"},
}
# What to search for the help-centre text that states each verdict's rule (cited with the answer).
SUPPORT_QUERY = {
    "yes": "7 天无理由退货 适用条件 签收后 7 天内",
    "evidence": "签收后第 8–15 天 只有质量问题才能退货 需要提供照片或视频",
    "no": "签收后第 8–15 天 非质量问题 第 8 天起不再支持退货",
    "over": "签收超过 15 天 不再办理退货 质量问题转保修",
}


@dataclass(frozen=True)
class PolicyAnswer:
    parts: tuple[str, ...]  # one sentence per verdict, in the order of ``verdicts``
    offer: str  # the offer to start the flow ("" when nothing can be started)
    lang: Lang
    days: int
    action: Literal["return", "exchange"]
    reason: Reason | None  # None: the customer did not say, so both verdicts were given
    verdicts: tuple[Verdict, ...]  # the verdicts stated, in the order of the text

    @property
    def support_queries(self) -> list[str]:
        return [SUPPORT_QUERY[v] for v in self.verdicts]

    def text(self, citations: list[str] | None = None) -> str:
        """The answer; ``citations[i]`` (e.g. "[1]") follows the sentence of verdict i."""
        marks = citations or [""] * len(self.parts)
        joiner = "" if self.lang == "zh" else " "
        sentences = [part + mark for part, mark in zip(self.parts, marks, strict=True)]
        return joiner.join([*sentences, self.offer] if self.offer else sentences)


@dataclass(frozen=True)
class ReturnPolicy:
    """The return flow's ``policy`` decision, evaluated on hypothetical facts."""

    decide: Decide
    verdict_of: Mapping[str, Verdict]  # step name → verdict

    @classmethod
    def from_flows(cls, specs: Mapping[str, FlowSpec]) -> ReturnPolicy | None:
        for spec in specs.values():
            step = spec.steps.get("policy")
            if not isinstance(step, Decide):
                continue
            if not any("days_since_delivery" in c.path for b in step.branches for c in b.when):
                continue
            targets = [b.goto for b in step.branches] + [step.otherwise]
            verdicts = {name: _verdict(spec, name) for name in targets}
            if all(v is not None for v in verdicts.values()):
                return cls(step, {k: v for k, v in verdicts.items() if v is not None})
        return None

    def verdict(self, days: int, reason: Reason) -> Verdict:
        context = {
            "slots": {"reason": reason},  # no photos yet: the customer is asking, not applying
            "facts": {"days_since_delivery": days, "has_photos": False},
            "order": {"status": "delivered"},
            "result": {},
        }
        for branch in self.decide.branches:
            if all(c.holds(context) for c in branch.when):
                return self.verdict_of[branch.goto]
        return self.verdict_of[self.decide.otherwise]

    def answer(self, question: str, lang: Lang) -> PolicyAnswer | None:
        """The policy answer to a days-since-delivery question about a return or exchange, else None."""
        days = days_mentioned(question)
        if days is None:
            return None
        if _EXCHANGE.search(question):
            action: Literal["return", "exchange"] = "exchange"
        elif _RETURN.search(question):
            action = "return"
        else:
            return None
        reason = reason_given(question)
        reasons: list[Reason] = [reason] if reason else ["quality", "other"]
        verdicts: list[Verdict] = []
        for r in reasons:
            v = self.verdict(days, r)
            if v not in verdicts:
                verdicts.append(v)
        texts = _TEXT[lang]
        act = _ACT[lang][action]
        parts = tuple(texts[v].format(days=days, act=act) for v in verdicts)
        startable = any(v in ("yes", "evidence") for v in verdicts)
        offer = texts["offer"].format(act=_OFFER_ACT[lang][action]) if startable else ""
        return PolicyAnswer(parts, offer, lang, days, action, reason, tuple(verdicts))


def _verdict(spec: FlowSpec, name: str) -> Verdict | None:
    step = spec.steps.get(name)
    if isinstance(step, Call):
        return "yes"
    if isinstance(step, Ask) and step.slot == "photos":
        return "evidence"
    if isinstance(step, End) and step.result == "photos_required":
        return "evidence"
    if isinstance(step, Handoff):
        if "evidence" in step.reason:  # a person checks the photos (the chat carries none yet)
            return "evidence"
        if "over" in step.reason:
            return "over"
        if "no_reason" in step.reason:
            return "no"
    return None


def days_mentioned(text: str) -> int | None:
    """The number of days since delivery a question names (「收到10天了」「半个月」"after two weeks"), or None.
    Past a number is the day after it: 「过了七天」「7天以后」「一个多月」"more than 7 days" → 8, 8, 31, 8."""
    for span, days in _SPANS.items():
        at = text.find(span)
        if at >= 0:
            return days + _past(text[:at], text[at + len(span) :])
        many = text.find(span.replace("个", "个多", 1)) if "个" in span else -1
        if many >= 0:
            return days + 1
    found = _ZH_DAYS.search(text)
    if found:
        return _number(found.group(1)) + _past(text[: found.start()], text[found.end() :])
    english = _EN_DAYS.search(text)
    if english:
        count = english.group(1).lower()
        value = int(count) if count.isdigit() else _EN_NUMBERS[count]
        return value * _EN_UNITS[english.group(2).lower()] + _past(text[: english.start()], "")
    return None


def _past(before: str, after: str) -> int:
    """1 when the words around a number of days say "past it" (过了/超过/以后/多, more than/over)."""
    before = before.rstrip().lower()
    if before.endswith(("过了", "超过", "超过了", "超了", "过", "多于", "more than", "over", "past")):
        return 1
    return 1 if after.lstrip().startswith(("以后", "之后", "后", "多", "以上", "开外")) else 0


def reason_given(text: str) -> Reason | None:
    """A quality problem (「坏了」「没声音」), the customer's own reason (「不合适」), or None (not said)."""
    found = cases(text)
    if "quality" in found:
        return "quality"
    return "other" if "own_reason" in found else None


def _number(text: str) -> int:
    if text.isdigit():
        return int(text)
    if text == "十":
        return 10
    if text.startswith("十"):
        return 10 + _CN_DIGITS[text[1]]
    if "十" in text:
        tens, _, ones = text.partition("十")
        return _CN_DIGITS[tens] * 10 + (_CN_DIGITS[ones] if ones else 0)
    return _CN_DIGITS.get(text, 0)
