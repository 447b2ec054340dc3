"""Deterministic slot extraction: what a customer's message says about one slot, or ``None``.

No model is involved: order ids, phone last-4 digits, reasons, yes/no and what the customer says about
photos are read with patterns and word lists, so the same text always fills the same slots. A question is never read as a
yes or as free text (「要多久？」 is not 「要」, 「运费谁出？」 is not an address).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from kefu.flows.questions import is_question

ORDER_ID = re.compile(r"(?<![A-Za-z0-9])XP\d{4,}(?!\d)", re.IGNORECASE)

_FOUR_DIGITS = re.compile(r"(?<!\d)(\d{4})(?!\d)")
_PHONE_CUE = re.compile(
    r"(尾号|后四位|后4位|末四位|末4位|手机|电话|last\s*(4|four)|phone|ending)", re.IGNORECASE
)

REASONS: dict[str, tuple[str, ...]] = {
    "quality": (
        "质量问题", "质量有问题", "质量不好", "坏了", "坏的", "有瑕疵", "瑕疵", "破损", "损坏", "故障",
        "没声音", "无声", "不能用", "用不了", "充不进电", "开线", "脱色", "发错", "quality", "broken",
        "defect", "damaged", "faulty", "doesn't work", "does not work", "not working",
    ),
    "no_reason": (
        "不想要了", "不想要", "不要了", "不喜欢", "不合适", "拍错", "买错", "尺码不对", "大了", "小了",
        "改变主意", "no reason", "changed my mind", "don't want", "do not want", "don't like",
        "dont like", "doesn't fit", "does not fit", "wrong size",
    ),
}  # fmt: skip

_NO = re.compile(
    r"^\s*(?:不是|不要|不用|不行|不对|不确认|不需要|否|没有|不|(?:no|nope|nah|not now|don't|do not)\b)",
    re.IGNORECASE,
)
_YES = re.compile(
    r"^\s*(?:是的|是|对的|对|好的|好|可以|确认|确定|嗯嗯|行|没问题|需要|要|(?:yes|yeah|yep|y|ok|okay|sure|confirm)\b)",
    re.IGNORECASE,
)

_NO_PHOTOS = re.compile(
    r"(没有(照片|图片|视频)|没拍|拍不了|不想拍|没法拍|no (photos?|pictures?|videos?)|can't take|cannot take"
    r"|^\s*(没有|没|no|nope)\s*[。.!！~]*$)",
    re.IGNORECASE,
)
# The customer says they have photos (「已上传」「拍了」「有」, a file name): a claim, never evidence.
_HAS_PHOTOS = re.compile(
    r"(已上传|上传了|传了|已发|发了|发过|已经发|附上|附了|已附|拍了|拍好了|有(照片|图片|视频|图)"
    r"|\[(图片|视频|image|photo|video)[^\]]*\]|upload://|\.(jpe?g|png|gif|webp|heic|mp4|mov)\b"
    r"|attached|uploaded|i have (a |the |some )?(photo|picture|video)s?|sent (the )?(photo|picture|video)s?"
    r"|^\s*(有|有的|有啊|yes|yep|i do)\s*[。.!！~]*$)",
    re.IGNORECASE,
)
SAYS_HAS_PHOTOS = "customer-says-has-photos"


def order_id(text: str) -> str | None:
    found = ORDER_ID.search(text)
    return found.group(0).upper() if found else None


def standalone_four_digits(text: str) -> list[str]:
    """Every group of exactly four digits in ``text`` that is not part of an order id."""
    return list(_FOUR_DIGITS.findall(ORDER_ID.sub(" ", text)))


def phone_last4(text: str, *, need_cue: bool = False) -> str | None:
    """Four digits standing alone (not part of an order id); with ``need_cue`` only after a word such
    as 尾号 / last 4, so an address like 文一西路1888号 is never read as a phone number."""
    if need_cue and not _PHONE_CUE.search(ORDER_ID.sub(" ", text)):
        return None
    found = standalone_four_digits(text)
    return found[-1] if len(found) == 1 or (found and need_cue) else None


def reason(text: str) -> str | None:
    return choice(text, REASONS)


def choice(text: str, choices: Mapping[str, Sequence[str]]) -> str | None:
    """The choice whose value or synonym occurs earliest in the text (ties: the longer word)."""
    lowered = text.lower()
    best: tuple[int, int, str] | None = None
    for value, words in choices.items():
        for word in (value, *words):
            at = lowered.find(word.lower())
            if at >= 0 and (best is None or (at, -len(word)) < (best[0], best[1])):
                best = (at, -len(word), value)
    return best[2] if best else None


def yes_no(text: str) -> bool | None:
    if is_question(text):
        return None
    if _NO.match(text):
        return False
    if _YES.match(text):
        return True
    return None


def photos(text: str) -> list[str] | None:
    """What the customer says about photos: ``[]`` none, ``[SAYS_HAS_PHOTOS]`` they have some (「已上传」,
    「有」, a file name), ``None`` nothing. Never evidence: the chat carries no pictures yet, so anything
    typed is a claim, and a person checks the photos (the return flow hands over for that)."""
    if _NO_PHOTOS.search(text):
        return []
    return [SAYS_HAS_PHOTOS] if _HAS_PHOTOS.search(text) else None


def free_text(text: str, *, min_length: int = 1) -> str | None:
    """The text itself — unless it is a question without a single digit (「运费谁出？」 is no address, while
    「北京市朝阳区建国路88号，可以吗？」 is one)."""
    cleaned = text.strip()
    if _ADDRESS_PLACEHOLDER.search(cleaned):  # redacted: a whole street address, kept in the vault
        return cleaned
    if len(cleaned) < min_length or (is_question(cleaned) and not any(c.isdigit() for c in cleaned)):
        return None
    return cleaned


_ADDRESS_PLACEHOLDER = re.compile(r"\[地址_[0-9]+\]")


def pattern(text: str, regex: re.Pattern[str]) -> str | None:
    found = regex.search(text)
    return found.group(0).upper() if found else None


def extract(validator: str, text: str, options: Mapping[str, Any], *, opportunistic: bool = False) -> Any:
    """The slot value for ``validator`` read from ``text``, or ``None`` when it is not there."""
    if validator == "order_id":
        return order_id(text)
    if validator == "phone_last4":
        return phone_last4(text, need_cue=opportunistic)
    if validator == "reason":
        return reason(text)
    if validator == "choice":
        return choice(text, options["choices"])
    if validator == "yes_no":
        return yes_no(text)
    if validator == "photos":
        return photos(text)
    if validator == "pattern":
        return pattern(text, options["regex"])
    if validator == "text":
        return free_text(text, min_length=int(options.get("min_length", 1)))
    raise ValueError(f"unknown validator {validator!r}")


VALIDATORS = frozenset({"order_id", "phone_last4", "reason", "choice", "yes_no", "photos", "pattern", "text"})
# Read from any message (not only the answer to their own question): safe to pick up in passing.
OPPORTUNISTIC = frozenset({"order_id", "phone_last4", "reason", "choice", "photos"})
