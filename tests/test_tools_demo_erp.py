"""The demo ERP's seed table and the in-process ``DemoOrderSystem`` (same store, same rules, no HTTP),
including the one-time item modification that locks an order."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from kefu.errors import NotFound
from kefu.flows import FlowEngine, demo_flows
from kefu.tools import OrderSystem, ToolRejected
from kefu.tools.audited import AuditedOrderSystem, calls_for
from kefu.tools.demo_erp import SEED, DemoOrderSystem, ErpStore, seed_demo
from kefu.tools.demo_erp.dry_run import DryRunOrders
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


# -- modify items: once per unshipped order, and it locks the order ----------------------------------


def balance(store: ErpStore, method_id: str) -> str:
    with store.engine.connect() as conn:
        return str(
            conn.execute(
                text("SELECT balance FROM payment_methods WHERE method_id = :m"), {"m": method_id}
            ).scalar_one()
        )


def payments(store: ErpStore) -> list[tuple[str, str, str, str]]:
    with store.engine.connect() as conn:
        return [
            tuple(r) for r in conn.execute(text("SELECT order_id, kind, amount, method_id FROM payments"))
        ]


def test_modify_items_once_settles_the_difference_and_locks_the_order(store: ErpStore):
    system = DemoOrderSystem(store)
    swap = {"skus": ["CASE-IP15", "TS-BLACK-M"], "new_skus": ["CASE-IP15-PRO", "TS-WHITE-M"]}

    changed = system.modify_items("XP1016", **swap, payment_method_id="gift_card_C02", idempotency_key="m-1")
    again = system.modify_items("XP1016", **swap, payment_method_id="gift_card_C02", idempotency_key="m-1")

    assert [(i.sku, i.price) for i in changed.items] == [
        ("TS-WHITE-M", Decimal("79.00")),
        ("CASE-IP15-PRO", Decimal("69.00")),
    ]  # each line keeps its place; the case costs 10 more
    assert changed.total == Decimal("148.00") and changed.items_modified and changed.status == "paid"
    assert again == changed == system.get_order("XP1016")  # the retry replays, nothing is paid twice
    assert payments(store) == [("XP1016", "payment", "10.00", "gift_card_C02")]
    assert balance(store, "gift_card_C02") == "40.00"

    locked = "items of order XP1016 were already modified, which can be done only once"
    with pytest.raises(ToolRejected, match=locked):
        system.modify_items(
            "XP1016", skus=["TS-WHITE-M"], new_skus=["TS-BLACK-M"], payment_method_id="alipay_C02",
            idempotency_key="m-2",
        )  # fmt: skip
    with pytest.raises(ToolRejected, match=locked):
        system.cancel_order("XP1016", idempotency_key="c-1")
    with pytest.raises(ToolRejected, match=locked):
        system.change_address("XP1016", "李娜 上海市徐汇区漕溪北路 1 号", idempotency_key="a-1")
    after = system.get_order("XP1016")
    assert (after.status, after.address, after.items) == ("paid", changed.address, changed.items)
    assert payments(store) == [("XP1016", "payment", "10.00", "gift_card_C02")]


@pytest.mark.parametrize(
    ("order_id", "skus", "new_skus", "method", "reason"),
    [
        ("XP1001", ["HP-ANC-PRO"], ["HP-OVER-EAR"], "alipay_C01", "XP1001 is delivered; items can only be modified before"),
        ("XP1019", ["SPEAKER-MINI"], ["SPEAKER-MINI"], "alipay_C05", "XP1019 is cancelled; items can only be modified"),
        ("XP1013", ["HP-ANC-PRO"], ["HP-OVER-EAR"], "alipay_C01", "XP1013 is shipped"),
        ("XP1017", ["HP-TWS-SPORT"], ["CASE-IP15"], "alipay_C07", "not an option of the same product"),
        ("XP1016", ["TS-BLACK-M"], ["TS-GREY-M"], "alipay_C02", "TS-GREY-M .* is not available"),
        ("XP1017", ["HP-TWS-SPORT"], ["HP-TWS-SPORT-BLACK"], "gift_card_C07", "holds 10.00, less than the price difference 20.00"),
        ("XP1017", ["HP-TWS-SPORT"], ["HP-TWS-SPORT-BLACK"], "alipay_C01", "alipay_C01 is not a payment method of the customer"),
        ("XP1017", ["HP-TWS-SPORT", "HP-TWS-SPORT"], ["HP-TWS-SPORT-BLACK"] * 2, "alipay_C07", "no \\(further\\) line with item HP-TWS-SPORT"),
        ("XP1017", ["HP-TWS-SPORT"], [], "alipay_C07", "skus and new_skus of equal length; got 1 and 0"),
        ("XP1017", ["HP-TWS-SPORT"], ["HP-TWS-SPORT"], "alipay_C07", "would stay the same"),
    ],
)  # fmt: skip
def test_modify_items_refusals_name_the_reason_and_change_nothing(
    store: ErpStore, order_id: str, skus: list[str], new_skus: list[str], method: str, reason: str
):
    system = DemoOrderSystem(store)
    before = system.get_order(order_id)
    with pytest.raises(ToolRejected, match=reason):
        system.modify_items(
            order_id, skus=skus, new_skus=new_skus, payment_method_id=method, idempotency_key="m"
        )
    assert system.get_order(order_id) == before and not before.items_modified
    assert payments(store) == [] and balance(store, "gift_card_C07") == "10.00"


def test_dry_run_answers_like_the_erp_and_changes_nothing(store: ErpStore):
    dry = DryRunOrders(store)
    would = dry.modify_items(
        "XP1017", skus=["HP-TWS-SPORT"], new_skus=["HP-TWS-SPORT-BLACK"], payment_method_id="alipay_C07",
        idempotency_key="d-1",
    )  # fmt: skip
    assert would.items_modified and would.total == Decimal("219.00")
    assert store.get_order("XP1017").items_modified is False and payments(store) == []
    assert store.count("idempotency_keys") == 0


def test_the_flows_explain_that_a_modified_order_cannot_be_cancelled_or_readdressed(store: ErpStore):
    system = DemoOrderSystem(store)
    system.modify_items(
        "XP1017", skus=["HP-TWS-SPORT"], new_skus=["HP-TWS-SPORT-BLACK"], payment_method_id="alipay_C07",
        idempotency_key="m-1",
    )  # fmt: skip
    engine = FlowEngine(demo_flows(), system, clock=lambda: NOW)

    for flow, result in (("cancel_order", "not_cancellable_items_modified"),
                         ("change_address", "address_locked_items_modified")):  # fmt: skip
        turn = engine.start(flow, f"conv-{flow}", "XP1017")
        turn = engine.advance(turn.state, "8007")
        assert (turn.outcome, turn.data.get("result")) == ("completed", result)
        assert "XP1017 的商品已经修改过一次" in turn.messages[-1].zh
    assert store.get_order("XP1017").status == "paid"
    assert store.count("idempotency_keys") == 1  # the modification only: the flows wrote nothing


def test_an_older_demo_erp_file_gets_the_items_modified_column(tmp_path: Path):
    path = tmp_path / "old.db"
    store = ErpStore(path, clock=lambda: NOW)
    seed_demo(store)
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE orders DROP COLUMN items_modified"))
    store.close()

    reopened = ErpStore(path, clock=lambda: NOW)
    try:
        assert reopened.get_order("XP1016").items_modified is False
        DemoOrderSystem(reopened).cancel_order("XP1016", idempotency_key="c")
        assert reopened.get_order("XP1016").status == "cancelled"
    finally:
        reopened.close()


def test_the_audited_system_records_an_item_change_and_its_refusal(store: ErpStore):
    records: list[tuple[str, dict[str, Any], str | None]] = []
    audited = AuditedOrderSystem(
        DemoOrderSystem(store), lambda kind, data, conv: records.append((kind, data, conv))
    )
    swap = {"skus": ["HP-TWS-SPORT"], "new_skus": ["HP-TWS-SPORT-BLACK"], "payment_method_id": "alipay_C07"}

    with calls_for("conv-9"):
        audited.modify_items("XP1017", **swap, idempotency_key="m-1")
        with pytest.raises(ToolRejected):
            audited.modify_items("XP1017", **swap, idempotency_key="m-2")

    assert [(kind, conv) for kind, _data, conv in records] == [("tool_call", "conv-9")] * 2
    done, refused = records[0][1], records[1][1]
    assert (done["tool"], done["order_id"], done["ok"]) == ("orders.modify_items", "XP1017", True)
    assert done["args"] == swap | {"idempotency_key": "m-1"}
    assert done["result"] == {"order_id": "XP1017", "status": "paid"}
    assert refused["ok"] is False and "already modified" in refused["error"]["message"]
