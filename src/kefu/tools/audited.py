"""Every order-system call on the audit chain: which tool, which order, what came back or what failed.

The conversation a call belongs to travels in a context variable that the dialog layer sets around a
flow turn (``calls_for``), so the flow engine and the tools need not know about auditing."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from typing import Any

from kefu.errors import KefuError
from kefu.tools.orders import Order, OrderSystem, ReturnOrder

Append = Callable[[str, dict[str, Any], str | None], object]
_conversation: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "kefu_tool_conversation", default=None
)


def current_conversation() -> str | None:
    """The conversation ``calls_for`` names in this context (None outside a flow turn)."""
    return _conversation.get()


@contextmanager
def calls_for(conversation_id: str) -> Iterator[None]:
    token = _conversation.set(conversation_id)
    try:
        yield
    finally:
        _conversation.reset(token)


class AuditedOrderSystem:
    """An ``OrderSystem`` that appends a ``tool_call`` audit record for every call, success or failure."""

    def __init__(self, inner: OrderSystem, append: Append) -> None:
        self.inner = inner
        self._append = append

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()

    def get_order(self, order_id: str) -> Order:
        return self._call("orders.get", order_id, {}, lambda: self.inner.get_order(order_id))

    def verify_customer(self, order_id: str, phone_last4: str) -> bool:
        # The digits themselves are not recorded: only whether they matched.
        return self._call(
            "orders.verify", order_id, {}, lambda: self.inner.verify_customer(order_id, phone_last4)
        )

    def create_return(
        self, order_id: str, *, kind: str, reason: str, photos: list[str], idempotency_key: str
    ) -> ReturnOrder:
        args = {"kind": kind, "reason": reason, "photos": len(photos), "idempotency_key": idempotency_key}
        return self._call(
            "orders.create_return",
            order_id,
            args,
            lambda: self.inner.create_return(
                order_id, kind=kind, reason=reason, photos=photos, idempotency_key=idempotency_key
            ),
        )

    def cancel_order(self, order_id: str, *, idempotency_key: str) -> Order:
        args = {"idempotency_key": idempotency_key}
        return self._call(
            "orders.cancel",
            order_id,
            args,
            lambda: self.inner.cancel_order(order_id, idempotency_key=idempotency_key),
        )

    def change_address(self, order_id: str, address: str, *, idempotency_key: str) -> Order:
        args = {"address": address, "idempotency_key": idempotency_key}
        return self._call(
            "orders.change_address",
            order_id,
            args,
            lambda: self.inner.change_address(order_id, address, idempotency_key=idempotency_key),
        )

    def modify_items(
        self,
        order_id: str,
        *,
        skus: list[str],
        new_skus: list[str],
        payment_method_id: str,
        idempotency_key: str,
    ) -> Order:
        args = {"skus": list(skus), "new_skus": list(new_skus), "payment_method_id": payment_method_id}
        return self._call(
            "orders.modify_items",
            order_id,
            args | {"idempotency_key": idempotency_key},
            lambda: self.inner.modify_items(
                order_id,
                skus=skus,
                new_skus=new_skus,
                payment_method_id=payment_method_id,
                idempotency_key=idempotency_key,
            ),
        )

    def request_invoice(
        self, order_id: str, *, kind: str, title: str, tax_id: str | None, idempotency_key: str
    ) -> str:
        args = {"kind": kind, "title": title, "tax_id": tax_id, "idempotency_key": idempotency_key}
        return self._call(
            "orders.request_invoice",
            order_id,
            args,
            lambda: self.inner.request_invoice(
                order_id, kind=kind, title=title, tax_id=tax_id, idempotency_key=idempotency_key
            ),
        )

    def _call(self, tool: str, order_id: str, args: dict[str, Any], run: Callable[[], Any]) -> Any:
        record: dict[str, Any] = {"tool": tool, "order_id": order_id, "args": args}
        try:
            result = run()
        except KefuError as exc:
            record.update(ok=False, error={"code": exc.code, "message": exc.message})
            self._append("tool_call", record, _conversation.get())
            raise
        record.update(ok=True, result=_summary(result))
        self._append("tool_call", record, _conversation.get())
        return result


def _summary(result: Any) -> Any:
    if isinstance(result, Order):
        return {"order_id": result.order_id, "status": result.status}
    if is_dataclass(result) and not isinstance(result, type):
        return {k: str(v) for k, v in asdict(result).items()}
    return result
