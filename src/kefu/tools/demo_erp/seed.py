"""Seed data of the demo shop 小铺优选: 20 orders in every status, dated *relative to now*.

``seed_demo(store)`` wipes the store and writes these orders with times computed from the store's
clock, so "delivered 5 days ago" is true on any day the demo ERP starts. Days are whole days before
now (same time of day); the return windows count from the day after delivery (see returns.md), so
``delivered 7`` is the last day of 7 天无理由 and ``delivered 15`` the last day for quality returns.

| order  | status    | delivered | phone last4 | customer | items                                  | what it demonstrates                |
|--------|-----------|-----------|-------------|----------|----------------------------------------|-------------------------------------|
| XP1001 | delivered | 5 days    | 8001        | 张伟     | 降噪蓝牙耳机 Pro ×1 ¥299               | headphones inside 7 days: no-reason |
| XP1002 | delivered | 8 days    | 9002        | 李娜     | 降噪蓝牙耳机 Pro ×1 ¥299               | headphones day 8: quality only      |
| XP1003 | delivered | 2 days    | 7003        | 王芳     | 纯棉圆领T恤 白 L ×2 ¥79                | size exchange                       |
| XP1004 | delivered | 7 days    | 6004        | 刘洋     | 磁吸手机壳 iPhone 15 ×1 ¥59            | last day of 7 天无理由              |
| XP1005 | delivered | 15 days   | 5005        | 陈静     | 负离子电吹风 ×1 ¥199                   | last day for quality returns        |
| XP1006 | delivered | 16 days   | 9002        | 李娜     | 头戴式蓝牙耳机 ×1 ¥399                 | past 15 days: warranty              |
| XP1007 | delivered | 40 days   | 3006        | 赵磊     | 65W 氮化镓充电器 ×1 ¥129                | long past: warranty / human         |
| XP1008 | delivered | 1 day     | 8007        | 孙丽     | 定制刻字蓝牙耳机 ×1 ¥349               | custom goods: no 7 天无理由         |
| XP1009 | delivered | 3 days    | 7003        | 王芳     | 纯棉袜子 5 双装 ×1 ¥39                 | intimate wear: no 7 天无理由        |
| XP1010 | delivered | 10 days   | 6004        | 刘洋     | 便携蓝牙音箱 ×1 ¥259                   | day 10: quality only                |
| XP1011 | delivered | 0 days    | 8001        | 张伟     | 真无线运动耳机 ×1 ¥199                 | delivered today                     |
| XP1012 | delivered | 95 days   | 5005        | 陈静     | 智能电饭煲 ×1 ¥459                     | invoice past 90 days                |
| XP1013 | shipped   | —         | 8001        | 张伟     | 降噪蓝牙耳机 Pro ×1 ¥299               | in transit: cannot cancel           |
| XP1014 | shipped   | —         | 3006        | 赵磊     | 空气炸锅 ×1 ¥329                       | out for delivery                    |
| XP1015 | shipped   | —         | 6008        | 周杰     | 编织快充数据线 ×3 ¥29                  | delivery exception (remote area)    |
| XP1016 | paid      | —         | 9002        | 李娜     | 纯棉圆领T恤 黑 M ×1 ¥79 + 手机壳 ×1 ¥59 | cancel / change address             |
| XP1017 | paid      | —         | 8007        | 孙丽     | 真无线运动耳机 ×1 ¥199                 | cancel / change address             |
| XP1018 | pending   | —         | 6008        | 周杰     | 负离子电吹风 ×1 ¥199                   | unpaid                              |
| XP1019 | cancelled | —         | 5005        | 陈静     | 便携蓝牙音箱 ×1 ¥259                   | already cancelled                   |
| XP1020 | delivered | 12 days   | 3006        | 赵磊     | 降噪蓝牙耳机 Pro ×1 ¥299               | headphones day 12: quality only     |

Items of an unshipped order may be swapped once for another option of the same product (``PRODUCT_OF``):
the T-shirt in white/black/grey (grey M sold out), the sports earbuds in white ¥199 / black ¥219, the
phone case for iPhone 15 ¥59 / 15 Pro ¥69. Every customer pays with 支付宝 (``alipay_C01`` …); 李娜 also
has a gift card with ¥50 (``gift_card_C02``), 孙丽 one with ¥10 (``gift_card_C07``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from kefu.tools.demo_erp.rules import CHINA_TZ
from kefu.tools.demo_erp.store import ErpStore
from kefu.tools.orders import Order, OrderItem, Shipment

# customer id → (name, phone last4, address)
CUSTOMERS = {
    "C01": ("张伟", "8001", "浙江省杭州市西湖区文三路 100 号 3 幢 502 室"),
    "C02": ("李娜", "9002", "上海市浦东新区张杨路 500 号 12 楼"),
    "C03": ("王芳", "7003", "北京市朝阳区建国路 88 号 2 号楼 1801 室"),
    "C04": ("刘洋", "6004", "广东省深圳市南山区深南大道 9988 号"),
    "C05": ("陈静", "5005", "四川省成都市武侯区天府大道北段 1700 号"),
    "C06": ("赵磊", "3006", "江苏省南京市鼓楼区中山路 18 号"),
    "C07": ("孙丽", "8007", "湖北省武汉市洪山区珞喻路 129 号"),
    "C08": ("周杰", "6008", "新疆维吾尔自治区乌鲁木齐市天山区解放北路 200 号"),
}

# sku → (name, price)
PRODUCTS = {
    "HP-ANC-PRO": ("降噪蓝牙耳机 Pro 黑色", "299.00"),
    "HP-OVER-EAR": ("头戴式蓝牙耳机 灰色", "399.00"),
    "HP-TWS-SPORT": ("真无线运动耳机 白色", "199.00"),
    "HP-CUSTOM": ("定制刻字蓝牙耳机", "349.00"),
    "TS-WHITE-L": ("纯棉圆领T恤 白色 L", "79.00"),
    "TS-BLACK-M": ("纯棉圆领T恤 黑色 M", "79.00"),
    "SOCKS-5": ("纯棉袜子 5 双装", "39.00"),
    "CASE-IP15": ("磁吸手机壳 iPhone 15", "59.00"),
    "DRYER-ION": ("负离子电吹风", "199.00"),
    "CHARGER-65W": ("65W 氮化镓充电器", "129.00"),
    "SPEAKER-MINI": ("便携蓝牙音箱", "259.00"),
    "COOKER-SMART": ("智能电饭煲", "459.00"),
    "FRYER-AIR": ("空气炸锅", "329.00"),
    "CABLE-USBC": ("编织快充数据线 USB-C", "29.00"),
    "TS-WHITE-M": ("纯棉圆领T恤 白色 M", "79.00"),
    "TS-GREY-M": ("纯棉圆领T恤 灰色 M", "79.00"),
    "HP-TWS-SPORT-BLACK": ("真无线运动耳机 黑色", "219.00"),
    "CASE-IP15-PRO": ("磁吸手机壳 iPhone 15 Pro", "69.00"),
}
# sku → product: options of one product (an order's items may change among them); other skus stand alone
PRODUCT_OF = {
    **dict.fromkeys(("TS-WHITE-L", "TS-BLACK-M", "TS-WHITE-M", "TS-GREY-M"), "TSHIRT"),
    **dict.fromkeys(("HP-TWS-SPORT", "HP-TWS-SPORT-BLACK"), "HP-TWS"),
    **dict.fromkeys(("CASE-IP15", "CASE-IP15-PRO"), "CASE-MAG"),
}
SOLD_OUT = frozenset({"TS-GREY-M"})
# payment method id → (customer, kind, label, gift card balance)
PAYMENT_METHODS: dict[str, tuple[str, str, str, str | None]] = {
    **{f"alipay_{cid}": (cid, "alipay", "支付宝", None) for cid in CUSTOMERS},
    "gift_card_C02": ("C02", "gift_card", "礼品卡", "50.00"),
    "gift_card_C07": ("C07", "gift_card", "礼品卡", "10.00"),
}

# order id → (customer, status, days since delivery (None if not delivered), shipment state, [(sku, qty)])
SEED: dict[str, tuple[str, str, int | None, str | None, list[tuple[str, int]]]] = {
    "XP1001": ("C01", "delivered", 5, "delivered", [("HP-ANC-PRO", 1)]),
    "XP1002": ("C02", "delivered", 8, "delivered", [("HP-ANC-PRO", 1)]),
    "XP1003": ("C03", "delivered", 2, "delivered", [("TS-WHITE-L", 2)]),
    "XP1004": ("C04", "delivered", 7, "delivered", [("CASE-IP15", 1)]),
    "XP1005": ("C05", "delivered", 15, "delivered", [("DRYER-ION", 1)]),
    "XP1006": ("C02", "delivered", 16, "delivered", [("HP-OVER-EAR", 1)]),
    "XP1007": ("C06", "delivered", 40, "delivered", [("CHARGER-65W", 1)]),
    "XP1008": ("C07", "delivered", 1, "delivered", [("HP-CUSTOM", 1)]),
    "XP1009": ("C03", "delivered", 3, "delivered", [("SOCKS-5", 1)]),
    "XP1010": ("C04", "delivered", 10, "delivered", [("SPEAKER-MINI", 1)]),
    "XP1011": ("C01", "delivered", 0, "delivered", [("HP-TWS-SPORT", 1)]),
    "XP1012": ("C05", "delivered", 95, "delivered", [("COOKER-SMART", 1)]),
    "XP1013": ("C01", "shipped", None, "in_transit", [("HP-ANC-PRO", 1)]),
    "XP1014": ("C06", "shipped", None, "out_for_delivery", [("FRYER-AIR", 1)]),
    "XP1015": ("C08", "shipped", None, "exception", [("CABLE-USBC", 3)]),
    "XP1016": ("C02", "paid", None, None, [("TS-BLACK-M", 1), ("CASE-IP15", 1)]),
    "XP1017": ("C07", "paid", None, None, [("HP-TWS-SPORT", 1)]),
    "XP1018": ("C08", "pending", None, None, [("DRYER-ION", 1)]),
    "XP1019": ("C05", "cancelled", None, None, [("SPEAKER-MINI", 1)]),
    "XP1020": ("C06", "delivered", 12, "delivered", [("HP-ANC-PRO", 1)]),
}

# status → how long before now the order was placed (delivered orders: before delivery)
_PLACED_BEFORE = {
    "shipped": timedelta(days=2),
    "paid": timedelta(hours=5),
    "pending": timedelta(minutes=10),
    "cancelled": timedelta(days=3),
}


def seed_demo(store: ErpStore) -> int:
    """Wipe the store and write the demo shop's customers, products and 20 orders; returns the count."""
    now = store.clock()
    store.reset()
    store.add_rows("customers", [_customer_row(cid) for cid in CUSTOMERS])
    store.add_rows("products", [_product_row(sku) for sku in PRODUCTS])
    store.add_rows("payment_methods", [_payment_row(mid) for mid in PAYMENT_METHODS])
    return store.add_orders((_order(oid, now), SEED[oid][0]) for oid in SEED)


def _customer_row(cid: str) -> dict[str, object]:
    name, last4, address = CUSTOMERS[cid]
    email = f"{cid.lower()}@example.com"
    return {"customer_id": cid, "name": name, "email": email, "phone_last4": last4, "address": address}


def _product_row(sku: str) -> dict[str, object]:
    name, price = PRODUCTS[sku]
    product = PRODUCT_OF.get(sku, sku)
    return {"sku": sku, "product_id": product, "name": name, "options": {}, "price": price} | {
        "available": sku not in SOLD_OUT
    }


def _payment_row(method_id: str) -> dict[str, object]:
    cid, kind, label, balance = PAYMENT_METHODS[method_id]
    return {"method_id": method_id, "customer_id": cid, "kind": kind, "label": label, "balance": balance}


def _order(order_id: str, now: datetime) -> Order:
    cid, status, days, ship_state, lines = SEED[order_id]
    name, last4, address = CUSTOMERS[cid]
    items = [OrderItem(sku, PRODUCTS[sku][0], qty, Decimal(PRODUCTS[sku][1])) for sku, qty in lines]
    delivered = now - timedelta(days=days) if days is not None else None
    placed = delivered - timedelta(days=3) if delivered else now - _PLACED_BEFORE[status]
    shipment = _shipment(order_id, ship_state, placed, delivered or now) if ship_state else None
    total = sum((i.price * i.quantity for i in items), Decimal("0.00"))
    return Order(order_id, last4, status, items, total, placed, delivered, f"{name} {address}", shipment)


def _shipment(order_id: str, state: str, placed: datetime, end: datetime) -> Shipment:
    """Carrier events from pick-up to ``state``; ``end`` is the delivery time (or now)."""
    seq = order_id[2:]
    sf = int(seq) % 2 == 1
    carrier, tracking = ("顺丰速运", f"SF14{seq}0086") if sf else ("中通快递", f"7731{seq}0086")
    steps = [(placed + timedelta(hours=20), "杭州余杭仓", "已揽收，快件已从仓库发出")]
    steps.append((placed + timedelta(hours=30), "杭州转运中心", "快件已发往目的地"))
    if state in ("out_for_delivery", "delivered"):
        steps.append((end - timedelta(hours=3), "派送站", "快递员正在派送，请保持电话畅通"))
    if state == "delivered":
        steps.append((end, "派送站", "已签收，签收人：本人"))
    if state == "exception":
        steps.append(
            (end - timedelta(hours=2), "乌鲁木齐转运中心", "派送异常：偏远地区转 EMS，预计延迟 2 天")
        )
    events = [f"{t.astimezone(CHINA_TZ):%Y-%m-%d %H:%M} 【{where}】{text}" for t, where, text in steps]
    return Shipment(carrier, tracking, state, steps[-1][0], events)
