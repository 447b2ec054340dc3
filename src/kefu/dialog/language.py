"""Which language the customer writes in: Chinese if the message has any CJK ideograph, else English."""

from __future__ import annotations

import re
from typing import Literal

Lang = Literal["zh", "en"]

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def detect_language(text: str) -> Lang:
    return "zh" if _CJK.search(text) else "en"
