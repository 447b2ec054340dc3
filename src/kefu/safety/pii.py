"""Reversible PII redaction: every customer message passes through ``redact_pii`` before it is
stored, logged, cached, embedded or sent to a model.

    >>> r = redact_pii("手机13800138000，再说一遍 138-0013-8000")
    >>> r.text
    '手机[手机号_1]，再说一遍 [手机号_1]'
    >>> restore(r.text, r.mapping) == "手机13800138000，再说一遍 13800138000"
    True

The model only ever sees placeholders such as ``[身份证号_1]``; ``Redaction.mapping``
(placeholder → the characters the customer typed) stays server-side, in a ``PiiVault``, for the
tools that need the real value. ``PiiEntity`` never holds the raw value, and ``Redaction``'s repr
leaves the mapping out, so neither leaks through a log line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from kefu.safety.pii_detect import LABELS, PiiType, find_pii
from kefu.safety.pii_text import normalize
from kefu.safety.validators import compact

_PLACEHOLDER = re.compile(r"\[([^\[\]\s_]{1,16})_([0-9]{1,6})\]")
PLACEHOLDER = _PLACEHOLDER  # what a redacted span looks like in text (search strips them from queries)
_TYPE_BY_LABEL = {label: pii_type for pii_type, label in LABELS.items()}


@dataclass(frozen=True, slots=True)
class PiiEntity:
    """One redacted span of the original text; ``placeholder`` is what replaced it."""

    type: PiiType
    start: int
    end: int
    placeholder: str


@dataclass(frozen=True)
class Redaction:
    text: str
    entities: list[PiiEntity]
    mapping: dict[str, str] = field(repr=False)


class PiiVault(Protocol):
    """Placeholder → raw value for one conversation, kept server-side (encrypted at rest in
    production). Redacting with a vault keeps placeholders stable across the conversation: the
    phone number given in turn 1 and again in turn 5 is ``[手机号_1]`` both times."""

    def known(self) -> Mapping[str, str]: ...

    def remember(self, mapping: Mapping[str, str]) -> None: ...


class MemoryPiiVault:
    """In-process ``PiiVault`` (tests, demos, single-process deployments without persistence)."""

    def __init__(self) -> None:
        self._mapping: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"MemoryPiiVault({len(self._mapping)} values)"

    def known(self) -> Mapping[str, str]:
        return dict(self._mapping)

    def remember(self, mapping: Mapping[str, str]) -> None:
        for placeholder, value in mapping.items():
            self._mapping.setdefault(placeholder, value)


def canonical_value(pii_type: PiiType, raw: str) -> str:
    """The value without formatting: what decides that two mentions are the same number."""
    text = normalize(raw).text
    if pii_type is PiiType.EMAIL:
        return text.lower()
    value = compact(text.replace("(", "").replace(")", ""))
    if pii_type is PiiType.MOBILE:
        return value[-11:]
    return value


class _Numbering:
    def __init__(self, known: Mapping[str, str], text: str) -> None:
        self._by_value: dict[tuple[PiiType, str], str] = {}
        self._last: dict[str, int] = {}
        for match in _PLACEHOLDER.finditer(text):
            self._see(match.group(1), int(match.group(2)))
        for placeholder, raw in known.items():
            seen = _PLACEHOLDER.fullmatch(placeholder)
            pii_type = _TYPE_BY_LABEL.get(seen.group(1)) if seen else None
            if seen and pii_type:
                self._see(seen.group(1), int(seen.group(2)))
                self._by_value.setdefault((pii_type, canonical_value(pii_type, raw)), placeholder)

    def _see(self, label: str, number: int) -> None:
        self._last[label] = max(self._last.get(label, 0), number)

    def placeholder(self, pii_type: PiiType, raw: str) -> str:
        key = (pii_type, canonical_value(pii_type, raw))
        if key not in self._by_value:
            label = LABELS[pii_type]
            self._last[label] = self._last.get(label, 0) + 1
            self._by_value[key] = f"[{label}_{self._last[label]}]"
        return self._by_value[key]


_Span = tuple[PiiType, int, int]
# Removing a value can free a neighbour that it was glued to ("a@b.co+11234567"): redaction is
# repeated on its own output until nothing new is found, so that redacting twice changes nothing.
_MAX_ROUNDS = 3


def _detect(text: str) -> list[_Span]:
    norm = normalize(text)
    return [(f.type, *norm.original_span(f.start, f.end)) for f in find_pii(norm.text)]


def _apply(text: str, spans: list[_Span], known: Mapping[str, str]) -> tuple[Redaction, list[int]]:
    """The redaction, and for each entity how much longer its placeholder is than its value."""
    numbering = _Numbering(known, text)
    pieces: list[str] = []
    entities: list[PiiEntity] = []
    mapping: dict[str, str] = {}
    growth: list[int] = []
    cursor = 0
    for pii_type, start, end in spans:
        raw = text[start:end]
        placeholder = numbering.placeholder(pii_type, raw)
        mapping.setdefault(placeholder, raw)
        entities.append(PiiEntity(pii_type, start, end, placeholder))
        growth.append(len(placeholder) - (end - start))
        pieces += [text[cursor:start], placeholder]
        cursor = end
    pieces.append(text[cursor:])
    return Redaction("".join(pieces), entities, mapping), growth


def _to_original(span: _Span, entities: list[PiiEntity], growth: list[int]) -> _Span:
    """A span found in the redacted text (never inside a placeholder) in original offsets."""
    pii_type, start, end = span
    shift = 0
    for entity, extra in zip(entities, growth, strict=True):
        if entity.start + shift >= start:
            break
        shift += extra
    return pii_type, start - shift, end - shift


def redact_pii(text: str, *, vault: PiiVault | None = None) -> Redaction:
    """``text`` with every detected identity number, phone, card, email, IBAN, passport number,
    SSN and IP address replaced by a numbered placeholder."""
    known = vault.known() if vault is not None else {}
    spans = _detect(text)
    redaction, growth = _apply(text, spans, known)
    for _ in range(_MAX_ROUNDS - 1):
        freed = _detect(redaction.text)
        if not freed:
            break
        spans = sorted(
            spans + [_to_original(s, redaction.entities, growth) for s in freed], key=lambda s: s[1]
        )
        redaction, growth = _apply(text, spans, known)
    if vault is not None and redaction.mapping:
        vault.remember({p: v for p, v in redaction.mapping.items() if p not in known})
    return redaction


def restore(text: str, mapping: Mapping[str, str]) -> str:
    """Put the raw values back (server-side tools only); unknown placeholders stay as they are."""
    return _PLACEHOLDER.sub(lambda m: mapping.get(m.group(0), m.group(0)), text)
