"""Checksum validators (values from published examples, not from the evaluation set)."""

from __future__ import annotations

import pytest

from kefu.safety.iban import is_valid_iban
from kefu.safety.validators import (
    is_valid_bank_card,
    is_valid_luhn,
    is_valid_resident_id,
    is_valid_us_ssn,
    is_valid_uscc,
    resident_id_check_char,
)


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("11010519491231002X", True),
        ("11010519491231002x", True),
        ("110105 19491231 002X", True),
        ("110105194912310021", False),  # check character
        ("110105194902300028", False),  # 30 February
        ("000105194912310021", False),  # province
        ("110105491231002", True),  # old 15-digit form, born 1949-12-31
        ("110105491331002", False),  # month 13
        ("1101051949123100", False),
        ("", False),
        ("１１０１０５１９４９１２３１００２X", False),  # validators take ASCII; redaction normalises first
    ],
)
def test_resident_id(value: str, valid: bool) -> None:
    assert is_valid_resident_id(value) is valid


def test_resident_id_check_char_is_mod_11_2() -> None:
    assert resident_id_check_char("11010519491231002") == "X"


@pytest.mark.parametrize(
    ("value", "valid"),
    [("79927398713", True), ("79927398710", False), ("4111 1111 1111 1111", True), ("abc", False)],
)
def test_luhn(value: str, valid: bool) -> None:
    assert is_valid_luhn(value) is valid


def test_bank_card_needs_length_and_luhn() -> None:
    assert is_valid_bank_card("6222021234567890128")
    assert not is_valid_bank_card("79927398713")  # Luhn-valid but 11 digits
    assert not is_valid_bank_card("0000000000000000")


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("GB82 WEST 1234 5698 7654 32", True),
        ("gb82west12345698765432", True),
        ("DE89 3704 0044 0532 0130 00", True),
        ("GB82 WEST 1234 5698 7654 33", False),  # checksum
        ("GB82 WEST 1234 5698 7654", False),  # length for GB
        ("NL91 ABNA 0417 1643 0O", False),  # letter where a digit belongs
        ("XX82 WEST 1234 5698 7654 32", False),
    ],
)
def test_iban(value: str, valid: bool) -> None:
    assert is_valid_iban(value) is valid


def test_uscc() -> None:
    assert is_valid_uscc("91110000600037341L")
    assert not is_valid_uscc("91110000600037341N")
    assert not is_valid_uscc("9111000060003IOZSV")


@pytest.mark.parametrize(
    ("value", "valid"),
    [("123-45-6788", True), ("000-12-3456", False), ("666-12-3456", False), ("912-34-5678", False)],
)
def test_us_ssn(value: str, valid: bool) -> None:
    assert is_valid_us_ssn(value) is valid
