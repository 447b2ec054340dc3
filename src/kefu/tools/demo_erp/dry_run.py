"""``DryRunOrders``: the demo ERP's answer to a write without the write — for policy reports.

Reads go to the store as they are; each write runs the ERP's own rule checks (``rules.py``) inside a
transaction that is rolled back, so the caller learns what the ERP *would* answer (the result, or the
``ToolRejected`` / ``NotFound`` it would raise) and nothing changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from kefu.tools.demo_erp import rules
from kefu.tools.demo_erp.local import DemoOrderSystem
from kefu.tools.demo_erp.store import ErpStore, read_order
from kefu.tools.orders import Order, ReturnOrder
from kefu.tools.wire import order_from_wire, order_to_wire, return_from_wire


class DryRunOrders:
    """The ERP's reads as they are; each write runs the ERP's own rule checks in a transaction that
    is rolled back — what it *would* answer, with nothing changed."""

    def __init__(self, store: ErpStore) -> None:
        self.store = store
        self._reads = DemoOrderSystem(store)

    def get_order(self, order_id: str) -> Order:
        return self._reads.get_order(order_id)

    def verify_customer(self, order_id: str, phone_last4: str) -> bool:
        return self._reads.verify_customer(order_id, phone_last4)

    def create_return(
        self, order_id: str, *, kind: str, reason: str, photos: list[str], idempotency_key: str
    ) -> ReturnOrder:
        request = {"kind": kind, "reason": reason, "photos": photos}
        now = self.store.clock()
        body = self._try(
            lambda c: rules.create_return(c, read_order(c, order_id), request, now, idempotency_key)
        )
        return return_from_wire(body)

    def cancel_order(self, order_id: str, *, idempotency_key: str) -> Order:
        return self._changed(order_id, lambda c, order: rules.cancel(c, order))

    def change_address(self, order_id: str, address: str, *, idempotency_key: str) -> Order:
        return self._changed(order_id, lambda c, order: rules.change_address(c, order, address))

    def modify_items(
        self,
        order_id: str,
        *,
        skus: list[str],
        new_skus: list[str],
        payment_method_id: str,
        idempotency_key: str,
    ) -> Order:
        request = {"skus": skus, "new_skus": new_skus, "payment_method_id": payment_method_id}
        now = self.store.clock()
        return self._changed(
            order_id, lambda c, order: rules.modify_items(c, order, request, now, idempotency_key)
        )

    def request_invoice(
        self, order_id: str, *, kind: str, title: str, tax_id: str | None, idempotency_key: str
    ) -> str:
        request = {"kind": kind, "title": title, "tax_id": tax_id}
        now = self.store.clock()
        body = self._try(
            lambda c: rules.request_invoice(c, read_order(c, order_id), request, now, idempotency_key)
        )
        return str(body["invoice_request_id"])

    def _changed(self, order_id: str, change: Callable[[Connection, Order], None]) -> Order:
        def run(conn: Connection) -> dict[str, Any]:
            change(conn, read_order(conn, order_id))
            return order_to_wire(read_order(conn, order_id))

        return order_from_wire(self._try(run))

    def _try(self, run: Callable[[Connection], dict[str, Any]]) -> dict[str, Any]:
        with self.store.engine.connect() as conn:
            transaction = conn.begin()
            try:
                return run(conn)
            finally:
                transaction.rollback()
