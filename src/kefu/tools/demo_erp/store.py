"""The demo ERP's data: orders in its own SQLite file, its state rules, and idempotent writes.

Every write runs under an idempotency key: the key, a fingerprint of the request and the *outcome*
(status and JSON body, errors included) are stored in the same transaction as the change. A replay
returns the stored outcome; the same key with a different request is refused (422). Writes are
serialised by a lock (one process serves the demo ERP), so two concurrent replays cannot both write.

Identity checks are capped: after ``VERIFY_MAX_FAILURES`` wrong phone digits for one order within
``VERIFY_WINDOW``, every further check of that order is refused with ``TooManyAttempts`` (429) until
the oldest failure leaves the window — right digits included, so the digits cannot be guessed. A
successful check clears the order's failures. The cap equals the flows' own (3 asks per conversation),
so one conversation never meets it; it stops guessing across conversations.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, inspect, select, text

from kefu.errors import NotFound
from kefu.storage.engine import make_engine
from kefu.tools.demo_erp import rules
from kefu.tools.demo_erp.schema import (
    idempotency,
    metadata,
    order_items,
    orders,
    shipments,
    verify_failures,
)
from kefu.tools.orders import Order, OrderItem, Shipment, ToolRejected, TooManyAttempts
from kefu.tools.wire import Json, order_to_wire

Clock = Callable[[], datetime]
VERIFY_MAX_FAILURES = 3  # the demo flows ask for the phone digits at most 3 times too
VERIFY_WINDOW = timedelta(minutes=15)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Outcome:
    """What the ERP answered to a write: an HTTP-style status and a JSON body."""

    status: int
    body: Json
    replayed: bool = False


def error_body(code: str, message: str) -> Json:
    return {"error": {"code": code, "message": message}}


class ErpStore:
    def __init__(
        self,
        db_path: Path,
        clock: Clock = utc_now,
        *,
        verify_max_failures: int = VERIFY_MAX_FAILURES,
        verify_window: timedelta = VERIFY_WINDOW,
    ) -> None:
        self.engine: Engine = make_engine(f"sqlite:///{db_path}")
        self.clock = clock
        self.verify_max_failures, self.verify_window = verify_max_failures, verify_window
        self._write_lock = threading.Lock()
        metadata.create_all(self.engine)
        _add_missing_columns(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def reset(self) -> None:
        """Delete everything (children first)."""
        with self._write_lock, self.engine.begin() as conn:
            for table in reversed(metadata.sorted_tables):
                conn.execute(delete(table))

    # -- reads ---------------------------------------------------------------------------------------

    def get_order(self, order_id: str) -> Order:
        with self.engine.connect() as conn:
            return read_order(conn, order_id)

    def verify_customer(self, order_id: str, phone_last4: str) -> bool:
        """Whether the digits match; ``TooManyAttempts`` while the order is locked (see the module)."""
        now = self.clock().timestamp()
        with self._write_lock, self.engine.begin() as conn:
            order = read_order(conn, order_id)
            since = now - self.verify_window.total_seconds()
            failed = (
                conn.execute(
                    select(verify_failures.c.at)
                    .where(verify_failures.c.order_id == order_id, verify_failures.c.at > since)
                    .order_by(verify_failures.c.at)
                )
                .scalars()
                .all()
            )
            if len(failed) >= self.verify_max_failures:
                raise self._locked(order_id, retry_after=failed[0] - since)
            matches = order.customer_phone_last4 == phone_last4.strip()
            if matches:
                conn.execute(delete(verify_failures).where(verify_failures.c.order_id == order_id))
            else:
                conn.execute(insert(verify_failures).values(order_id=order_id, at=now))
        return matches

    def _locked(self, order_id: str, retry_after: float) -> TooManyAttempts:
        minutes = max(1, round(self.verify_window.total_seconds() / 60))
        seconds = max(1, math.ceil(retry_after))
        return TooManyAttempts(
            f"order {order_id}: {self.verify_max_failures} wrong phone digits within {minutes} minutes, so "
            f"identity checks for this order are paused for {seconds} s; a human agent must confirm the "
            "customer's identity",
            retry_after=seconds,
        )

    def count(self, table_name: str, **where: Any) -> int:
        table = metadata.tables[table_name]
        query = select(func.count()).select_from(table)
        for column, value in where.items():
            query = query.where(table.c[column] == value)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    # -- writes --------------------------------------------------------------------------------------

    def create_return(
        self, order_id: str, *, kind: str, reason: str, photos: list[str], idempotency_key: str
    ) -> Outcome:
        request: Json = {"op": "create_return", "order_id": order_id, "kind": kind, "reason": reason}
        request["photos"] = list(photos)

        def act(conn: Connection, now: datetime) -> Outcome:
            row = rules.create_return(conn, read_order(conn, order_id), request, now, idempotency_key)
            return Outcome(201, row)

        return self._idempotent(idempotency_key, request, act)

    def cancel_order(self, order_id: str, *, idempotency_key: str) -> Outcome:
        def act(conn: Connection, now: datetime) -> Outcome:
            rules.cancel(conn, read_order(conn, order_id))
            return Outcome(200, order_to_wire(read_order(conn, order_id)))

        return self._idempotent(idempotency_key, {"op": "cancel_order", "order_id": order_id}, act)

    def change_address(self, order_id: str, address: str, *, idempotency_key: str) -> Outcome:
        def act(conn: Connection, now: datetime) -> Outcome:
            rules.change_address(conn, read_order(conn, order_id), address)
            return Outcome(200, order_to_wire(read_order(conn, order_id)))

        request = {"op": "change_address", "order_id": order_id, "address": address}
        return self._idempotent(idempotency_key, request, act)

    def modify_items(
        self,
        order_id: str,
        *,
        skus: list[str],
        new_skus: list[str],
        payment_method_id: str,
        idempotency_key: str,
    ) -> Outcome:
        request: Json = {"op": "modify_items", "order_id": order_id, "skus": list(skus)}
        request |= {"new_skus": list(new_skus), "payment_method_id": payment_method_id}

        def act(conn: Connection, now: datetime) -> Outcome:
            rules.modify_items(conn, read_order(conn, order_id), request, now, idempotency_key)
            return Outcome(200, order_to_wire(read_order(conn, order_id)))

        return self._idempotent(idempotency_key, request, act)

    def request_invoice(
        self, order_id: str, *, kind: str, title: str, tax_id: str | None, idempotency_key: str
    ) -> Outcome:
        request: Json = {"op": "request_invoice", "order_id": order_id, "kind": kind, "title": title}
        request["tax_id"] = tax_id

        def act(conn: Connection, now: datetime) -> Outcome:
            row = rules.request_invoice(conn, read_order(conn, order_id), request, now, idempotency_key)
            return Outcome(201, row)

        return self._idempotent(idempotency_key, request, act)

    def _idempotent(self, key: str, request: Json, act: Callable[[Connection, datetime], Outcome]) -> Outcome:
        if not key or not key.strip():
            message = "writes need an Idempotency-Key (any unique string per intended action); send one"
            return Outcome(400, error_body("idempotency_key_missing", message))
        fingerprint = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
        now = self.clock()
        with self._write_lock, self.engine.begin() as conn:
            stored = conn.execute(select(idempotency).where(idempotency.c.key == key)).first()
            if stored is not None:
                return _replay(stored, key, fingerprint)
            outcome = _attempt(conn, now, act)
            conn.execute(
                insert(idempotency).values(
                    key=key,
                    fingerprint=fingerprint,
                    status=outcome.status,
                    body=outcome.body,
                    created_at=now.isoformat(),
                )
            )
        return outcome

    # -- loading (seed data, importers) --------------------------------------------------------------

    def add_rows(self, table_name: str, rows: Iterable[Json]) -> None:
        rows = list(rows)
        if rows:
            with self._write_lock, self.engine.begin() as conn:
                conn.execute(insert(metadata.tables[table_name]), rows)

    def add_orders(self, entries: Iterable[tuple[Order, str]]) -> int:
        """Insert ``(order, customer_id)`` pairs with their items and shipments; returns the count."""
        order_rows, item_rows, shipment_rows = [], [], []
        for order, customer_id in entries:
            order_rows.append(_order_row(order, customer_id))
            item_rows += [_item_row(order.order_id, item) for item in order.items]
            if order.shipment:
                shipment_rows.append(_shipment_row(order.order_id, order.shipment))
        self.add_rows("orders", order_rows)
        self.add_rows("order_items", item_rows)
        self.add_rows("shipments", shipment_rows)
        return len(order_rows)


def _add_missing_columns(engine: Engine) -> None:
    """Bring a demo-ERP file from an older kefu up to date (``create_all`` adds tables, not columns)."""
    have = {column["name"] for column in inspect(engine).get_columns("orders")}
    if "items_modified" not in have:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE orders ADD COLUMN items_modified BOOLEAN NOT NULL DEFAULT 0"))


def _replay(stored: Any, key: str, fingerprint: str) -> Outcome:
    if stored.fingerprint != fingerprint:
        message = (
            f"the Idempotency-Key {key!r} was already used for a different request; "
            "use a new key for a new action (reuse a key only to retry the very same request)"
        )
        return Outcome(422, error_body("idempotency_key_reused", message))
    return Outcome(stored.status, stored.body, replayed=True)


def _attempt(conn: Connection, now: datetime, act: Callable[[Connection, datetime], Outcome]) -> Outcome:
    """Run a write; a refusal becomes a stored outcome (rules check before they change anything)."""
    try:
        return act(conn, now)
    except (NotFound, ToolRejected) as exc:
        return Outcome(exc.status, exc.to_dict())


def read_order(conn: Connection, order_id: str) -> Order:
    row = conn.execute(select(orders).where(orders.c.order_id == order_id)).first()
    if row is None:
        raise NotFound(f"order {order_id} does not exist; check the order number")
    items = conn.execute(
        select(order_items).where(order_items.c.order_id == order_id).order_by(order_items.c.id)
    ).all()
    ship = conn.execute(select(shipments).where(shipments.c.order_id == order_id)).first()
    return Order(
        order_id=row.order_id,
        customer_phone_last4=row.phone_last4,
        status=row.status,
        items=[OrderItem(i.sku, i.name, i.quantity, rules.money(i.price)) for i in items],
        total=rules.money(row.total),
        placed_at=datetime.fromisoformat(row.placed_at),
        delivered_at=datetime.fromisoformat(row.delivered_at) if row.delivered_at else None,
        address=row.address,
        shipment=_shipment(ship) if ship else None,
        items_modified=bool(row.items_modified),
    )


def _shipment(row: Any) -> Shipment:
    updated = datetime.fromisoformat(row.updated_at)
    return Shipment(row.carrier, row.tracking_number, row.status, updated, list(row.events))


def _order_row(order: Order, customer_id: str) -> Json:
    return {
        "order_id": order.order_id,
        "customer_id": customer_id,
        "phone_last4": order.customer_phone_last4,
        "status": order.status,
        "total": str(order.total),
        "placed_at": order.placed_at.isoformat(),
        "delivered_at": order.delivered_at.isoformat() if order.delivered_at else None,
        "address": order.address,
        "items_modified": order.items_modified,
    }


def _item_row(order_id: str, item: OrderItem) -> Json:
    return {"order_id": order_id, "sku": item.sku, "name": item.name, "quantity": item.quantity} | {
        "price": str(item.price)
    }


def _shipment_row(order_id: str, s: Shipment) -> Json:
    return {
        "order_id": order_id,
        "carrier": s.carrier,
        "tracking_number": s.tracking_number,
        "status": s.status,
        "updated_at": s.updated_at.isoformat(),
        "events": list(s.events),
    }
