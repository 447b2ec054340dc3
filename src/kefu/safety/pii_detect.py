"""Which spans of a (normalised) message are personal data.

Each ``Detector`` is a shape (regular expressions, tried at every start so a longer false match
cannot hide a shorter true one) plus a validator (checksum, date, country structure) plus, for
shapes that are too common on their own, a keyword that must appear shortly before. Candidates
that pass are resolved longest-first, then by type priority, into non-overlapping spans.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum

from kefu.safety.iban import IBAN_LENGTHS, is_valid_iban
from kefu.safety.pii_en import find_street_addresses
from kefu.safety.pii_en_names import find_english_names
from kefu.safety.pii_en_phones import find_valid_phones
from kefu.safety.pii_zh import find_addresses, find_names, names_beside
from kefu.safety.validators import (
    compact,
    is_valid_bank_card,
    is_valid_resident_id,
    is_valid_us_ssn,
)


class PiiType(StrEnum):
    RESIDENT_ID = "resident_id"
    MOBILE = "mobile"
    PHONE = "phone"
    BANK_CARD = "bank_card"
    EMAIL = "email"
    IBAN = "iban"
    PASSPORT = "passport"
    US_SSN = "us_ssn"
    IP_ADDRESS = "ip_address"
    PERSON = "person"
    ADDRESS = "address"
    LICENSE_PLATE = "license_plate"


# The placeholder label shown to the model, e.g. "[手机号_1]".
LABELS: dict[PiiType, str] = {
    PiiType.RESIDENT_ID: "身份证号",
    PiiType.MOBILE: "手机号",
    PiiType.PHONE: "电话",
    PiiType.BANK_CARD: "银行卡号",
    PiiType.EMAIL: "邮箱",
    PiiType.IBAN: "IBAN",
    PiiType.PASSPORT: "护照号",
    PiiType.US_SSN: "社会安全号",
    PiiType.IP_ADDRESS: "IP地址",
    PiiType.PERSON: "姓名",
    PiiType.ADDRESS: "地址",
    PiiType.LICENSE_PLATE: "车牌号",
}

_START = r"(?<![0-9A-Za-z])"
_END = r"(?![0-9A-Za-z])"
_AREA = r"(?:10|2[0-9]|[3-9][0-9]{2})"
_EXT = r"(?:[ ]?(?:转|ext\.?|x)[ ]?[0-9]{1,5})?"
_IP_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_CONTEXT_WINDOW = 40
_NOT_AFTER_WINDOW = 12
_ORDER_WINDOW = 20  # "order number 4155552671": libphonenumber finds bare digit runs valid
_DATE = re.compile(r"[0-9]{4}[./\-][0-9]{1,2}[./\-][0-9]{1,2}|[0-9]{1,2}[./\-][0-9]{1,2}[./\-][0-9]{2,4}")


def _accept(_: str) -> bool:
    return True


def _not_one_digit(value: str) -> bool:
    return len({ch for ch in value if ch.isdigit()}) > 1


def _intl_digits_ok(value: str) -> bool:
    digits = re.sub(r"[^0-9]", "", value.replace("(0)", ""))
    return 8 <= len(digits) <= 15 and _not_one_digit(digits)


def _local_phone_ok(value: str) -> bool:
    """7–12 digits that do not read as a date (2024-01-15, 15.01.2024) or a year."""
    digits = re.sub(r"[^0-9]", "", value)
    if _DATE.fullmatch(value):
        return False
    return 7 <= len(digits) <= 12 and _not_one_digit(digits)


def _national_phone_ok(value: str) -> bool:
    """9–12 digits in three or more groups (a date or an amount is shorter, an order id is not grouped)."""
    digits = re.sub(r"[^0-9]", "", value)
    return 9 <= len(digits) <= 12 and _not_one_digit(digits) and not _DATE.search(value)


def _card_groups_ok(value: str) -> bool:
    """A card number is typed whole or in groups of 3+ digits with one kind of separator."""
    groups = re.split(r"[ -]", value)
    return len(set(re.findall(r"[ -]", value))) <= 1 and all(len(g) >= 3 for g in groups)


def _is_card(value: str) -> bool:
    return _card_groups_ok(value) and is_valid_bank_card(value)


@dataclass(frozen=True)
class Detector:
    type: PiiType
    patterns: tuple[re.Pattern[str], ...]
    validate: Callable[[str], bool] = _accept
    priority: int = 50
    context: re.Pattern[str] | None = None  # must appear shortly before
    not_after: re.Pattern[str] | None = None  # must not appear right before

    def find(self, text: str) -> Iterator[tuple[int, int]]:
        for pattern in self.patterns:
            for match in pattern.finditer(text):
                start, end = match.span(1)
                if end > start and self.validate(match.group(1)) and self._in_context(text, start):
                    yield start, end

    def _in_context(self, text: str, start: int) -> bool:
        if self.not_after is not None and self.not_after.search(
            text, max(0, start - _NOT_AFTER_WINDOW), start
        ):
            return False
        if self.context is None:
            return True
        return self.context.search(text, max(0, start - _CONTEXT_WINDOW), start) is not None


def _shapes(*bodies: str, flags: int = 0) -> tuple[re.Pattern[str], ...]:
    """Each body tried at every position (a lookahead match), bounded by non-alphanumerics."""
    return tuple(re.compile(f"(?=({_START}{body}{_END}))", flags) for body in bodies)


def _glued(body: str) -> tuple[re.Pattern[str], ...]:
    """``body`` bounded only by non-digits, so letters may touch it (the validator must be strict)."""
    return (re.compile(f"(?=((?<![0-9]){body}(?![0-9])))"),)


def _iban_bodies() -> str:
    by_length: dict[int, list[str]] = {}
    for country, length in IBAN_LENGTHS.items():
        by_length.setdefault(length, []).append(country)
    parts = [
        f"(?:{'|'.join(sorted(countries))})[ ]?[0-9]{{2}}(?:[ .\\-]?[A-Z0-9]){{{length - 4}}}"
        for length, countries in sorted(by_length.items())
    ]
    return "|".join(parts)


_PASSPORT_WORDS = re.compile(r"护照|passport|pass\s*no", re.IGNORECASE)
# Only English words: Chinese numbers have their own shapes, and 手机 is also a product name.
_PHONE_WORDS = re.compile(
    r"\b(?:phone|tel|telephone|fax|mobile|cell|cellphone|whatsapp|call me|reach me|text me|sms|messages? to)\b"
    r"|电话|座机|联系方式|手机号|致电|回电|热线",
    re.IGNORECASE,
)
_CARD_WORDS = re.compile(
    r"\b(?:card|cc|visa|mastercard|maestro|amex)\b|卡号|银行卡|信用卡|储蓄卡", re.IGNORECASE
)
# 京A·12345, 粤B12345, new-energy 粤B·D12345 / 京AD12345 (GA 36-2018); no I or O after the region.
_PLATE = (
    "[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼][A-HJ-NP-Z][·•・. ]?"
    "(?:[DF][A-HJ-NP-Z0-9][0-9]{4}|[0-9]{5}[DF]|[A-HJ-NP-Z0-9]{4}[0-9A-HJ-NP-Z挂学警港澳])"
)
# Order and waybill numbers are often 16–19 digits; one in ten passes Luhn by chance.
_ORDER_WORDS = re.compile(r"订单|单号|运单|快递|物流|发票|order|tracking|invoice|waybill", re.IGNORECASE)
_SSN_WORDS = re.compile(r"ssn|social\s*security|社会安全|社保号", re.IGNORECASE)

DETECTORS: tuple[Detector, ...] = (
    Detector(
        PiiType.EMAIL,
        _shapes(r"(?<![._%+\-])[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,24}"),
        priority=95,
    ),
    Detector(
        PiiType.RESIDENT_ID,
        _shapes(
            r"[0-9]{6}[ -]?[0-9]{8}[ -]?[0-9]{3}[0-9Xx]",
            r"[0-9]{6}[ -]?[0-9]{6}[ -]?[0-9]{3}",
        ),
        is_valid_resident_id,
        priority=90,
    ),
    Detector(
        PiiType.IBAN,
        _shapes(_iban_bodies(), flags=re.IGNORECASE),
        lambda value: is_valid_iban(compact(value)),
        priority=85,
    ),
    Detector(
        PiiType.BANK_CARD,
        _shapes(
            r"[0-9]{13,19}",
            r"[0-9]{4}(?:[ -][0-9]{4}){2}[ -][0-9]{1,4}",
            r"[0-9]{4}(?:[ -][0-9]{4}){3}[ -][0-9]{1,3}",
            r"[0-9]{4}[ -][0-9]{6}[ -][0-9]{4,5}",
            r"[0-9]{6}[ -][0-9]{10,13}",
        ),
        _is_card,
        priority=80,
        not_after=_ORDER_WORDS,
    ),
    Detector(  # 12-19 digits right after a word that says it is a card: the customer says so
        PiiType.BANK_CARD,
        _shapes(r"[0-9]{12,19}"),
        _not_one_digit,
        priority=79,
        context=_CARD_WORDS,
        not_after=_ORDER_WORDS,
    ),
    Detector(  # glued to letters ("pay4111111111111111now", "ID11010519491231002X"): the checksum decides
        PiiType.RESIDENT_ID,
        _glued(r"[0-9]{17}[0-9Xx]"),
        is_valid_resident_id,
        priority=89,
    ),
    Detector(PiiType.BANK_CARD, _glued(r"[0-9]{15,19}"), is_valid_bank_card, 78, not_after=_ORDER_WORDS),
    Detector(PiiType.LICENSE_PLATE, _shapes(_PLATE), priority=75),
    Detector(
        PiiType.MOBILE,
        _shapes(r"(?:(?:\+|00)86[ -]?)?1[3-9][0-9][ -]?[0-9]{4}[ -]?[0-9]{4}"),
        _not_one_digit,
        priority=70,
    ),
    Detector(
        PiiType.US_SSN,
        _shapes(r"[0-9]{3}-[0-9]{2}-[0-9]{4}", r"[0-9]{3} [0-9]{2} [0-9]{4}"),
        is_valid_us_ssn,
        priority=65,
    ),
    Detector(PiiType.US_SSN, _shapes(r"[0-9]{9}"), is_valid_us_ssn, 64, _SSN_WORDS),
    Detector(
        PiiType.PASSPORT,
        _shapes(r"[EeGg][0-9]{8}", r"[Ee][A-HJ-NP-Za-hj-np-z][0-9]{7}"),
        _not_one_digit,
        priority=60,
    ),
    Detector(
        PiiType.PASSPORT,
        _shapes(r"[A-Za-z]{1,2}[0-9]{6,8}", r"[0-9]{9}"),
        _not_one_digit,
        priority=59,
        context=_PASSPORT_WORDS,
    ),
    Detector(
        PiiType.PHONE,
        _shapes(
            rf"(?:(?:\+|00)86[ -]?\(?0?{_AREA}\)?|\(0{_AREA}\)|0{_AREA})[ -]?[2-9][0-9]{{2,3}}[ -]?[0-9]{{4}}{_EXT}"
        ),
        _not_one_digit,
        priority=55,
    ),
    Detector(
        PiiType.PHONE,  # North American numbering plan, written with separators or +1
        _shapes(
            r"(?:\+?1[ .\-]?)?(?:\([2-9][0-9]{2}\)[ .\-]?|[2-9][0-9]{2}[ .\-])[0-9]{3}[ .\-][0-9]{4}" + _EXT,
            r"\+1[ ]?[2-9][0-9]{2}[2-9][0-9]{6}",
        ),
        _not_one_digit,
        priority=50,
    ),
    Detector(
        PiiType.PHONE,  # any international number written with its +country code
        _shapes(
            *(
                rf"(?:\+[1-9][0-9]{{0,2}}|00[1-9][0-9]{{0,2}}[ \-])"
                rf"(?:[ .\-]?(?:\(0\)|\([0-9]{{1,4}}\)|[0-9]{{1,5}})){{{n}}}"
                for n in range(2, 8)
            )
        ),
        _intl_digits_ok,
        priority=45,
    ),
    Detector(
        PiiType.PHONE,  # a local number in any format, right after a word that says it is one
        _shapes(r"(?:\([0-9]{1,4}\)[ ]?)?[0-9]{2,8}(?:[ .\-][0-9]{2,8}){0,4}"),
        _local_phone_ok,
        priority=44,
        context=_PHONE_WORDS,
        not_after=_ORDER_WORDS,
    ),
    Detector(  # a national number with its trunk 0, written in groups: 020 7946 0958, (0)30 1234 567
        PiiType.PHONE,
        _shapes(r"(?:0[1-9][0-9]{0,3}|\(0[1-9][0-9]{0,3}\))(?:[ .\-][0-9]{2,4}){2,4}"),
        _national_phone_ok,
        priority=43,
        not_after=_ORDER_WORDS,
    ),
    Detector(
        PiiType.IP_ADDRESS,
        _shapes(rf"(?<![0-9.]){_IP_OCTET}(?:\.{_IP_OCTET}){{3}}(?!\.?[0-9])"),
        priority=40,
    ),
)


@dataclass(frozen=True, slots=True)
class Found:
    type: PiiType
    start: int
    end: int


_Candidate = tuple[int, int, int, int, PiiType]
_HAN = re.compile(r"[\u4e00-\u9fff]")


def find_pii(text: str) -> list[Found]:
    """Non-overlapping PII spans of ``text`` (already normalised), in text order."""
    candidates: list[_Candidate] = [
        (end - start, detector.priority, start, end, detector.type)
        for detector in DETECTORS
        for start, end in detector.find(text)
    ]
    candidates += [  # English names are find_english_names' to judge (its cues and word lists)
        (end - start, 35, start, end, PiiType.PERSON)
        for start, end in find_names(text)
        if _HAN.search(text, start, end)
    ]
    candidates += [(end - start, 34, start, end, PiiType.PERSON) for start, end in find_english_names(text)]
    candidates += [
        (end - start, 39, start, end, PiiType.PHONE)
        for start, end in find_valid_phones(text, [(c[2], c[3]) for c in candidates])
        if not _ORDER_WORDS.search(text, max(0, start - _ORDER_WINDOW), start)
    ]
    candidates += [(end - start, 30, start, end, PiiType.ADDRESS) for start, end in find_addresses(text)]
    candidates += [
        (end - start, 29, start, end, PiiType.ADDRESS) for start, end in find_street_addresses(text)
    ]
    taken = _resolve(candidates, [])
    beside = [(f.start, f.end) for f in taken if f.type in _NAME_NEIGHBOURS]
    names = [(end - start, 20, start, end, PiiType.PERSON) for start, end in names_beside(text, beside)]
    return sorted(_resolve(names, taken), key=lambda found: found.start)


# A name written next to one of these is the recipient line of a form: 「李娜 13800138000」.
_NAME_NEIGHBOURS = frozenset(
    {PiiType.MOBILE, PiiType.PHONE, PiiType.ADDRESS, PiiType.PASSPORT, PiiType.RESIDENT_ID, PiiType.EMAIL}
)


def _resolve(candidates: list[_Candidate], taken: list[Found]) -> list[Found]:
    """Longest first, then by priority: the spans that overlap nothing already taken."""
    taken = list(taken)
    for _, _, start, end, pii_type in sorted(candidates, key=lambda c: (-c[0], -c[1], c[2])):
        if all(end <= other.start or start >= other.end for other in taken):
            taken.append(Found(pii_type, start, end))
    return taken
