"""Phone numbers that Google's libphonenumber (``phonenumbers``, Apache-2.0, metadata inside the
package) finds *valid* for a common region, in formats the shapes in ``pii_detect`` do not cover.

Only ``Leniency.VALID`` is used: ``POSSIBLE`` takes any run of 7+ digits (card and order numbers,
amounts) and masked 51 of 3,000 Banking77 messages in development. Only runs of seven or more
digits reach the matcher, so ordinary text pays one regular expression.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import phonenumbers

# Where kefu's English-speaking customers mostly write from; a number with +country code is found
# whatever the region, these decide how a number without one is read.
REGIONS = ("US", "GB", "CA", "AU", "IE", "IN", "DE", "FR", "NL", "ES", "IT", "SG", "HK")
# Where a number may be: 7+ digits with the separators people type, opened by +, ( or a digit.
_CONTEXT = 8
# VALID, not STRICT_GROUPING: on presidio dev STRICT_GROUPING dropped one false positive at equal recall, but
# odd groupings ("2024 55 1234") are how people type too, and a miss is worse than an extra mask.
_LENIENCY = phonenumbers.Leniency.VALID
_DATE = re.compile(r"(?:19|20)[0-9]{2}[-./][01]?[0-9][-./][0-3]?[0-9]")
_CANDIDATE = re.compile(r"(?<![0-9A-Za-z])[+(]?[0-9](?:[0-9]|[ ().\-/]{1,2}(?=[0-9(])){6,22}\)?")


def find_valid_phones(text: str, known: Sequence[tuple[int, int]] = ()) -> Iterator[tuple[int, int]]:
    """Spans of numbers libphonenumber finds valid in one of ``REGIONS``. The matcher runs on each
    candidate run of digits only (its cost grows with the text) that no ``known`` span (what the
    regular shapes found) already covers."""
    for candidate in _CANDIDATE.finditer(text):
        if sum(ch.isdigit() for ch in candidate.group(0)) < 7:
            continue
        if any(start <= candidate.start() and candidate.end() <= end for start, end in known):
            continue
        # the matcher reads a few characters around a number ("2015-12-22 04:34" is a time)
        offset = max(0, candidate.start() - _CONTEXT)
        window = text[offset : candidate.end() + _CONTEXT]
        # a number with its +country code reads the same in every region; otherwise the first
        # region that finds it valid decides
        regions = REGIONS[:1] if candidate.group(0).startswith("+") else REGIONS
        for region in regions:
            found = [
                _balanced(text, offset + match.start, offset + match.end)
                for match in phonenumbers.PhoneNumberMatcher(window, region, leniency=_LENIENCY)
                if not _DATE.search(match.raw_string)
            ]
            yield from found
            if found:
                break


def _balanced(text: str, start: int, end: int) -> tuple[int, int]:
    """The span without a bracket it does not close: "（+44 20 7946 0852）" masks the number only."""
    value = text[start:end]
    if value.startswith("(") and value.count("(") > value.count(")"):
        start += 1
    if value.endswith(")") and value.count(")") > value.count("("):
        end -= 1
    return start, end
