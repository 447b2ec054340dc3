"""The order system (ERP) seam: value types, the ``OrderSystem`` protocol and its two errors.

The ERP enforces only its own state rules (no cancelling, re-addressing or modifying a shipped order;
an order's items may be modified once, which locks it against any further change; returns only for
delivered orders); *policy* — return windows, what counts as a quality problem — belongs to the
flow engine. Every write carries an idempotency key: the same key always yields the same result, so
a retried or replayed request never creates a second return, cancellation, item change or invoice
request.

    KefuError
    ├── NotFound               the order id does not exist (404)
    ├── ToolUnavailable        the ERP is down, slow or refuses our credentials (503): offer a human
    │   └── ToolAuthFailed     the ERP rejected kefu's token (operator must fix the configuration)
    └── ToolRejected           the ERP refused the request (409), its reason in the message
        └── TooManyAttempts    identity checks on this order failed too often (429): a human must help

All datetimes are timezone-aware (UTC on the wire); money is ``Decimal``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol, runtime_checkable

from kefu.errors import KefuError

ORDER_STATUSES = ("pending", "paid", "shipped", "delivered", "cancelled")
RETURN_KINDS = ("return", "exchange")
INVOICE_KINDS = ("electronic", "vat_special")  # 电子普通发票 · 增值税专用发票 (needs a tax id)
CANCELLABLE = ("pending", "paid")  # also the statuses in which the address or the items may change


class ToolUnavailable(KefuError):
    """The order system cannot be reached or did not answer in time; the customer should be offered a
    human agent."""

    code = "tool_unavailable"
    status = 503


class ToolAuthFailed(ToolUnavailable):
    """The order system refused kefu's credentials: unavailable to the customer, a config fix for the
    operator."""

    code = "tool_auth_failed"


class ToolRejected(KefuError):
    """The order system understood the request and refused it (e.g. cancelling a shipped order)."""

    code = "tool_rejected"
    status = 409


class TooManyAttempts(ToolRejected):
    """Too many failed identity checks on one order in a short time (429): the order system refuses
    further checks for a while, so guessing the phone digits is pointless; a human agent helps."""

    code = "too_many_attempts"
    status = 429

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds until the order may be checked again, when known


@dataclass(frozen=True)
class OrderItem:
    sku: str
    name: str
    quantity: int
    price: Decimal


@dataclass(frozen=True)
class Shipment:
    carrier: str
    tracking_number: str
    status: str  # "in_transit" | "out_for_delivery" | "delivered" | "exception"
    updated_at: datetime
    events: list[str]  # oldest first, e.g. "2026-11-20 10:02 【杭州转运中心】已发出"


@dataclass(frozen=True)
class Order:
    order_id: str
    customer_phone_last4: str
    status: str  # one of ORDER_STATUSES
    items: list[OrderItem]
    total: Decimal
    placed_at: datetime
    delivered_at: datetime | None
    address: str
    shipment: Shipment | None
    # The items were swapped for other variants once (tau2's "pending (item modified)"): that can happen
    # only once, and afterwards the order can no longer be cancelled, re-addressed or modified.
    items_modified: bool = False


@dataclass(frozen=True)
class ReturnOrder:
    return_id: str  # e.g. "RT20261124-000123": creation date (Asia/Shanghai) and a sequence number
    order_id: str
    kind: str  # one of RETURN_KINDS
    reason: str
    status: str  # "requested" when created
    created_at: datetime


@runtime_checkable
class OrderSystem(Protocol):
    def get_order(self, order_id: str) -> Order:
        """The order, or ``NotFound`` naming the order id."""
        ...

    def verify_customer(self, order_id: str, phone_last4: str) -> bool:
        """Whether the digits match the order's phone; ``TooManyAttempts`` once the order system has
        seen too many wrong digits for this order recently (even when these are right)."""
        ...

    def create_return(
        self, order_id: str, *, kind: str, reason: str, photos: list[str], idempotency_key: str
    ) -> ReturnOrder:
        """Same key → the same ``ReturnOrder``, never a second one."""
        ...

    def cancel_order(self, order_id: str, *, idempotency_key: str) -> Order: ...

    def change_address(self, order_id: str, address: str, *, idempotency_key: str) -> Order: ...

    def modify_items(
        self,
        order_id: str,
        *,
        skus: list[str],
        new_skus: list[str],
        payment_method_id: str,
        idempotency_key: str,
    ) -> Order:
        """Swap order lines for other variants of the same product, once per unshipped order: line by
        line, ``skus[i]`` (the next line with that sku) becomes ``new_skus[i]``. The price difference is
        paid with, or refunded to, ``payment_method_id`` (one of the customer's); the order comes back
        with ``items_modified`` set."""
        ...

    def request_invoice(
        self, order_id: str, *, kind: str, title: str, tax_id: str | None, idempotency_key: str
    ) -> str:
        """Returns the invoice request id, e.g. "IV20261124-000045"."""
        ...
