"""The demo ERP's seed table and the in-process ``DemoOrderSystem`` (same store, same rules, no HTTP)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kefu.errors import NotFound
from kefu.tools import OrderSystem, ToolRejected
from kefu.tools.demo_erp import SEED, DemoOrderSystem, ErpStore, seed_demo
from kefu.tools.demo_erp.seed import CUSTOMERS
from kefu.tools.orders import ORDER_STATUSES

NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ErpStore]:
    store = ErpStore(tmp_path / "erp.db", clock=lambda: NOW)
    seed_demo(store)
    yield store
    store.close()


def test_seed_has_twenty_orders_in_every_status_with_the_documented_ages(store: ErpStore):
    system = DemoOrderSystem(store)
    orders = {oid: system.get_order(oid) for oid in SEED}

    assert len(orders) == 20 == store.count("orders")
    assert {o.status for o in orders.values()} == set(ORDER_STATUSES)
    for oid, (customer, status, days, ship_state, _lines) in SEED.items():
        order = orders[oid]
        assert order.status == status
        assert order.customer_phone_last4 == CUSTOMERS[customer][1]
        assert order.delivered_at == (NOW - timedelta(days=days) if days is not None else None)
        assert (order.shipment.status if order.shipment else None) == ship_state
        assert order.placed_at < (order.delivered_at or NOW)
        assert order.total == sum(i.price * i.quantity for i in order.items)


def test_headphones_delivered_five_and_eight_days_ago_exist(store: ErpStore):
    headphones = {
        oid: days for oid, (_c, status, days, _s, lines) in SEED.items() if lines[0][0].startswith("HP-")
    }
    assert headphones["XP1001"] == 5 and headphones["XP1002"] == 8


def test_reseeding_moves_the_dates_with_the_clock(tmp_path: Path):
    later = NOW + timedelta(days=30)
    store = ErpStore(tmp_path / "erp.db", clock=lambda: later)
    try:
        seed_demo(store)
        seed_demo(store)
        assert store.get_order("XP1001").delivered_at == later - timedelta(days=5)
        assert store.count("orders") == 20
    finally:
        store.close()


def test_in_process_system_keeps_idempotency_and_state_rules(store: ErpStore):
    system = DemoOrderSystem(store)
    assert isinstance(system, OrderSystem)

    first = system.create_return("XP1002", kind="return", reason="左耳无声", photos=[], idempotency_key="k")
    again = system.create_return("XP1002", kind="return", reason="左耳无声", photos=[], idempotency_key="k")
    assert again == first and store.count("returns") == 1
    with pytest.raises(ToolRejected, match=f"already has an open return request {first.return_id}"):
        system.create_return("XP1002", kind="return", reason="左耳无声", photos=[], idempotency_key="k2")
    with pytest.raises(ToolRejected, match="XP1015 is shipped"):
        system.cancel_order("XP1015", idempotency_key="c")
    with pytest.raises(NotFound, match="XP0000"):
        system.cancel_order("XP0000", idempotency_key="c-404")
    assert store.count("idempotency_keys") == 4  # refusals are stored outcomes too


def test_return_ids_count_up_and_carry_the_shanghai_date(tmp_path: Path):
    late_evening_utc = datetime(2026, 11, 24, 17, 0, tzinfo=UTC)  # already the 25th in Shanghai
    store = ErpStore(tmp_path / "erp.db", clock=lambda: late_evening_utc)
    try:
        seed_demo(store)
        system = DemoOrderSystem(store)
        ids = [
            system.create_return(
                oid, kind="return", reason="不喜欢", photos=[], idempotency_key=oid
            ).return_id
            for oid in ("XP1001", "XP1003")
        ]
        assert ids == ["RT20261125-000001", "RT20261125-000002"]
    finally:
        store.close()
