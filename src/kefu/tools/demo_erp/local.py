"""``DemoOrderSystem``: the ``OrderSystem`` seam straight over an ``ErpStore``, no HTTP.

Same rules, same idempotency and same errors as ``HttpOrderSystem`` talking to the demo ERP — for
flow tests, demos and evaluations that should not need a second process.
"""

from __future__ import annotations

from kefu.tools.demo_erp.store import ErpStore, Outcome
from kefu.tools.orders import Order, ReturnOrder
from kefu.tools.wire import Json, order_from_wire, raise_for_outcome, return_from_wire


class DemoOrderSystem:
    def __init__(self, store: ErpStore) -> None:
        self.store = store

    def get_order(self, order_id: str) -> Order:
        return self.store.get_order(order_id)

    def verify_customer(self, order_id: str, phone_last4: str) -> bool:
        return self.store.verify_customer(order_id, phone_last4)

    def create_return(
        self, order_id: str, *, kind: str, reason: str, photos: list[str], idempotency_key: str
    ) -> ReturnOrder:
        outcome = self.store.create_return(
            order_id, kind=kind, reason=reason, photos=photos, idempotency_key=idempotency_key
        )
        return return_from_wire(_ok(outcome, order_id))

    def cancel_order(self, order_id: str, *, idempotency_key: str) -> Order:
        outcome = self.store.cancel_order(order_id, idempotency_key=idempotency_key)
        return order_from_wire(_ok(outcome, order_id))

    def change_address(self, order_id: str, address: str, *, idempotency_key: str) -> Order:
        outcome = self.store.change_address(order_id, address, idempotency_key=idempotency_key)
        return order_from_wire(_ok(outcome, order_id))

    def modify_items(
        self,
        order_id: str,
        *,
        skus: list[str],
        new_skus: list[str],
        payment_method_id: str,
        idempotency_key: str,
    ) -> Order:
        outcome = self.store.modify_items(
            order_id,
            skus=skus,
            new_skus=new_skus,
            payment_method_id=payment_method_id,
            idempotency_key=idempotency_key,
        )
        return order_from_wire(_ok(outcome, order_id))

    def request_invoice(
        self, order_id: str, *, kind: str, title: str, tax_id: str | None, idempotency_key: str
    ) -> str:
        outcome = self.store.request_invoice(
            order_id, kind=kind, title=title, tax_id=tax_id, idempotency_key=idempotency_key
        )
        return str(_ok(outcome, order_id)["invoice_request_id"])


def _ok(outcome: Outcome, order_id: str) -> Json:
    raise_for_outcome(outcome.status, outcome.body, subject=f"order {order_id}", where="the demo ERP store")
    return outcome.body
