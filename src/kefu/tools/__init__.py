"""Business integrations behind small seams: the order system (ERP) and the credit check.

The demo ERP (``kefu.tools.demo_erp``) is imported on demand: it pulls in FastAPI and SQLAlchemy.
"""

from kefu.tools.credit import CreditCheck, CreditResult, DemoCreditCheck, HttpCreditCheck
from kefu.tools.http_erp import HttpOrderSystem
from kefu.tools.orders import (
    Order,
    OrderItem,
    OrderSystem,
    ReturnOrder,
    Shipment,
    ToolAuthFailed,
    ToolRejected,
    ToolUnavailable,
    TooManyAttempts,
)

__all__ = [
    "CreditCheck",
    "CreditResult",
    "DemoCreditCheck",
    "HttpCreditCheck",
    "HttpOrderSystem",
    "Order",
    "OrderItem",
    "OrderSystem",
    "ReturnOrder",
    "Shipment",
    "TooManyAttempts",
    "ToolAuthFailed",
    "ToolRejected",
    "ToolUnavailable",
]
