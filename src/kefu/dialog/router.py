"""Route a customer message. This first version separates small talk from knowledge questions;
order status, return flows and human handoff are added as their own routes."""

from __future__ import annotations

import re
from typing import Literal

Route = Literal["greeting", "thanks", "knowledge"]

_GREETING = re.compile(
    r"^\s*(你好|您好|在吗|在不在|哈喽|嗨|hello|hi|hey|good (morning|afternoon|evening))[\s!！。.,，~～?？呀啊呢]*$",
    re.IGNORECASE,
)
_THANKS = re.compile(
    r"^\s*(谢谢|多谢|感谢|好的谢谢|ok谢谢|thanks|thank you|thx)[\s!！。.,，~～了啊呀你您]*$",
    re.IGNORECASE,
)


def route(text: str) -> Route:
    if _GREETING.match(text):
        return "greeting"
    if _THANKS.match(text):
        return "thanks"
    return "knowledge"
