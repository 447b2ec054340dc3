"""The tool actions a flow's ``call`` step may name, each a thin, typed wrapper over ``OrderSystem``.

An action receives the order id, its arguments (already resolved from slots) and, for writes, an
idempotency key; it returns the values the flow may read afterwards (under ``order`` / ``result``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kefu.tools.orders import Order, OrderSystem


@dataclass(frozen=True)
class Action:
    run: Callable[[OrderSystem, str, dict[str, Any], str], dict[str, Any]]
    required: frozenset[str] = frozenset()
    optional: frozenset[str] = frozenset()
    writes: bool = False  # changes the order: needs a verified customer and an idempotency key


def order_facts(order: Order) -> dict[str, Any]:
    """The order as plain JSON values, the only form a flow (and its stored state) keeps."""
    shipment = order.shipment
    return {
        "order_id": order.order_id,
        "status": order.status,
        "total": str(order.total),
        "placed_at": order.placed_at.isoformat(),
        "delivered_at": _iso(order.delivered_at),
        "address": order.address,
        "items_modified": order.items_modified,  # changed once already: no cancel or change any more
        "items": [
            {"sku": i.sku, "name": i.name, "quantity": i.quantity, "price": str(i.price)} for i in order.items
        ],
        "item_names": "、".join(i.name for i in order.items),
        "shipment": None
        if shipment is None
        else {
            "carrier": shipment.carrier,
            "tracking_number": shipment.tracking_number,
            "status": shipment.status,
            "updated_at": shipment.updated_at.isoformat(),
            "last_event": shipment.events[-1] if shipment.events else "",
        },
    }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _get(orders: OrderSystem, order_id: str, args: dict[str, Any], key: str) -> dict[str, Any]:
    return {"order": order_facts(orders.get_order(order_id))}


def _verify(orders: OrderSystem, order_id: str, args: dict[str, Any], key: str) -> dict[str, Any]:
    return {"verified": bool(orders.verify_customer(order_id, str(args["phone_last4"])))}


def _create_return(orders: OrderSystem, order_id: str, args: dict[str, Any], key: str) -> dict[str, Any]:
    made = orders.create_return(
        order_id,
        kind=str(args["kind"]),
        reason=str(args["reason"]),
        photos=[str(p) for p in args.get("photos") or []],
        idempotency_key=key,
    )
    return {"result": {"return_id": made.return_id, "return_status": made.status, "kind": made.kind}}


def _cancel(orders: OrderSystem, order_id: str, args: dict[str, Any], key: str) -> dict[str, Any]:
    return {"order": order_facts(orders.cancel_order(order_id, idempotency_key=key))}


def _change_address(orders: OrderSystem, order_id: str, args: dict[str, Any], key: str) -> dict[str, Any]:
    changed = orders.change_address(order_id, str(args["address"]), idempotency_key=key)
    return {"order": order_facts(changed)}


def _request_invoice(orders: OrderSystem, order_id: str, args: dict[str, Any], key: str) -> dict[str, Any]:
    tax_id = args.get("tax_id")
    request_id = orders.request_invoice(
        order_id,
        kind=str(args["kind"]),
        title=str(args["title"]),
        tax_id=None if tax_id is None else str(tax_id),
        idempotency_key=key,
    )
    return {"result": {"invoice_request_id": request_id}}


ACTIONS: dict[str, Action] = {
    "orders.get": Action(_get),
    "orders.verify": Action(_verify, required=frozenset({"phone_last4"})),
    "orders.create_return": Action(
        _create_return, frozenset({"kind", "reason"}), frozenset({"photos"}), writes=True
    ),
    "orders.cancel": Action(_cancel, writes=True),
    "orders.change_address": Action(_change_address, frozenset({"address"}), writes=True),
    "orders.request_invoice": Action(
        _request_invoice, frozenset({"kind", "title"}), frozenset({"tax_id"}), writes=True
    ),
}
