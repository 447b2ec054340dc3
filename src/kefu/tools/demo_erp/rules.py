"""The demo ERP's own state rules — not shop policy (return windows etc. are the flow engine's).

- cancel and change the address: only while the order is ``pending`` or ``paid`` (not shipped yet);
- returns and exchanges: only for ``delivered`` orders, and one open request per order;
- invoices: only for paid orders (not ``pending``/``cancelled``); a VAT special invoice needs a tax id.

Each rule checks before it writes, so a refusal leaves nothing behind.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Table, insert, select, update

from kefu.tools.demo_erp.schema import invoices, orders, returns
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


def cancel(conn: Connection, order: Order) -> None:
    if order.status not in CANCELLABLE:
        raise Refused(
            f"order {order.order_id} is {order.status}; only pending or paid orders (not yet shipped) "
            "can be cancelled"
        )
    _set(conn, order.order_id, status="cancelled")


def change_address(conn: Connection, order: Order, address: str) -> None:
    if not address.strip():
        raise Unprocessable("the new address is empty")
    if order.status not in CANCELLABLE:
        raise Refused(
            f"order {order.order_id} is {order.status}; the address can only be changed before the "
            "order ships"
        )
    _set(conn, order.order_id, address=address.strip())


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
