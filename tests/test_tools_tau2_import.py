"""The tau2-bench retail database loaded into a second demo-ERP store, then served over HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import live_server
from kefu.errors import InvalidInput, NotFound
from kefu.tools import HttpOrderSystem, ToolRejected
from kefu.tools.demo_erp import ErpStore, create_demo_erp_app, import_tau2_retail

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
