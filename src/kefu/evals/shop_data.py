"""The demo shop's answer-quality questions (``shop_questions.yaml``) and the strict fact matcher.

Each question lists the facts a correct reply must contain (``must``: every group, any alternative of a
group) and the claims it must not make (``must_not``: any one makes the reply wrong). Matching ignores
spaces, case, full/half-width forms and dash styles; a fact preceded by a negation (「不」「无」「未」…,
"not", "n't", "never") does not count, so 「不支持货到付款」 never matches 「支持货到付款」 — except a
figure (a fact starting with a digit or ¥/$: 「不满 69 元」 still states 69); a fact that starts or ends
with a digit only matches whole numbers (「20元」 is not in 「120元」). An entry written
``re:<pattern>`` is a regular expression over the normalised reply (no negation check).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from kefu.errors import InvalidInput

Expect = Literal["answer", "decline", "flow"]
Outcome = Literal["right", "decline", "wrong", "incomplete"]
OUTCOMES: tuple[Outcome, ...] = ("right", "decline", "wrong", "incomplete")
EXPECTS = ("answer", "decline", "flow")
SPLITS = ("dev", "test")
LANGS = ("zh", "en")
_FIELDS = {"id", "split", "lang", "q", "expect", "must", "must_not", "previous", "tags", "note"}

# A reply that declines honestly or offers a person (normalised: lower case, no spaces).
DECLINE_MARKERS = (
    "人工客服",
    "转接人工",
    "转人工",
    "没有找到",
    "没找到",
    "没有相关",
    "无法回答",
    "超出了",
    "不想给您不准确",
    "建议咨询",
    "请咨询",
    "humanagent",
    "couldnotfind",
    "couldn'tfind",
    "cannotfind",
    "can'tfind",
    "cannothelp",
    "can'thelp",
    "unabletohelp",
    "notabletohelp",
    "outsidewhat",
    "can'tgive",
    "cannotgive",
    "can'tadvise",
    "cannotadvise",
)
# Fixed replies that answer nothing (「没有找到可靠的答案」, a scope refusal): never a right answer, whatever
# words of theirs an alternative may match ("I don't want to guess" is not "we don't accept cash").
TEMPLATE_DECLINES = frozenset({"no_answer", "refused", "agent_pending"})
DECLINE_KINDS = frozenset({"no_answer", "refused", "handoff", "ticket", "fallback", "agent_pending"})
_NEGATORS_ZH = "不没无未非别勿"
_NEGATORS_EN = ("not", "n't", "never", "no")
_DASHES = str.maketrans({c: "-" for c in "–—―‐‑−－~〜～"})
_DROP = re.compile(r"[\s「」『』“”\"'‘’`*]+")
_QUESTION = re.compile(r"[^。.!！;；?]*\?")  # a sentence ending in a question mark (after NFKC)


@dataclass(frozen=True)
class ShopQuestion:
    id: str
    split: str
    lang: str
    q: str
    expect: Expect
    must: list[list[str]] = field(default_factory=list)
    must_not: list[str] = field(default_factory=list)
    previous: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    note: str = ""


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    missing: list[list[str]]  # the must groups not found
    forbidden: list[str]  # the must_not entries found
    declined: bool
    flow_started: bool | None = None  # flow questions only


def normalise(text: str) -> str:
    """NFKC (full-width → half-width), lower case, one dash style, no spaces or quote marks."""
    folded = unicodedata.normalize("NFKC", text).lower().translate(_DASHES).replace("’", "'")
    return _DROP.sub("", folded.replace("n’t", "n't"))


def contains(text: str, fact: str) -> bool:
    """Whether the normalised ``text`` states ``fact`` (see the module docstring for the rules)."""
    if fact.startswith("re:"):
        return re.search(fact[3:], text) is not None
    needle = normalise(fact)
    if not needle:
        return False
    start = text.find(needle)
    while start >= 0:
        if _whole_number(text, start, needle) and (_is_amount(needle) or not _negated(text[:start])):
            return True
        start = text.find(needle, start + 1)
    return False


def _whole_number(text: str, start: int, needle: str) -> bool:
    end = start + len(needle)
    before_ok = not (needle[0].isdigit() and start > 0 and text[start - 1].isdigit())
    after_ok = not (needle[-1].isdigit() and end < len(text) and text[end].isdigit())
    return before_ok and after_ok


def _is_amount(needle: str) -> bool:
    """A number or amount is a figure, not a claim: 「不满 69 元」 still states 69."""
    return needle[0].isdigit() or needle[0] in "¥$"


def _negated(before: str) -> bool:
    window = before[-2:]
    if any(ch in _NEGATORS_ZH for ch in window):
        return True
    tail = before[-8:]
    return any(word in tail for word in _NEGATORS_EN[:3]) or before.endswith(_NEGATORS_EN[3])


def is_decline(reply: str, answer_kind: str) -> bool:
    """An honest "not covered / not something I can advise on" reply, or the offer of a person."""
    text = normalise(reply)
    return answer_kind in DECLINE_KINDS or any(marker in text for marker in DECLINE_MARKERS)


def statements(reply: str) -> str:
    """The normalised reply without its questions: 「能用 Visa 付款吗？」 states nothing."""
    return _QUESTION.sub("", normalise(reply))


def judge(question: ShopQuestion, reply: str, answer_kind: str) -> Verdict:
    """Classify one reply: any ``must_not`` → wrong; then right / decline / incomplete by ``expect``.
    Claims and facts are looked for in the reply's statements, not in the questions it asks or repeats —
    except what a flow must ask for (「请问订单号是？」 is the fact there)."""
    text = statements(reply)
    asked = normalise(reply) if question.expect == "flow" else text
    forbidden = [fact for fact in question.must_not if contains(text, fact)]
    missing = [group for group in question.must if not any(contains(asked, alt) for alt in group)]
    declined = is_decline(reply, answer_kind)
    if question.expect == "flow":
        # a flow that ends by handing over (「…不能退，已为您转接人工客服」) still handled the turn
        started = answer_kind == "flow" or (
            answer_kind in ("handoff", "ticket") and bool(question.must) and not missing
        )
        outcome: Outcome = "wrong" if forbidden else "right" if started and not missing else "incomplete"
        if outcome == "incomplete" and declined:
            outcome = "decline"
        return Verdict(outcome, missing, forbidden, declined, flow_started=started)
    if forbidden:
        return Verdict("wrong", missing, forbidden, declined)
    if question.expect == "decline":
        return Verdict("right" if declined and not missing else "incomplete", missing, forbidden, declined)
    if not missing and answer_kind not in TEMPLATE_DECLINES:
        return Verdict("right", missing, forbidden, declined)
    return Verdict("decline" if declined else "incomplete", missing, forbidden, declined)


DEFAULT_QUESTIONS = "shop_questions.yaml"


def load_questions(path: Path | None = None) -> list[ShopQuestion]:
    """The question set, validated; a bad entry raises ``InvalidInput`` naming the item and the fix."""
    if path is None:
        text = resources.files("kefu.evals").joinpath(DEFAULT_QUESTIONS).read_text(encoding="utf-8")
        where = f"kefu/evals/{DEFAULT_QUESTIONS}"
    else:
        text, where = path.read_text(encoding="utf-8"), str(path)
    raw = yaml.safe_load(text)
    if not isinstance(raw, list):
        raise InvalidInput(f"{where}: expected a YAML list of questions, got {type(raw).__name__}")
    items = [_question(entry, f"{where} item {n}") for n, entry in enumerate(raw, start=1)]
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise InvalidInput(f"{where}: id {item.id!r} is used twice — give every question its own id")
        seen.add(item.id)
    return items


def _question(entry: Any, where: str) -> ShopQuestion:
    if not isinstance(entry, dict):
        raise InvalidInput(f"{where}: expected a mapping with id, split, lang, q, expect, must, must_not")
    where = f"{where} ({entry.get('id', 'no id')})"
    unknown = set(entry) - _FIELDS
    if unknown:
        raise InvalidInput(f"{where}: unknown field(s) {sorted(unknown)}; allowed: {sorted(_FIELDS)}")
    for name, allowed in (("split", SPLITS), ("lang", LANGS), ("expect", EXPECTS)):
        if entry.get(name) not in allowed:
            raise InvalidInput(f"{where}: {name} is {entry.get(name)!r}; use one of {', '.join(allowed)}")
    if not isinstance(entry.get("id"), str) or not isinstance(entry.get("q"), str) or not entry["q"].strip():
        raise InvalidInput(f"{where}: id and q must be non-empty strings")
    must = entry.get("must") or []
    if not isinstance(must, list) or not all(_strings(group) and group for group in must):
        raise InvalidInput(
            f"{where}: must is a list of non-empty lists of alternatives, e.g. [[8元, 8 yuan]]"
        )
    must_not = _flatten(entry.get("must_not") or [])  # a YAML alias of a shared list may sit inside
    previous = entry.get("previous") or []
    tags = entry.get("tags") or []
    for name, value in (("must_not", must_not), ("previous", previous), ("tags", tags)):
        if not _strings(value):
            raise InvalidInput(f"{where}: {name} must be a list of strings")
    if entry["expect"] == "answer" and not must:
        raise InvalidInput(f"{where}: an answer question needs the facts a correct reply contains (must)")
    if not must and not must_not:
        raise InvalidInput(f"{where}: list the facts: must and/or must_not")
    return ShopQuestion(
        id=entry["id"],
        split=entry["split"],
        lang=entry["lang"],
        q=entry["q"],
        expect=entry["expect"],
        must=[list(group) for group in must],
        must_not=list(must_not),
        previous=list(previous),
        tags=list(tags),
        note=str(entry.get("note") or ""),
    )


def _flatten(value: Any) -> Any:
    if not isinstance(value, list):
        return value
    return [v for item in value for v in (item if isinstance(item, list) else [item])]


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value)
