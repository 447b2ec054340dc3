"""The demo ERP caps failed identity checks per order: after VERIFY_MAX_FAILURES wrong phone digits in
VERIFY_WINDOW, every check of that order is refused (429, Retry-After) until the window moves on; the
HTTP and in-process adapters raise ``TooManyAttempts``, and a flow turns it into a human handoff."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from conftest import live_server
from kefu.flows import demo_flows
from kefu.flows.spec import Ask, Call
from kefu.tools import HttpOrderSystem, ToolRejected, TooManyAttempts
from kefu.tools.demo_erp import DemoOrderSystem, ErpStore, create_demo_erp_app, seed_demo
from kefu.tools.demo_erp.store import VERIFY_MAX_FAILURES, VERIFY_WINDOW
from test_flows_fakes import engine, talk

TOKEN = "cap-token"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def erp_url(tmp_path: Path, clock: Clock) -> Iterator[str]:
    with live_server(create_demo_erp_app(tmp_path / "erp.db", TOKEN, clock=clock)) as url:
        yield url


def test_the_fourth_check_after_three_wrong_digits_is_refused_even_when_right(erp_url: str, clock: Clock):
    with HttpOrderSystem(erp_url, TOKEN) as erp:
        assert [erp.verify_customer("XP1001", d) for d in ("1111", "2222", "3333")] == [False] * 3
        with pytest.raises(TooManyAttempts, match=r"XP1001.*human agent") as caught:
            erp.verify_customer("XP1001", "8001")
        assert isinstance(caught.value, ToolRejected) and caught.value.status == 429
        assert erp.verify_customer("XP1002", "9002") is True  # another order is not affected
        clock.now += VERIFY_WINDOW + timedelta(seconds=1)
        assert erp.verify_customer("XP1001", "8001") is True


def test_the_429_says_why_and_when_to_retry(erp_url: str, clock: Clock):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for digits in ("1111", "2222", "3333"):
        httpx.post(f"{erp_url}/orders/XP1001/verify", json={"phone_last4": digits}, headers=headers)
    clock.now += timedelta(minutes=5)
    answer = httpx.post(f"{erp_url}/orders/XP1001/verify", json={"phone_last4": "8001"}, headers=headers)
    assert answer.status_code == 429
    assert answer.json()["error"]["code"] == "too_many_attempts"
    assert int(answer.headers["Retry-After"]) == int(VERIFY_WINDOW.total_seconds()) - 5 * 60


def test_a_right_answer_clears_the_failures(erp_url: str):
    with HttpOrderSystem(erp_url, TOKEN) as erp:
        for _ in range(3):  # wrong, wrong, right — three times over: never locked
            assert erp.verify_customer("XP1001", "0000") is False
            assert erp.verify_customer("XP1001", "0001") is False
            assert erp.verify_customer("XP1001", "8001") is True


def test_the_in_process_adapter_keeps_the_same_cap(tmp_path: Path, clock: Clock):
    store = ErpStore(tmp_path / "erp.db", clock)
    try:
        seed_demo(store)
        system = DemoOrderSystem(store)
        for _ in range(VERIFY_MAX_FAILURES):
            assert system.verify_customer("XP1013", "0000") is False
        with pytest.raises(TooManyAttempts):
            system.verify_customer("XP1013", "8001")
        assert store.count("verify_failures", order_id="XP1013") == VERIFY_MAX_FAILURES
    finally:
        store.close()


def test_a_locked_order_ends_the_flow_with_a_human(tmp_path: Path, clock: Clock):
    store = ErpStore(tmp_path / "erp.db", clock)
    try:
        seed_demo(store)
        system = DemoOrderSystem(store)
        flows = engine(system)
        first = talk(flows, "order_status", "我的订单到哪了", "XP1013", "1111", "2222", "3333")
        assert first[-1].outcome == "handoff" and first[-1].data["reason"] == "too_many_tries"
        second = talk(flows, "order_status", "我的订单到哪了", "XP1013", "8001", conversation="c2")
        assert second[-1].outcome == "handoff" and second[-1].data["reason"] == "identity_locked"
        assert "人工客服" in second[-1].text and "SF" not in second[-1].text
    finally:
        store.close()


def test_the_flows_ask_for_the_digits_as_often_as_the_erp_allows():
    """Consistency: a customer who mistypes meets the flow's limit and the ERP's at the same attempt."""
    for spec in demo_flows().values():
        verified_slots = {
            arg.split(".", 1)[1]
            for step in spec.steps.values()
            if isinstance(step, Call) and step.action == "orders.verify"
            for arg in step.args.values()
        }
        asks = [s for s in spec.asks() if s.slot in verified_slots]
        assert asks and all(isinstance(a, Ask) and a.max_tries == VERIFY_MAX_FAILURES for a in asks), (
            spec.name
        )
