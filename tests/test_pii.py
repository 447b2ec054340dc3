"""PII redaction: what the model would receive instead of the customer's numbers."""

from __future__ import annotations

import re

import pytest

from kefu.safety import MemoryPiiVault, PiiType, redact_pii, restore

ISSUE = "我的身份证号是11010519491231002X，手机13800138000，卡号6222021234567890128帮我查下订单"
LONG_DIGIT_RUN = re.compile(r"[0-9０-９]{7,}")


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c for c in text)


def test_issue_example_replaces_all_three() -> None:
    r = redact_pii(ISSUE)
    assert r.text == "我的身份证号是[身份证号_1]，手机[手机号_1]，卡号[银行卡号_1]帮我查下订单"
    assert not LONG_DIGIT_RUN.search(r.text)
    assert [e.type for e in r.entities] == [PiiType.RESIDENT_ID, PiiType.MOBILE, PiiType.BANK_CARD]
    assert r.mapping == {
        "[身份证号_1]": "11010519491231002X",
        "[手机号_1]": "13800138000",
        "[银行卡号_1]": "6222021234567890128",
    }
    for entity in r.entities:
        assert r.mapping[entity.placeholder] == ISSUE[entity.start : entity.end]


def test_fullwidth_digits_are_redacted_in_place() -> None:
    text = _fullwidth(ISSUE)
    r = redact_pii(text)
    assert r.text == "我的身份证号是[身份证号_1]，手机[手机号_1]，卡号[银行卡号_1]帮我查下订单"
    assert r.mapping["[手机号_1]"] == "１３８００１３８０００"
    assert restore(r.text, r.mapping) == text


@pytest.mark.parametrize("junk", ["\u200b", "\u200d", "\u2060", "\ufeff", "\u00ad"])
def test_zero_width_characters_inside_numbers(junk: str) -> None:
    text = f"手机13{junk}8001{junk}38000，身份证1101051949{junk}1231002x"
    r = redact_pii(text)
    assert r.text == "手机[手机号_1]，身份证[身份证号_1]"
    assert restore(r.text, r.mapping) == text


def test_nbsp_ideographic_space_and_unicode_dashes_as_separators() -> None:
    r = redact_pii("卡号 6222\u00a00212\u00a03456\u00a07890\u00a0128，电话 138\u20130013\u30008000")
    assert r.text == "卡号 [银行卡号_1]，电话 [手机号_1]"


@pytest.mark.parametrize(
    "text",
    [
        "订单号110105194912310021请查",  # 18 digits, ID check character wrong
        "身份证11010519491331002X",  # month 13
        "单据990105194912310021",  # no such province
        "流水6222021234567890127",  # 19 digits, fails Luhn
        "编号4111111111111112",  # 16 digits, fails Luhn
        "订单号 6222021234567890128",  # Luhn-valid, but written as an order number
        "金额 12345 元，数量 7",
        "the answer is 123456789",  # 9 digits with no SSN/passport word nearby
    ],
)
def test_numbers_that_fail_validation_stay(text: str) -> None:
    r = redact_pii(text)
    assert r.text == text
    assert r.entities == []


def test_same_value_twice_gets_one_placeholder_and_types_number_separately() -> None:
    r = redact_pii("手机13800138000，备用13900139000，再说一遍 +86 138-0013-8000，邮箱 a@b.com")
    assert r.text == "手机[手机号_1]，备用[手机号_2]，再说一遍 [手机号_1]，邮箱 [邮箱_1]"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+86 138 0013 8000", "[手机号_1]"),
        ("0086-13800138000", "[手机号_1]"),
        ("座机(010)6552 9988", "座机[电话_1]"),
        ("座机 0571-88776655", "座机 [电话_1]"),
        ("mail ZHANG.San@example.com.cn now", "mail [邮箱_1] now"),
        ("IBAN GB82 WEST 1234 5698 7654 32.", "IBAN [IBAN_1]."),
        ("SSN 123-45-6788", "SSN [社会安全号_1]"),
        ("my social security number is 123456788", "my social security number is [社会安全号_1]"),
        ("call (212) 555-0123 or +1 212 555 0199", "call [电话_1] or [电话_2]"),
        ("UK: +44 20 7946 0958", "UK: [电话_1]"),
        ("card 4111 1111 1111 1111, exp 12/29", "card [银行卡号_1], exp 12/29"),
        ("card 4111-1111-1111-1111 123", "card [银行卡号_1] 123"),
        ("护照号E12345678", "护照号[护照号_1]"),
        ("my passport number is 123456789", "my passport number is [护照号_1]"),
        ("server 192.168.10.20 is down", "server [IP地址_1] is down"),
    ],
)
def test_supported_formats(text: str, expected: str) -> None:
    assert redact_pii(text).text == expected


def test_entities_and_redaction_reprs_hold_no_raw_value() -> None:
    r = redact_pii(ISSUE)
    for raw in ("11010519491231002X", "13800138000", "6222021234567890128"):
        assert raw not in repr(r)
        assert raw not in repr(r.entities)


def test_restore_round_trips() -> None:
    text = "Email bob@example.org, card 4111 1111 1111 1111, 身份证11010519491231002X。"
    r = redact_pii(text)
    assert restore(r.text, r.mapping) == text
    assert restore("unknown [手机号_9] stays", r.mapping) == "unknown [手机号_9] stays"


def test_vault_keeps_placeholders_stable_across_turns() -> None:
    vault = MemoryPiiVault()
    first = redact_pii("手机13800138000", vault=vault)
    second = redact_pii("换个号13900139000，原来的是138 0013 8000", vault=vault)
    assert first.text == "手机[手机号_1]"
    assert second.text == "换个号[手机号_2]，原来的是[手机号_1]"
    assert vault.known() == {"[手机号_1]": "13800138000", "[手机号_2]": "13900139000"}
    assert "13800138000" not in repr(vault)


def test_placeholders_already_in_the_text_are_not_reused() -> None:
    r = redact_pii("之前是[手机号_1]，现在是13900139000")
    assert r.text == "之前是[手机号_1]，现在是[手机号_2]"
    assert redact_pii(r.text).text == r.text
