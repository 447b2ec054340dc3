"""Test doubles for the flow tests: an in-memory order system and a settable clock (no tests here).

``FakeOrders`` keeps the promises of ``kefu.tools.orders.OrderSystem`` — idempotent writes, the ERP's
own state rules, ``NotFound`` / ``ToolRejected`` / ``ToolUnavailable`` — and records every call it
receives, so tests can check what reached the order system.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from kefu.errors import NotFound
from kefu.flows import FlowEngine, FlowSpec, FlowTurn, demo_flows
from kefu.tools.orders import (
    CANCELLABLE,
    Order,
    OrderItem,
    OrderSystem,
    ReturnOrder,
    Shipment,
    ToolRejected,
    ToolUnavailable,
)

NOW = datetime(2026, 3, 10, 6, 0, tzinfo=UTC)  # 14:00 in Shanghai
PHONE = "1234"


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def make_order(
    order_id: str = "XP10023",
    *,
    status: str = "delivered",
    delivered_days_ago: int | None = 5,
    delivered_at: datetime | None = None,
    now: datetime = NOW,
) -> Order:
    if delivered_at is None and status == "delivered" and delivered_days_ago is not None:
        delivered_at = now - timedelta(days=delivered_days_ago)
    shipment = None
    if status in ("shipped", "delivered"):
        shipment = Shipment(
            carrier="顺丰速运",
            tracking_number="SF1234567890",
            status="delivered" if status == "delivered" else "in_transit",
            updated_at=now - timedelta(hours=3),
            events=["2026-03-08 09:00 【杭州仓】已发出", "2026-03-09 18:20 【上海转运中心】已到达"],
        )
    return Order(
        order_id=order_id,
        customer_phone_last4=PHONE,
        status=status,
        items=[OrderItem(sku="EAR-01", name="蓝牙耳机", quantity=1, price=Decimal("299.00"))],
        total=Decimal("299.00"),
        placed_at=now - timedelta(days=20),
        delivered_at=delivered_at,
        address="浙江省杭州市余杭区文一西路 100 号",
        shipment=shipment,
    )


class FakeOrders:
    """An in-memory ERP. ``down = True`` makes every call raise ToolUnavailable before doing anything."""

    def __init__(self, *orders: Order) -> None:
        self.orders = {o.order_id: o for o in orders}
        self.returns: dict[str, ReturnOrder] = {}  # by idempotency key
        self.invoices: dict[str, str] = {}
        self.writes: dict[str, Order] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.down = False

    def calls_to(self, name: str) -> list[dict[str, Any]]:
        return [args for called, args in self.calls if called == name]

    def _enter(self, name: str, **args: Any) -> None:
        self.calls.append((name, args))
        if self.down:
            raise ToolUnavailable("the fake ERP is down — try again later")

    def _order(self, order_id: str) -> Order:
        if order_id not in self.orders:
            raise NotFound(f"no order {order_id}")
        return self.orders[order_id]

    def get_order(self, order_id: str) -> Order:
        self._enter("get_order", order_id=order_id)
        return self._order(order_id)

    def verify_customer(self, order_id: str, phone_last4: str) -> bool:
        self._enter("verify_customer", order_id=order_id, phone_last4=phone_last4)
        return self._order(order_id).customer_phone_last4 == phone_last4

    def create_return(
        self, order_id: str, *, kind: str, reason: str, photos: list[str], idempotency_key: str
    ) -> ReturnOrder:
        self._enter(
            "create_return", order_id=order_id, kind=kind, reason=reason, photos=photos, key=idempotency_key
        )
        if idempotency_key in self.returns:
            return self.returns[idempotency_key]
        if self._order(order_id).status != "delivered":
            raise ToolRejected(f"order {order_id} is not delivered")
        made = ReturnOrder(
            f"RT20260310-{len(self.returns) + 1:06d}", order_id, kind, reason, "requested", NOW
        )
        self.returns[idempotency_key] = made
        return made

    def _write(self, order_id: str, key: str, **changes: Any) -> Order:
        if key in self.writes:
            return self.writes[key]
        order = self._order(order_id)
        if order.status not in CANCELLABLE:
            raise ToolRejected(f"order {order_id} is {order.status}")
        self.orders[order_id] = self.writes[key] = replace(order, **changes)
        return self.orders[order_id]

    def cancel_order(self, order_id: str, *, idempotency_key: str) -> Order:
        self._enter("cancel_order", order_id=order_id, key=idempotency_key)
        return self._write(order_id, idempotency_key, status="cancelled")

    def change_address(self, order_id: str, address: str, *, idempotency_key: str) -> Order:
        self._enter("change_address", order_id=order_id, address=address, key=idempotency_key)
        return self._write(order_id, idempotency_key, address=address)

    def request_invoice(
        self, order_id: str, *, kind: str, title: str, tax_id: str | None, idempotency_key: str
    ) -> str:
        self._enter(
            "request_invoice", order_id=order_id, kind=kind, title=title, tax_id=tax_id, key=idempotency_key
        )
        self._order(order_id)
        return self.invoices.setdefault(idempotency_key, f"IV20260310-{len(self.invoices) + 1:06d}")


_SPECS: dict[str, FlowSpec] = {}


def specs() -> dict[str, FlowSpec]:
    if not _SPECS:
        _SPECS.update(demo_flows())
    return _SPECS


def engine(orders: OrderSystem, clock: Clock | None = None) -> FlowEngine:
    return FlowEngine(specs(), orders, clock or Clock())


def talk(flow_engine: FlowEngine, flow: str, *texts: str, conversation: str = "c1") -> list[FlowTurn]:
    """Start ``flow`` with the first text, then send the rest one by one; every turn, in order."""
    turns = [flow_engine.start(flow, conversation, texts[0])]
    for text in texts[1:]:
        turns.append(flow_engine.advance(turns[-1].state, text))
    return turns
