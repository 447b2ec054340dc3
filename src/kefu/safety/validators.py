"""Checksum and structure validators for identity numbers.

Each ``is_valid_*`` takes the value as typed (spaces and dashes allowed where people put them)
and returns a bool; none raises. They are what keeps order numbers and random digit runs from
being redacted: a number is treated as PII only when its check digit (and, where the format has
one, its embedded date or country structure) is right.
"""

from __future__ import annotations

import re
from datetime import date

_SEPARATORS = re.compile(r"[\s.\-]")

# ISO 7064 MOD 11-2, as used by GB 11643 (Chinese resident identity number).
_RIC_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_RIC_CHECK = "10X98765432"
# First two digits: province-level division codes (GB/T 2260), plus 71/81/82/83 (TW, HK, MO,
# and the 83 prefix used on residence permits for Taiwan residents).
_RIC_PROVINCES = frozenset(
    str(code) for code in [*range(11, 16), *range(21, 24), *range(31, 38), *range(41, 47), *range(50, 55)]
) | frozenset(str(code) for code in [*range(61, 66), 71, 81, 82, 83])

# GB 32100-2015 unified social credit code (organisations): base-31 alphabet without I O S V Z.
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def compact(value: str) -> str:
    """``value`` without spaces, dots and dashes, upper-cased."""
    return _SEPARATORS.sub("", value).upper()


def _is_date(year: int, month: int, day: int) -> bool:
    try:
        born = date(year, month, day)
    except ValueError:
        return False
    return date(1880, 1, 1) <= born <= date.today()


def resident_id_check_char(first17: str) -> str:
    total = sum(int(d) * w for d, w in zip(first17, _RIC_WEIGHTS, strict=True))
    return _RIC_CHECK[total % 11]


def is_valid_resident_id(value: str) -> bool:
    """Chinese resident identity number: 18 characters with MOD 11-2 check (X allowed), or the
    old 15-digit form; both need a real province code and a real birth date."""
    number = compact(value)
    if len(number) == 15:
        return (
            number.isascii()
            and number.isdigit()
            and number[:2] in _RIC_PROVINCES
            and _is_date(1900 + int(number[6:8]), int(number[8:10]), int(number[10:12]))
        )
    if len(number) != 18 or not number.isascii() or not number[:17].isdigit():
        return False
    if number[:2] not in _RIC_PROVINCES:
        return False
    if not _is_date(int(number[6:10]), int(number[10:12]), int(number[12:14])):
        return False
    return number[17] == resident_id_check_char(number[:17])


def is_valid_luhn(value: str) -> bool:
    """Luhn (mod 10) check over a string of ASCII digits."""
    number = compact(value)
    if not number or not number.isascii() or not number.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def is_valid_bank_card(value: str) -> bool:
    """Payment card (bank card / credit card): 13–19 digits, Luhn valid, not all one digit."""
    number = compact(value)
    return 13 <= len(number) <= 19 and len(set(number)) > 1 and is_valid_luhn(number)


def is_valid_uscc(value: str) -> bool:
    """Chinese unified social credit code (organisations, GB 32100-2015)."""
    number = compact(value)
    if len(number) != 18 or not number[:8].isascii() or not number[:8].isdigit():
        return False
    if any(ch not in _USCC_ALPHABET for ch in number):
        return False
    total = sum(_USCC_ALPHABET.index(ch) * w for ch, w in zip(number, _USCC_WEIGHTS, strict=False))
    return number[17] == _USCC_ALPHABET[(31 - total % 31) % 31]


def is_valid_us_ssn(value: str) -> bool:
    """US social security number: 9 digits, area not 000/666/9xx, group not 00, serial not 0000."""
    number = compact(value)
    if len(number) != 9 or not number.isascii() or not number.isdigit():
        return False
    area, group, serial = number[:3], number[3:5], number[5:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return len(set(number)) > 1 and number not in ("123456789", "078051120")
