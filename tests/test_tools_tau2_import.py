"""The tau2-bench retail database loaded into a second demo-ERP store, then served over HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text

from conftest import live_server
from kefu.errors import InvalidInput, NotFound
from kefu.tools import HttpOrderSystem, ToolRejected
from kefu.tools.demo_erp import DemoOrderSystem, ErpStore, create_demo_erp_app, import_tau2_retail

TAU2_DB = Path("/work/shared/eval/tau2_retail/db.json")
NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
needs_tau2 = pytest.mark.skipif(not TAU2_DB.is_file(), reason=f"tau2 retail data absent: {TAU2_DB}")


@needs_tau2
def test_importer_loads_the_real_tau2_retail_db(tmp_path: Path):
    raw = json.loads(TAU2_DB.read_text(encoding="utf-8"))
    erp_db = tmp_path / "tau2-erp.db"

    counts = import_tau2_retail(TAU2_DB, erp_db, clock=lambda: NOW)

    assert counts["users"] == len(raw["users"]) and counts["orders"] == len(raw["orders"])
    tau2_statuses = [o["status"] for o in raw["orders"].values()]
    store = ErpStore(erp_db)
    try:
        assert store.count("orders", status="paid") == tau2_statuses.count("pending")
        assert store.count("orders", status="shipped") == tau2_statuses.count("processed")
        assert store.count("orders", status="delivered") == tau2_statuses.count("delivered")
        assert store.count("customers") == len(raw["users"])
        assert store.count("products") == counts["products"] > 0
        methods = [m for u in raw["users"].values() for m in u["payment_methods"].values()]
        assert store.count("payment_methods") == len(methods)
        assert store.count("payment_methods", kind="gift_card") == sum(
            m["source"] == "gift_card" for m in methods
        )
    finally:
        store.close()


@needs_tau2
def test_imported_orders_are_served_and_keep_their_ids_and_rules(tmp_path: Path):
    data = json.loads(TAU2_DB.read_text(encoding="utf-8"))
    raw, users = data["orders"], data["users"]
    delivered_id = next(
        oid
        for oid, o in raw.items()
        if o["status"] == "delivered" and o["address"]["zip"] != users[o["user_id"]]["address"]["zip"]
    )  # shipped elsewhere: the customer still proves who they are with their own zip
    processed_id = next(oid for oid, o in raw.items() if o["status"] == "processed")
    erp_db = tmp_path / "tau2-erp.db"
    import_tau2_retail(TAU2_DB, erp_db, clock=lambda: NOW)

    with (
        live_server(create_demo_erp_app(erp_db, "t", clock=lambda: NOW)) as url,
        HttpOrderSystem(url, "t") as erp,
    ):
        order = erp.get_order(delivered_id)  # "#W…": the "#" travels percent-encoded
        assert order.order_id == delivered_id and order.status == "delivered"
        assert order.delivered_at == NOW - timedelta(days=3)
        assert [i.sku for i in order.items] == [i["item_id"] for i in raw[delivered_id]["items"]]
        assert erp.verify_customer(delivered_id, users[raw[delivered_id]["user_id"]]["address"]["zip"][-4:])
        assert not erp.verify_customer(delivered_id, raw[delivered_id]["address"]["zip"][-4:])
        with pytest.raises(ToolRejected, match="is shipped"):
            erp.cancel_order(processed_id, idempotency_key="tau2-cancel")
        with pytest.raises(NotFound, match="XP1001"):
            erp.get_order("XP1001")  # a non-empty store is never seeded with the demo shop


def test_importer_names_the_file_it_cannot_read(tmp_path: Path):
    with pytest.raises(InvalidInput, match=r"missing\.json"):
        import_tau2_retail(tmp_path / "missing.json", tmp_path / "erp.db")


def test_an_item_modified_tau2_order_is_imported_locked_and_gift_cards_keep_their_balance(tmp_path: Path):
    address = {"address1": "1 Main St", "city": "Austin", "state": "TX", "zip": "10001", "country": "USA"}
    item = {"name": "Lamp", "product_id": "p1", "item_id": "i1", "price": 20.5, "options": {"color": "red"}}
    variants = {
        sku: {"item_id": sku, "options": {"color": color}, "available": True, "price": price}
        for sku, color, price in (("i1", "red", 20.5), ("i2", "blue", 22.0), ("i3", "green", 19.0))
    }
    orders = {
        oid: {"order_id": oid, "user_id": "ann", "address": address, "items": [item], "status": status}
        for oid, status in (("#W1", "pending (item modified)"), ("#W2", "pending"))
    }
    gift = {"source": "gift_card", "id": "gift_card_9", "balance": 1.0}
    user = {"user_id": "ann", "name": {"first_name": "Ann", "last_name": "Lee"}, "address": address,
            "email": "ann@example.com", "payment_methods": {"gift_card_9": gift}, "orders": list(orders)}  # fmt: skip
    products = {"p1": {"product_id": "p1", "name": "Lamp", "variants": variants}}
    db_json = tmp_path / "db.json"
    db_json.write_text(json.dumps({"users": {"ann": user}, "products": products, "orders": orders}), "utf-8")
    import_tau2_retail(db_json, tmp_path / "erp.db", clock=lambda: NOW)

    store = ErpStore(tmp_path / "erp.db", clock=lambda: NOW)
    try:
        system = DemoOrderSystem(store)
        locked = system.get_order("#W1")
        assert (locked.status, locked.items_modified) == ("paid", True)
        with pytest.raises(ToolRejected, match="#W1 were already modified"):
            system.cancel_order("#W1", idempotency_key="c")
        with pytest.raises(
            ToolRejected, match=r"gift_card_9 holds 1\.00, less than the price difference 1\.50"
        ):
            system.modify_items(
                "#W2", skus=["i1"], new_skus=["i2"], payment_method_id="gift_card_9", idempotency_key="m"
            )
        cheaper = system.modify_items(
            "#W2", skus=["i1"], new_skus=["i3"], payment_method_id="gift_card_9", idempotency_key="n"
        )  # 1.50 cheaper: refunded onto the card
        assert [(i.sku, i.name) for i in cheaper.items] == [("i3", "Lamp (color green)")]
        assert cheaper.total == Decimal("19.00") and cheaper.items_modified
        with store.engine.connect() as conn:
            card = conn.execute(text("SELECT balance FROM payment_methods WHERE method_id = 'gift_card_9'"))
            assert card.scalar_one() == "2.50"
            assert conn.execute(text("SELECT kind, amount FROM payments")).all() == [("refund", "1.50")]
    finally:
        store.close()
