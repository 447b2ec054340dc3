"""Personal names in English (Latin-script) text.

    "Hi, I'm Sarah Johnson" · "Dear Mr. Leiva" · "add Samir Jelenovič as guardian" · "Thanks, Anna"

Two ways in. A cue ("my name is", "name:", "called", "Mr."/"Dr.", "I'm", "this is", "Hi"/"Dear",
a sign-off "Thanks,") takes the name that follows, even in lower case after the strong cues. Without
a cue, a run of capitalised words is a name when it holds a census name that is not an ordinary
word (``pii_en_lexicon``) and no ordinary word: "Krisztián Szöllösy" (two words no dictionary has)
or "James Sparks" (a first name, then a name) are names; "Apple Watch", "Will it ship",
"May I", "Western Union" and "United Kingdom" are not. A single capitalised word is a name only when
it is a census first name, or a census surname inside a sentence (never at its start).

Measured on presidio's dev half and 2,000 Banking77 dev messages and left out: ``probablepeople``
(a CRF name *parser*: it reads any capitalised run as a name — R 0.874, P 0.208, 1,352 of 2,000
bank questions masked) and a single capitalised word no dictionary lists (R +0.05, P 0.76 -> 0.42:
Mastercard, Netflix, Top-up). Known misses: a lone name no census lists and no cue introduces
("Priya can see it"), lower-case names without a cue, names that are brands or countries.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from kefu.safety.pii_en_lexicon import (
    ends_name,
    is_census_name,
    is_common,
    is_country,
    is_first_name,
    is_surname,
    is_word,
    listed,
    lowercase_words,
)

_WORD = r"[^\W\d_]+(?:['’\-][^\W\d_]+)*"
_TOKEN = re.compile(_WORD)
_INITIAL = re.compile(r"[A-Z]\.?")
_SUFFIX = frozenset({"II", "III", "IV", "Jr", "Sr", "Jr.", "Sr."})
_POSSESSIVE = re.compile(r"['’]s$")
_STRONG_CUE = re.compile(
    r"\b(?:my\s+(?:full\s+|first\s+|last\s+|maiden\s+)?name\s+is|my\s+name's|name\s*:|"
    r"(?:first|last|full|maiden)\s+name\s+is|called|named|signed|"
    r"(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Madam)\.?)\s+",
    re.IGNORECASE,
)
# A Latin-script name after a Chinese cue: 「收件人：Will Smith」「我叫Mark Chen」.
_ZH_CUE = re.compile(
    r"(?:我叫|名叫|我的名字是|名字是|名字叫|收件人|收货人|联系人|寄件人|签收人|持卡人|姓名|户名)"
    r"(?:是|为|叫)?[:：]?[ ]*(?=[A-Za-z])"
)
_WEAK_CUE = re.compile(
    r"(?:\b(?:I\s+am|I'm|I’m|this\s+is|it's|it\s+is|[Hh]i|[Hh]ello|[Hh]ey|[Dd]ear|[Tt]hanks|[Tt]hank\s+you|"
    r"[Rr]egards|[Cc]heers|[Bb]est|[Ss]incerely|[Cc]ontact|[Aa]sk\s+for|[Ss]peak\s+to)[,:]?\s+)"
)
# Lower-case words that follow "my name is" without being a name.
_NOT_AFTER_CUE = frozenset(
    """on in at is was not the a an and or but for to of as wrong misspelled spelt spelled missing
    different incorrect correct right still also""".split()  # noqa: SIM905
)
_MAX_WORDS = 5
# Words that open a sentence after "Hi," without being a name: "Hi, My card…", "Hello, Just now…".
_FUNCTION_WORDS = frozenset(
    """my in just the a an i we you it this that can could please thanks thank so and but or is are was
    not no yes ok okay also if when what why how where do does did have has had will would should am on
    at for to of with from as by our your their there here some any all one me us back still now only
    really very too already currently trying having going getting looking new sure fine glad happy
    sorry unable""".split()  # noqa: SIM905
)
_CONTRACTION = re.compile(r"['’](?:m|ve|d|ll|re|t)$", re.IGNORECASE)
# A run next to one of these is a company or a street, not a person ("Shepherd Ltd", "Gordon Terrace").
_ORG_WORDS = frozenset(
    """Inc Ltd LLC LLP Corp Corporation Co Company Group Partners Associates Technologies Investments
    Holdings Bank Capital Insurance Solutions Systems Services Foundation University College School
    Hospital Hotel Airlines Airport Orchestra""".split()  # noqa: SIM905
)
_STREET_WORDS = frozenset(
    """Street St Str Road Rd Avenue Ave Lane Ln Drive Dr Way Court Ct Place Pl Square Sq Terrace Close
    Gateway Boulevard Blvd Parkway Highway Crossroad Hill Park Mall Loop Bypass Route Point Pass Harbor
    Turnpike Strasse Straße Gasse Weg Platz Allee Rue Avenida Rua Via Calle Box Suite Apt Unit""".split()  # noqa: SIM905
)
_UNITS = frozenset({"Box", "Suite", "Apt", "Unit"})
_NOT_PERSON_NEXT = _ORG_WORDS | _STREET_WORDS
# Name particles, kept inside a name when a capitalised word follows: "Veronica van der Voet".
_PARTICLES = frozenset(
    "van der den de da di du von le la del della dos das do bin ibn al ter ten af zu "  # noqa: SIM905
    "Van Der Den De Da Di Du Von Le La Del Della Dos Das Do Bin Ibn Al Ter Ten".split()
)


def find_english_names(text: str) -> Iterator[tuple[int, int]]:
    """Spans of personal names: after a cue, or a capitalised run that reads as a name."""
    yield from _after_cues(text)
    yield from _capitalised_runs(text)


def _after_cues(text: str) -> Iterator[tuple[int, int]]:
    for match in (*_STRONG_CUE.finditer(text), *_ZH_CUE.finditer(text)):
        span = _name_at(text, match.end(), lower_ok=True)
        if span:
            yield span
    for match in _WEAK_CUE.finditer(text):
        span = _name_at(text, match.end(), lower_ok=False)
        if span:
            yield span


def _name_at(text: str, pos: int, *, lower_ok: bool) -> tuple[int, int] | None:
    """The name starting at ``pos``: up to four capitalised words or initials (after a strong cue,
    one or two lower-case words no dictionary lists: "my name is vitoria")."""
    tokens = _tokens_from(text, pos)
    if not tokens:
        return None
    first = text[tokens[0][0] : tokens[0][1]]
    if first[0].isupper():
        kept = _leading_names(text, tokens, lenient=True)
        words = [text[s:e] for s, e in kept]
        if not kept or _shouting(words[0]) or (not lower_ok and words[0].lower() in _FUNCTION_WORDS):
            return None
        if not lower_ok and _next_word(text, kept[-1][1]) in _STREET_WORDS - _UNITS:
            return None  # "this is Oak Street": a street, not a name
        # after "I'm", "this is", "Hi": a name, not "I'm Sorry" or "this is Great" (one census name,
        # or one word no dictionary has)
        if not lower_ok and all(_is_plain_word(w) and not is_census_name(w) for w in words):
            return None
        return kept[0][0], kept[-1][1]
    if not lower_ok:
        return None
    kept = []
    for start, end in tokens[:2]:
        word = text[start:end]
        if word in _NOT_AFTER_CUE or listed(word, lowercase_words()):
            break
        kept.append((start, end))
    return (kept[0][0], kept[-1][1]) if kept else None


def _tokens_from(text: str, pos: int) -> list[tuple[int, int]]:
    """Words from ``pos`` on, joined by single spaces (a name does not cross punctuation)."""
    tokens: list[tuple[int, int]] = []
    while len(tokens) < _MAX_WORDS:
        match = _TOKEN.match(text, pos)
        if not match:
            break
        end = match.end()
        if end < len(text) and text[end] == "." and _INITIAL.fullmatch(text[match.start() : end + 1]):
            end += 1
        tokens.append((match.start(), end))
        if _POSSESSIVE.search(text, match.start(), end) or not text.startswith(" ", end):
            break
        pos = end + 1
    return tokens


def _leading_names(
    text: str, tokens: list[tuple[int, int]], *, lenient: bool = False
) -> list[tuple[int, int]]:
    """The leading capitalised tokens (possessive 's cut off), particles kept between them.

    Without a cue a run stops at an ordinary word, except right after a first name, an initial or a
    particle ("Theodore Marshall", "Ryan P Costa", "van Lint"), where only a place, a brand or an
    everyday word stops it. After a cue (``lenient``) only a greeting, a brand, a company word, or a
    street word that follows no first name stops it: "My name is John Canada", "I'm Charlotte Park"."""
    kept: list[tuple[int, int]] = []
    for index, (start, end) in enumerate(tokens):
        word = text[start:end]
        if kept and word in _PARTICLES and _capitalised_next(text, tokens, index):
            kept.append((start, end))
            continue
        if not word[0].isupper() or _CONTRACTION.search(word) or word.rstrip(".") in _ORG_WORDS:
            break
        previous = text[kept[-1][0] : kept[-1][1]] if kept else ""
        after_name = bool(previous) and (
            is_first_name(previous) or _name_part(previous) or previous in _PARTICLES
        )
        if word.rstrip(".") in _STREET_WORDS and not (lenient and after_name):
            break
        if lenient:
            if ends_name(word) or (not kept and is_country(word)):
                break
        elif kept and _is_plain_word(word) and not _name_part(word) and (not after_name or is_common(word)):
            break
        possessive = _POSSESSIVE.search(word)
        kept.append((start, end - (2 if possessive else 0)))
        if possessive:
            break
    return kept


def _capitalised_next(text: str, tokens: list[tuple[int, int]], index: int) -> bool:
    """Whether a capitalised word follows the particles from ``index`` on ("van der Voet")."""
    for start, end in tokens[index + 1 :]:
        if text[start:end] not in _PARTICLES:
            return text[start].isupper()
    return False


def _is_plain_word(word: str) -> bool:
    return is_word(word.rstrip(".")) or bool(_CONTRACTION.search(word))


def _name_part(word: str) -> bool:
    """A middle initial ("J", "M.") or a generation suffix ("II", "Jr.")."""
    return word in _SUFFIX or bool(_INITIAL.fullmatch(word))


def _capitalised_runs(text: str) -> Iterator[tuple[int, int]]:
    pos = 0
    while True:
        match = _TOKEN.search(text, pos)
        if not match:
            return
        if not match.group(0)[0].isupper():
            pos = match.end()
            continue
        tokens = _tokens_from(text, match.start())
        run = _leading_names(text, tokens)
        if run:
            span = _judge(text, run)
            if span:
                yield span
            pos = run[-1][1]
        else:
            pos = match.end()


def _judge(text: str, run: list[tuple[int, int]]) -> tuple[int, int] | None:
    """``run`` (capitalised tokens) trimmed of ordinary words at its ends, if what is left is a name."""
    words = [text[s:e] for s, e in run]
    if _next_word(text, run[-1][1]) in _NOT_PERSON_NEXT or any(
        w.rstrip(".") in _NOT_PERSON_NEXT for w in words
    ):
        return None
    while words and _is_plain_word(words[0]) and not is_first_name(words[0]):
        words, run = words[1:], run[1:]
    # after a first name only an everyday word ends the name ("Ryan P Costa", "Erin Dale Thanks")
    ends_name = is_common if words and is_first_name(words[0]) else _is_plain_word
    while words and (ends_name(words[-1]) or _INITIAL.fullmatch(words[-1])) and words[-1] not in _SUFFIX:
        words, run = words[:-1], run[:-1]
    if not words or any(_shouting(w) for w in words):
        return None
    if len(words) == 1:
        word = words[0]
        inside = _inside_sentence(text, run[0][0])
        if is_first_name(word) or (inside and is_surname(word)):
            return run[0]
        return None
    if not is_first_name(words[0]) and any(
        _is_plain_word(w) for w in words if not _name_part(w) and w not in _PARTICLES
    ):
        return None
    return run[0][0], run[-1][1]


def _next_word(text: str, end: int) -> str:
    match = _TOKEN.match(text, end + 1) if text.startswith(" ", end) else None
    return match.group(0) if match else ""


def _shouting(word: str) -> bool:
    """An all-capitals word of two letters or more (ATM, UK, FAQ) is no name; II and III are."""
    return len(word) > 1 and word.isupper() and word not in _SUFFIX


def _inside_sentence(text: str, start: int) -> bool:
    """Whether a word before ``start`` on its line is not the end of a sentence."""
    before = text[max(0, start - 3) : start].rstrip(" ")
    return bool(before) and before[-1] not in ".!?\n:\"'“>"
