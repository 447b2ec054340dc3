"""The demo ERP's JSON wire format, shared by the service, the HTTP adapter and the in-process adapter.

Money travels as decimal strings ("299.00"), datetimes as ISO 8601 with an offset. An error body is
``{"error": {"code", "message"}}``; ``raise_for_outcome`` turns a status and body into the seam's errors.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from kefu.errors import NotFound
from kefu.tools.orders import (
    Order,
    OrderItem,
    ReturnOrder,
    Shipment,
    ToolAuthFailed,
    ToolRejected,
    ToolUnavailable,
    TooManyAttempts,
)

Json = dict[str, Any]


def order_to_wire(order: Order) -> Json:
    return {
        "order_id": order.order_id,
        "customer_phone_last4": order.customer_phone_last4,
        "status": order.status,
        "items": [
            {"sku": i.sku, "name": i.name, "quantity": i.quantity, "price": str(i.price)} for i in order.items
        ],
        "total": str(order.total),
        "placed_at": order.placed_at.isoformat(),
        "delivered_at": order.delivered_at.isoformat() if order.delivered_at else None,
        "address": order.address,
        "shipment": _shipment_to_wire(order.shipment) if order.shipment else None,
        "items_modified": order.items_modified,
    }


def _shipment_to_wire(s: Shipment) -> Json:
    return {
        "carrier": s.carrier,
        "tracking_number": s.tracking_number,
        "status": s.status,
        "updated_at": s.updated_at.isoformat(),
        "events": list(s.events),
    }


def order_from_wire(data: Json) -> Order:
    shipment = data.get("shipment")
    delivered = data.get("delivered_at")
    return Order(
        order_id=data["order_id"],
        customer_phone_last4=data["customer_phone_last4"],
        status=data["status"],
        items=[
            OrderItem(sku=i["sku"], name=i["name"], quantity=int(i["quantity"]), price=Decimal(i["price"]))
            for i in data["items"]
        ],
        total=Decimal(data["total"]),
        placed_at=datetime.fromisoformat(data["placed_at"]),
        delivered_at=datetime.fromisoformat(delivered) if delivered else None,
        address=data["address"],
        shipment=_shipment_from_wire(shipment) if shipment else None,
        items_modified=data.get("items_modified") is True,  # an ERP that knows no item changes omits it
    )


def _shipment_from_wire(data: Json) -> Shipment:
    return Shipment(
        carrier=data["carrier"],
        tracking_number=data["tracking_number"],
        status=data["status"],
        updated_at=datetime.fromisoformat(data["updated_at"]),
        events=list(data["events"]),
    )


def return_to_wire(r: ReturnOrder) -> Json:
    return {
        "return_id": r.return_id,
        "order_id": r.order_id,
        "kind": r.kind,
        "reason": r.reason,
        "status": r.status,
        "created_at": r.created_at.isoformat(),
    }


def return_from_wire(data: Json) -> ReturnOrder:
    return ReturnOrder(
        return_id=data["return_id"],
        order_id=data["order_id"],
        kind=data["kind"],
        reason=data["reason"],
        status=data["status"],
        created_at=datetime.fromisoformat(data["created_at"]),
    )


def error_message(body: object) -> str:
    """The ERP's own reason from an error body (ours, or FastAPI's ``{"detail": …}``)."""
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if body.get("detail"):
            return str(body["detail"])
    return str(body)[:300] or "no reason given"


def raise_for_outcome(status: int, body: object, *, subject: str, where: str) -> None:
    """Map an ERP answer to the seam's errors; ``subject`` names the thing asked for ("order XP1001")."""
    if status < 400:
        return
    reason = error_message(body)
    if status == 404:
        raise NotFound(
            f"{subject} was not found in the order system ({reason}); ask the customer to check it"
        )
    if status in (401, 403):
        raise ToolAuthFailed(
            f"the order system at {where} refused kefu's token (HTTP {status}: {reason}); the operator must "
            "set the ERP token kefu uses to the one the ERP expects — meanwhile offer the customer a human agent"
        )
    if status == 429:
        raise TooManyAttempts(
            f"the order system refused further identity checks for {subject} for now: {reason}; tell the "
            "customer a human agent will help"
        )
    if 400 <= status < 500:
        raise ToolRejected(f"the order system refused the request for {subject}: {reason}")
    raise ToolUnavailable(
        f"the order system at {where} failed (HTTP {status}: {reason}); try again later or offer the "
        "customer a human agent"
    )
