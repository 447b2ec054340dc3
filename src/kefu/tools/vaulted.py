"""The real values behind placeholders, given to the order system and nobody else.

The customer's message reaches the flows redacted (「改成[地址_1]」), so the model, the logs and the
audit chain only ever see placeholders; an address change needs the real address. ``VaultedOrderSystem``
sits innermost (under ``AuditedOrderSystem``, which records the placeholder) and puts the value back
from the conversation's PII vault just before the order system is called; the order that comes back
carries the placeholder again, so the reply that echoes it (and the history a model may read later)
holds no address.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from kefu.safety.pii import PiiVault, restore
from kefu.tools.audited import current_conversation
from kefu.tools.orders import Order, OrderSystem, ReturnOrder


class VaultedOrderSystem:
    """An ``OrderSystem`` whose ``change_address`` gets the address the customer typed."""

    def __init__(self, inner: OrderSystem, vault_for: Callable[[str], PiiVault]) -> None:
        self.inner = inner
        self._vault_for = vault_for

    def __getattr__(self, name: str) -> Any:  # close(), the demo ERP's server, …
        return getattr(self.inner, name)

    def _real(self, text: str) -> str:
        conversation = current_conversation()
        if conversation is None or "[" not in text:
            return text
        return restore(text, self._vault_for(conversation).known())

    def get_order(self, order_id: str) -> Order:
        return self.inner.get_order(order_id)

    def verify_customer(self, order_id: str, phone_last4: str) -> bool:
        return self.inner.verify_customer(order_id, phone_last4)

    def create_return(
        self, order_id: str, *, kind: str, reason: str, photos: list[str], idempotency_key: str
    ) -> ReturnOrder:
        return self.inner.create_return(
            order_id, kind=kind, reason=reason, photos=photos, idempotency_key=idempotency_key
        )

    def cancel_order(self, order_id: str, *, idempotency_key: str) -> Order:
        return self.inner.cancel_order(order_id, idempotency_key=idempotency_key)

    def change_address(self, order_id: str, address: str, *, idempotency_key: str) -> Order:
        real = self._real(address)
        order = self.inner.change_address(order_id, real, idempotency_key=idempotency_key)
        # The flow echoes the new address back: it gets the placeholder it sent, as it was given.
        return replace(order, address=address) if order.address == real else order

    def modify_items(
        self,
        order_id: str,
        *,
        skus: list[str],
        new_skus: list[str],
        payment_method_id: str,
        idempotency_key: str,
    ) -> Order:
        return self.inner.modify_items(
            order_id,
            skus=skus,
            new_skus=new_skus,
            payment_method_id=payment_method_id,
            idempotency_key=idempotency_key,
        )

    def request_invoice(
        self, order_id: str, *, kind: str, title: str, tax_id: str | None, idempotency_key: str
    ) -> str:
        return self.inner.request_invoice(
            order_id, kind=kind, title=title, tax_id=tax_id, idempotency_key=idempotency_key
        )
