"""Which language the customer writes in: Chinese if the message has any CJK ideograph, English if it
has an English word, else (digits, an order number such as XP1001, emoji) Chinese — the shop's first
language."""

from __future__ import annotations

import re
from typing import Literal

Lang = Literal["zh", "en"]

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"\b[A-Za-z]{2,}\b")  # a word, not the letters of an order number (XP1001)


def detect_language(text: str) -> Lang:
    if _CJK.search(text):
        return "zh"
    return "en" if _WORD.search(text) else "zh"
