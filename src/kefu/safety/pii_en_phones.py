"""Phone numbers that Google's libphonenumber (``phonenumbers``, Apache-2.0, metadata inside the
package) finds *valid* for a common region, in formats the shapes in ``pii_detect`` do not cover.

Only ``Leniency.VALID`` is used: ``POSSIBLE`` takes any run of 7+ digits (card and order numbers,
amounts) and masked 51 of 3,000 Banking77 messages in development. Messages with fewer than seven
digits never reach the matcher, so ordinary text pays one regular expression.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import phonenumbers

# Where kefu's English-speaking customers mostly write from; a number with +country code is found
# whatever the region, these decide how a number without one is read.
REGIONS = ("US", "GB", "CA", "AU", "IE", "IN", "DE", "FR", "NL", "ES", "IT", "SG", "HK")
_ENOUGH_DIGITS = re.compile(r"(?:[0-9][^0-9]{0,3}){7}")


def find_valid_phones(text: str) -> Iterator[tuple[int, int]]:
    """Spans of numbers libphonenumber finds valid in one of ``REGIONS``."""
    if not _ENOUGH_DIGITS.search(text):
        return
    seen: set[tuple[int, int]] = set()
    for region in REGIONS:
        for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID):
            span = (match.start, match.end)
            if span not in seen:
                seen.add(span)
                yield span
