"""Credit check (finance pack): the ``CreditCheck`` seam, a deterministic demo and an HTTP adapter.

The caller passes the *raw* ID number it resolved from the conversation's PII vault (the model only
ever saw a placeholder such as ``[身份证号_1]``). The demo decision is a pure function of the number:
an invalid number (wrong length, province, birth date or check digit) is declined with score 0;
otherwise the score is ``500 + (digits 15–17) mod 351`` (500–850) and 600 or more is approved.
The demo ERP serves it at ``POST /credit/check {"id_number", "name"}``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol, runtime_checkable

from kefu.safety.validators import compact, is_valid_resident_id
from kefu.tools.http_erp import JsonService
from kefu.tools.orders import ToolUnavailable

APPROVE_FROM = 600


@dataclass(frozen=True)
class CreditResult:
    approved: bool
    score: int
    reason: str


@runtime_checkable
class CreditCheck(Protocol):
    def check(self, id_number_placeholder_value: str, name: str) -> CreditResult: ...


def demo_credit_decision(id_number: str, name: str) -> CreditResult:
    number = compact(id_number)
    if not name.strip():
        return CreditResult(False, 0, "the applicant's name is missing")
    if len(number) != 18 or not is_valid_resident_id(number):
        return CreditResult(False, 0, "not a valid 18-digit resident ID number; ask the customer to check it")
    score = 500 + int(number[14:17]) % 351
    if score >= APPROVE_FROM:
        return CreditResult(True, score, f"score {score} meets the approval line {APPROVE_FROM}")
    return CreditResult(False, score, f"score {score} is below the approval line {APPROVE_FROM}")


class DemoCreditCheck:
    """In-process demo: the same decision the demo ERP's ``/credit/check`` serves."""

    def check(self, id_number_placeholder_value: str, name: str) -> CreditResult:
        return demo_credit_decision(id_number_placeholder_value, name)


class HttpCreditCheck(JsonService):
    """``CreditCheck`` over HTTP; ``breaker=breaker_for(settings, "credit", url)`` (``kefu.breakers``) makes it
    fail at once with ``ToolUnavailable`` (offer a human) while the credit API keeps failing."""

    def check(self, id_number_placeholder_value: str, name: str) -> CreditResult:
        payload = {"id_number": id_number_placeholder_value, "name": name}
        body = self._http.call("POST", "/credit/check", subject="the credit check", json=payload)
        try:
            return CreditResult(bool(body["approved"]), int(body["score"]), str(body["reason"]))
        except (KeyError, TypeError, ValueError):
            raise ToolUnavailable(
                "the credit service answered without approved/score/reason; offer the customer a human agent"
            ) from None


def credit_to_wire(result: CreditResult) -> dict[str, object]:
    return asdict(result)
