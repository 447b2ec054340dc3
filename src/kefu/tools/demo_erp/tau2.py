"""Load the tau2-bench retail database (``shared/eval/tau2_retail/db.json``) into a demo-ERP store.

``import_tau2_retail(db_json, erp_db)`` wipes ``erp_db`` and writes tau2's users, their payment
methods, product variants and orders, so the flows can be checked against a real, larger store (serve it with
``create_demo_erp_app(erp_db)``: a non-empty store is never re-seeded). Mapping:

- status: ``pending`` → ``paid`` (paid, not yet shipped: cancellable), ``processed`` → ``shipped``,
  ``delivered`` → ``delivered``, ``cancelled`` → ``cancelled``; "return/exchange requested" →
  ``delivered``, "pending (item modified)" → ``paid`` with ``items_modified`` set, so the ERP refuses to
  cancel, re-address or modify it again, as tau2 does.
- payment methods keep their ids ("gift_card_0000000"), kind (tau2's "source") and gift card balance;
  they pay or receive an item change's price difference.
- order ids are kept as they are ("#W2611340"); each tau2 item is one line (quantity 1, sku = item id).
- tau2 has no phone numbers: ``phone_last4`` is the last four digits of the *customer's* zip code (their
  profile address), on every order of theirs — tau2 authenticates the user (name + zip), not the
  order, and an order may ship to another zip.
- tau2 has no timestamps: relative to the import time, delivered orders were delivered 3 days ago
  (inside every return window — tau2's policy has none), placed 6 days ago; others placed 1–4 days ago.
- a shipment (carrier "tau2", its first tracking id) for shipped and delivered orders.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from kefu.errors import InvalidInput
from kefu.tools.demo_erp.store import Clock, ErpStore, utc_now
from kefu.tools.orders import Order, OrderItem, Shipment

STATUS_MAP = {
    "pending": "paid",
    "pending (item modified)": "paid",
    "processed": "shipped",
    "delivered": "delivered",
    "return requested": "delivered",
    "exchange requested": "delivered",
    "cancelled": "cancelled",
}
_PLACED_AGO = {"paid": timedelta(days=1), "shipped": timedelta(days=2), "cancelled": timedelta(days=4)}
_DELIVERED_AGO = timedelta(days=3)


def import_tau2_retail(db_json: Path, erp_db: Path, clock: Clock = utc_now) -> dict[str, int]:
    """Replace ``erp_db``'s content with tau2's; returns how many users, products and orders it wrote."""
    try:
        data = json.loads(Path(db_json).read_text(encoding="utf-8"))
        users, products, orders = data["users"], data["products"], data["orders"]
    except (OSError, ValueError, KeyError) as exc:
        raise InvalidInput(
            f"cannot read the tau2 retail database {str(db_json)!r} ({exc}); point it at "
            "shared/eval/tau2_retail/db.json"
        ) from None
    store = ErpStore(erp_db, clock)
    try:
        now = clock()
        store.reset()
        store.add_rows("customers", [_customer(u) for u in users.values()])
        store.add_rows("payment_methods", [row for u in users.values() for row in _payment_methods(u)])
        store.add_rows("products", [row for p in products.values() for row in _variants(p)])
        count = store.add_orders(
            (_order(o, now, _last4(users[o["user_id"]])), o["user_id"]) for o in orders.values()
        )
    finally:
        store.close()
    return {
        "users": len(users),
        "products": sum(len(p["variants"]) for p in products.values()),
        "orders": count,
    }


def _address(a: dict[str, str]) -> str:
    street = ", ".join(part for part in (a.get("address1"), a.get("address2")) if part)
    return f"{street}, {a.get('city')}, {a.get('state')} {a.get('zip')}, {a.get('country')}"


def _customer(user: dict[str, Any]) -> dict[str, object]:
    name = f"{user['name']['first_name']} {user['name']['last_name']}"
    return {
        "customer_id": user["user_id"],
        "name": name,
        "email": user.get("email", ""),
        "phone_last4": _last4(user),
        "address": _address(user["address"]),
    }


def _payment_methods(user: dict[str, Any]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for method_id, method in (user.get("payment_methods") or {}).items():
        label = " ".join(str(method[k]) for k in ("brand", "last_four") if method.get(k))
        balance = method.get("balance")
        rows.append(
            {"method_id": method_id, "customer_id": user["user_id"], "kind": method.get("source", "")}
            | {"label": label, "balance": None if balance is None else str(Decimal(str(balance)))}
        )
    return rows


def _variants(product: dict[str, Any]) -> list[dict[str, object]]:
    return [
        {
            "sku": v["item_id"],
            "product_id": product["product_id"],
            "name": product["name"],
            "options": v.get("options", {}),
            "price": str(Decimal(str(v["price"]))),
            "available": bool(v.get("available", True)),
        }
        for v in product["variants"].values()
    ]


def _item(item: dict[str, Any]) -> OrderItem:
    options = ", ".join(f"{k} {v}" for k, v in item.get("options", {}).items())
    name = f"{item['name']} ({options})" if options else item["name"]
    return OrderItem(item["item_id"], name, 1, Decimal(str(item["price"])))


def _last4(user: dict[str, Any]) -> str:
    return str(user["address"]["zip"])[-4:]


def _order(order: dict[str, Any], now: datetime, phone_last4: str) -> Order:
    tau2_status = order["status"]
    if tau2_status not in STATUS_MAP:
        raise InvalidInput(f"tau2 order {order['order_id']} has an unknown status {tau2_status!r}")
    status = STATUS_MAP[tau2_status]
    items = [_item(i) for i in order["items"]]
    delivered = now - _DELIVERED_AGO if status == "delivered" else None
    placed = now - (_DELIVERED_AGO * 2 if delivered else _PLACED_AGO[status])
    address = order["address"]
    total = sum((i.price for i in items), Decimal("0"))
    shipment = _shipment(order, status, delivered or now)
    return Order(
        order["order_id"],
        phone_last4,
        status,
        items,
        total,
        placed,
        delivered,
        _address(address),
        shipment,
        items_modified=tau2_status == "pending (item modified)",
    )


def _shipment(order: dict[str, Any], status: str, updated: datetime) -> Shipment | None:
    tracking = [t for f in order.get("fulfillments", []) for t in f.get("tracking_id", [])]
    if status not in ("shipped", "delivered") or not tracking:
        return None
    state = "delivered" if status == "delivered" else "in_transit"
    return Shipment("tau2", tracking[0], state, updated, [])
