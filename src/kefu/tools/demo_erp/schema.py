"""The demo ERP's own tables (SQLAlchemy Core). Money is stored as decimal text, datetimes as ISO 8601
text with an offset, so SQLite keeps both exactly."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Float, ForeignKey, Integer, MetaData, String, Table, Text

metadata = MetaData()

customers = Table(
    "customers",
    metadata,
    Column("customer_id", String, primary_key=True),
    Column("name", String, nullable=False),
    Column("email", String, nullable=False, default=""),
    Column("phone_last4", String(4), nullable=False),
    Column("address", Text, nullable=False, default=""),
)

products = Table(
    "products",
    metadata,
    Column("sku", String, primary_key=True),
    Column("product_id", String, nullable=False),
    Column("name", String, nullable=False),
    Column("options", JSON, nullable=False, default=dict),
    Column("price", String, nullable=False),
    Column("available", Boolean, nullable=False, default=True),
)

orders = Table(
    "orders",
    metadata,
    Column("order_id", String, primary_key=True),
    Column("customer_id", String, nullable=False, index=True),
    Column("phone_last4", String(4), nullable=False),
    Column("status", String, nullable=False),
    Column("total", String, nullable=False),
    Column("placed_at", String, nullable=False),
    Column("delivered_at", String),
    Column("address", Text, nullable=False),
    # swapped for other variants once (tau2's "pending (item modified)"): no further change before shipping
    Column("items_modified", Boolean, nullable=False, default=False),
)

order_items = Table(
    "order_items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("order_id", String, ForeignKey("orders.order_id", ondelete="CASCADE"), nullable=False, index=True),
    Column("sku", String, nullable=False),
    Column("name", String, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("price", String, nullable=False),
)

shipments = Table(
    "shipments",
    metadata,
    Column("order_id", String, ForeignKey("orders.order_id", ondelete="CASCADE"), primary_key=True),
    Column("carrier", String, nullable=False),
    Column("tracking_number", String, nullable=False),
    Column("status", String, nullable=False),
    Column("updated_at", String, nullable=False),
    Column("events", JSON, nullable=False, default=list),
)

returns = Table(
    "returns",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("return_id", String, unique=True),  # set right after insert: date + this row's id
    Column("order_id", String, ForeignKey("orders.order_id"), nullable=False, index=True),
    Column("kind", String, nullable=False),
    Column("reason", Text, nullable=False),
    Column("photos", JSON, nullable=False, default=list),
    Column("status", String, nullable=False),
    Column("created_at", String, nullable=False),
    Column("idempotency_key", String, nullable=False),
)

invoices = Table(
    "invoice_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("invoice_id", String, unique=True),
    Column("order_id", String, ForeignKey("orders.order_id"), nullable=False, index=True),
    Column("kind", String, nullable=False),
    Column("title", String, nullable=False),
    Column("tax_id", String),
    Column("created_at", String, nullable=False),
    Column("idempotency_key", String, nullable=False),
)

payment_methods = Table(  # the customers' own: where an item change's price difference goes
    "payment_methods",
    metadata,
    Column("method_id", String, primary_key=True),  # e.g. "gift_card_0000000", "alipay_C01"
    Column("customer_id", String, nullable=False, index=True),
    Column("kind", String, nullable=False),  # gift_card, credit_card, paypal, alipay, wechat_pay
    Column("label", String, nullable=False, default=""),  # e.g. "visa ****1234"
    Column("balance", String),  # gift cards only: decimal text
)

payments = Table(  # money moved after the order was placed (item changes' price differences)
    "payments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("order_id", String, ForeignKey("orders.order_id"), nullable=False, index=True),
    Column("kind", String, nullable=False),  # "payment" (the customer pays) or "refund"
    Column("amount", String, nullable=False),
    Column("method_id", String, nullable=False),
    Column("created_at", String, nullable=False),
    Column("idempotency_key", String, nullable=False),
)

idempotency = Table(
    "idempotency_keys",
    metadata,
    Column("key", String, primary_key=True),
    Column("fingerprint", String, nullable=False),  # sha256 of the operation and its arguments
    Column("status", Integer, nullable=False),
    Column("body", JSON, nullable=False),
    Column("created_at", String, nullable=False),
)

verify_failures = Table(  # wrong phone digits per order, for the attempt cap (epoch seconds)
    "verify_failures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("order_id", String, nullable=False, index=True),
    Column("at", Float, nullable=False),
)
