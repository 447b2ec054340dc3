"""What the answer cache compares: a question's normalised text, and the facts a paraphrase must keep.

    normalise("  运费多少？ ") == normalise("运费多少")      # the exact tier's key
    same_numbers("收到10天还能退吗", "收到20天还能退吗") is False   # never the same answer

The semantic tier serves a cached answer to a question whose embedding is close enough; two questions
that differ only in a number (days, amounts, order counts) embed almost identically but can need
different answers, so they must name the same numbers. ``kefu eval cache`` measures with the same rule.
"""

from __future__ import annotations

import re
import unicodedata

# trailing punctuation and particles of tone that do not change the question
_TRAILING = re.compile(r"[\s?!.,;:~…。？！，、；：～]+$")
_SPACES = re.compile(r"\s+")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_PLACEHOLDER = re.compile(r"\[[^\[\]\s_]{1,16}_[0-9]{1,6}\]")  # safety/pii's placeholders: [手机号_1]


def normalise(question: str) -> str:
    """NFKC, case-folded, runs of white space as one space, trailing punctuation dropped."""
    text = unicodedata.normalize("NFKC", question).casefold().strip()
    return _SPACES.sub(" ", _TRAILING.sub("", text))


def numbers(question: str) -> list[str]:
    """The numbers a question names in digits, in order (full-width digits too). Chinese numerals are
    left alone: 「一」 is in 「一下」「一般」 far more often than it is a count."""
    return _NUMBER.findall(unicodedata.normalize("NFKC", question))


def same_numbers(a: str, b: str) -> bool:
    return sorted(numbers(a)) == sorted(numbers(b))


def has_placeholder(question: str) -> bool:
    """A redacted question (「[手机号_1] 的订单到哪了」) is about someone's own data: never cached."""
    return bool(_PLACEHOLDER.search(question))
