"""The demo ERP's own state rules — not shop policy (return windows etc. are the flow engine's).

- cancel, change the address, modify the items: only while the order is ``pending`` or ``paid`` (not
  shipped yet) and its items have not been modified — that may happen once (tau2's "pending (item
  modified)"), each line to another available variant of the same product, the price difference paid
  with or refunded to one of the customer's payment methods (a gift card must cover what it pays);
- returns and exchanges: only for ``delivered`` orders, and one open request per order;
- invoices: only for paid orders (not ``pending``/``cancelled``); a VAT special invoice needs a tax id.

Each rule checks before it writes, so a refusal leaves nothing behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Table, insert, select, update

from kefu.tools.demo_erp.schema import (
    invoices,
    order_items,
    orders,
    payment_methods,
    payments,
    products,
    returns,
)
from kefu.tools.orders import CANCELLABLE, INVOICE_KINDS, RETURN_KINDS, Order, ReturnOrder, ToolRejected
from kefu.tools.wire import Json, return_to_wire

CHINA_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")
OPEN_RETURN = "requested"


class Refused(ToolRejected):
    """The request clashes with the order's state (409)."""


class Unprocessable(ToolRejected):
    """The request itself is unusable (422), e.g. an unknown return kind or an empty address."""

    code = "invalid_request"
    status = 422


def money(text: str) -> Decimal:
    return Decimal(text).quantize(Decimal("0.01"))


def traceable_id(prefix: str, now: datetime, seq: int) -> str:
    """``RT20261124-000123``: prefix, the day in Asia/Shanghai and the row's sequence number."""
    return f"{prefix}{now.astimezone(CHINA_TZ):%Y%m%d}-{seq:06d}"


def create_return(conn: Connection, order: Order, request: Json, now: datetime, key: str) -> Json:
    kind, reason = request["kind"], request["reason"].strip()
    if kind not in RETURN_KINDS:
        raise Unprocessable(f"kind must be one of {', '.join(RETURN_KINDS)}, not {kind!r}")
    if not reason:
        raise Unprocessable("a return or exchange needs a reason")
    if order.status != "delivered":
        raise Refused(
            f"order {order.order_id} is {order.status}; returns and exchanges are only possible "
            "for delivered orders"
        )
    _refuse_if_open_return(conn, order.order_id)
    values = {"order_id": order.order_id, "kind": kind, "reason": reason, "photos": request["photos"]}
    values |= {"status": OPEN_RETURN, "created_at": now.isoformat(), "idempotency_key": key}
    seq = _insert(conn, returns, values)
    return_id = traceable_id("RT", now, seq)
    conn.execute(update(returns).where(returns.c.id == seq).values(return_id=return_id))
    return return_to_wire(ReturnOrder(return_id, order.order_id, kind, reason, OPEN_RETURN, now))


def _refuse_if_open_return(conn: Connection, order_id: str) -> None:
    query = select(returns.c.return_id, returns.c.kind).where(
        returns.c.order_id == order_id, returns.c.status == OPEN_RETURN
    )
    existing = conn.execute(query).first()
    if existing is not None:
        raise Refused(
            f"order {order_id} already has an open {existing.kind} request {existing.return_id}; "
            "follow that request up instead of opening a second one"
        )


def require_changeable(order: Order, only_before_shipping: str) -> None:
    """The rule for every change before shipping (cancel, address, items, payment): the order is
    pending or paid, and its items have not been modified — that happens once and locks the order."""
    if order.status not in CANCELLABLE:
        raise Refused(f"order {order.order_id} is {order.status}; {only_before_shipping}")
    if order.items_modified:
        raise Refused(
            f"the items of order {order.order_id} were already modified, which can be done only once and "
            "locks the order: it can no longer be cancelled, re-addressed or modified; offer the customer "
            "a human agent"
        )


def cancel(conn: Connection, order: Order) -> None:
    require_changeable(order, "only pending or paid orders (not yet shipped) can be cancelled")
    _set(conn, order.order_id, status="cancelled")


def change_address(conn: Connection, order: Order, address: str) -> None:
    if not address.strip():
        raise Unprocessable("the new address is empty")
    require_changeable(order, "the address can only be changed before the order ships")
    _set(conn, order.order_id, address=address.strip())


def modify_items(conn: Connection, order: Order, request: Json, now: datetime, key: str) -> None:
    """Swap lines for other variants of the same product (see the module), once per order."""
    skus, new_skus = list(request["skus"]), list(request["new_skus"])
    method_id = request["payment_method_id"].strip()
    if not skus or len(skus) != len(new_skus):
        raise Unprocessable(
            "name at least one item to change and, in the same order, the variant each becomes "
            f"(skus and new_skus of equal length; got {len(skus)} and {len(new_skus)})"
        )
    if not method_id:
        raise Unprocessable("name the payment method that pays or receives the price difference")
    require_changeable(order, "items can only be modified before the order ships")
    swaps = _swaps(conn, order.order_id, skus, new_skus)
    difference = sum(((new.price - line.price) * line.quantity for line, new in swaps), Decimal("0"))
    _settle(conn, order.order_id, method_id, difference, now, key)
    for line, new in swaps:
        values = {"sku": new.sku, "name": new.name, "price": str(new.price)}
        conn.execute(update(order_items).where(order_items.c.id == line.id).values(**values))
    total = order.total + difference
    _set(conn, order.order_id, items_modified=True, total=str(total.quantize(Decimal("0.01"))))


@dataclass(frozen=True)
class _Line:
    id: int
    sku: str
    name: str
    quantity: int
    price: Decimal


@dataclass(frozen=True)
class _Variant:
    sku: str
    name: str  # as an order line shows it: the product's name and the variant's options
    price: Decimal


def _swaps(
    conn: Connection, order_id: str, skus: list[str], new_skus: list[str]
) -> list[tuple[_Line, _Variant]]:
    """Each (order line, catalogue variant) pair; a sku named twice takes the next line with that sku."""
    rows = conn.execute(
        select(order_items).where(order_items.c.order_id == order_id).order_by(order_items.c.id)
    ).all()
    free = [_Line(r.id, r.sku, r.name, r.quantity, money(r.price)) for r in rows]
    have = ", ".join(f"{line.sku} ({line.name})" for line in free)
    swaps = []
    for sku, new_sku in zip(skus, new_skus, strict=True):
        line = next((candidate for candidate in free if candidate.sku == sku), None)
        if line is None:
            raise Unprocessable(f"order {order_id} has no (further) line with item {sku}; its items: {have}")
        free.remove(line)
        swaps.append((line, _variant(conn, sku, new_sku)))
    return swaps


def _variant(conn: Connection, sku: str, new_sku: str) -> _Variant:
    if new_sku == sku:
        raise Unprocessable(f"item {sku} would stay the same; name a different option of the product")
    old = conn.execute(select(products).where(products.c.sku == sku)).first()
    new = conn.execute(select(products).where(products.c.sku == new_sku)).first()
    if old is None or new is None:
        missing = sku if old is None else new_sku
        raise Unprocessable(f"item {missing} is not in the catalogue; check the item number")
    if new.product_id != old.product_id:
        raise Unprocessable(
            f"{new_sku} ({new.name}) is not an option of the same product as {sku} ({old.name}); items can "
            "only change to another option of the same product"
        )
    if not new.available:
        raise Refused(f"{new_sku} ({new.name}) is not available at the moment; choose another option")
    options = ", ".join(f"{k} {v}" for k, v in (new.options or {}).items())
    return _Variant(new_sku, f"{new.name} ({options})" if options else new.name, money(new.price))


def _settle(
    conn: Connection, order_id: str, method_id: str, difference: Decimal, now: datetime, key: str
) -> None:
    """The customer pays a positive difference with ``method_id``, or gets a negative one back to it."""
    customer = conn.execute(select(orders.c.customer_id).where(orders.c.order_id == order_id)).scalar_one()
    method = conn.execute(
        select(payment_methods).where(
            payment_methods.c.method_id == method_id, payment_methods.c.customer_id == customer
        )
    ).first()
    if method is None:
        raise Unprocessable(
            f"{method_id} is not a payment method of the customer who placed order {order_id}; "
            "use one of their own"
        )
    if method.kind == "gift_card":
        balance = money(method.balance or "0")
        if difference > balance:
            raise Refused(
                f"gift card {method_id} holds {balance}, less than the price difference {difference}; "
                "choose another payment method"
            )
        new_balance = str((balance - difference).quantize(Decimal("0.01")))
        conn.execute(
            update(payment_methods)
            .where(payment_methods.c.method_id == method_id)
            .values(balance=new_balance)
        )
    if difference:
        kind = "payment" if difference > 0 else "refund"
        amount = str(abs(difference).quantize(Decimal("0.01")))
        values = {"order_id": order_id, "kind": kind, "amount": amount, "method_id": method_id}
        _insert(conn, payments, values | {"created_at": now.isoformat(), "idempotency_key": key})


def request_invoice(conn: Connection, order: Order, request: Json, now: datetime, key: str) -> Json:
    kind, title, tax_id = request["kind"], request["title"].strip(), request["tax_id"]
    _check_invoice(order, kind, title, tax_id)
    values = {"order_id": order.order_id, "kind": kind, "title": title, "tax_id": tax_id}
    values |= {"created_at": now.isoformat(), "idempotency_key": key}
    seq = _insert(conn, invoices, values)
    invoice_id = traceable_id("IV", now, seq)
    conn.execute(update(invoices).where(invoices.c.id == seq).values(invoice_id=invoice_id))
    body = {"invoice_request_id": invoice_id, "order_id": order.order_id, "kind": kind, "title": title}
    return body | {"tax_id": tax_id, "created_at": now.isoformat()}


def _check_invoice(order: Order, kind: str, title: str, tax_id: str | None) -> None:
    if kind not in INVOICE_KINDS:
        raise Unprocessable(f"kind must be one of {', '.join(INVOICE_KINDS)}, not {kind!r}")
    if not title:
        raise Unprocessable("an invoice needs a title (a person's name, 个人, or a company name)")
    if kind == "vat_special" and not (tax_id or "").strip():
        raise Unprocessable("a VAT special invoice (vat_special) needs the company's tax id")
    if order.status in ("pending", "cancelled"):
        raise Refused(f"order {order.order_id} is {order.status}; only paid orders can be invoiced")


def _insert(conn: Connection, table: Table, values: Json) -> int:
    key = conn.execute(insert(table).values(**values)).inserted_primary_key
    assert key is not None
    return int(key[0])


def _set(conn: Connection, order_id: str, **values: Any) -> None:
    conn.execute(update(orders).where(orders.c.order_id == order_id).values(**values))
