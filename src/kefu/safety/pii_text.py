"""A normalised copy of a message, with a map back to the original's offsets.

Detectors run on the copy, where full-width and other Unicode digits are ASCII, every kind of
space is " ", every dash is "-" and zero-width characters are gone; the offset map turns a span of
the copy back into the span of the original that it came from, so a placeholder replaces exactly
the characters the customer typed (zero-width joiners inside the number included).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

# Invisible characters people (or copy-paste from apps) leave inside numbers.
_INVISIBLE = frozenset(
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b\u200c\u200d\u200e\u200f"
    "\u202a\u202b\u202c\u202d\u202e\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069"
    "\u3164\ufeff\uffa0"
)
_FULLWIDTH_START, _FULLWIDTH_END, _FULLWIDTH_SHIFT = 0xFF01, 0xFF5E, 0xFEE0


def _fold(ch: str) -> str:
    """One character of the copy for one character of the original ("" drops it)."""
    if ch.isascii():
        return ch
    if ch in _INVISIBLE:
        return ""
    code = ord(ch)
    if _FULLWIDTH_START <= code <= _FULLWIDTH_END:
        return chr(code - _FULLWIDTH_SHIFT)
    digit = unicodedata.decimal(ch, None)
    if digit is not None:
        return str(digit)
    category = unicodedata.category(ch)
    if category == "Zs":
        return " "
    if category == "Pd" or ch == "\u2212":
        return "-"
    return ch


@dataclass(frozen=True, slots=True)
class NormalizedText:
    """``text`` is the copy; ``origin[i]`` is the index in the original of ``text[i]``."""

    text: str
    origin: tuple[int, ...]

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """The span of the original covered by ``text[start:end]`` (``end > start``)."""
        return self.origin[start], self.origin[end - 1] + 1


def normalize(original: str) -> NormalizedText:
    chars: list[str] = []
    origin: list[int] = []
    for index, ch in enumerate(original):
        folded = _fold(ch)
        if folded:
            chars.append(folded)
            origin.append(index)
    return NormalizedText("".join(chars), tuple(origin))
