"""The credit check: the deterministic demo decision, in process and over the demo ERP's HTTP route."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import live_server
from kefu.safety.validators import resident_id_check_char
from kefu.tools import CreditCheck, DemoCreditCheck, HttpCreditCheck, ToolAuthFailed
from kefu.tools.demo_erp import create_demo_erp_app


def resident_id(first17: str) -> str:
    return first17 + resident_id_check_char(first17)


APPROVED = resident_id("11010519491231150")  # digits 15–17 = 150 → score 650
DECLINED = resident_id("11010519491231002")  # → score 502


def test_demo_decision_is_a_function_of_the_id_number():
    check = DemoCreditCheck()
    assert isinstance(check, CreditCheck)
    assert check.check(APPROVED, "张三").approved is True
    assert check.check(APPROVED, "张三").score == 650
    assert (check.check(DECLINED, "李四").approved, check.check(DECLINED, "李四").score) == (False, 502)
    wrong_check_digit = APPROVED[:-1] + ("0" if APPROVED[-1] != "0" else "1")
    refused = check.check(wrong_check_digit, "张三")
    assert (refused.approved, refused.score) == (False, 0) and "not a valid" in refused.reason


def test_http_credit_check_against_the_demo_erp(tmp_path: Path):
    with live_server(create_demo_erp_app(tmp_path / "erp.db", "tok")) as url:
        check = HttpCreditCheck(url, "tok")
        try:
            assert isinstance(check, CreditCheck)
            assert check.check(APPROVED, "张三") == DemoCreditCheck().check(APPROVED, "张三")
            assert check.check(DECLINED, "李四").approved is False
        finally:
            check.close()
        wrong = HttpCreditCheck(url, "nope")
        try:
            with pytest.raises(ToolAuthFailed):
                wrong.check(APPROVED, "张三")
        finally:
            wrong.close()
