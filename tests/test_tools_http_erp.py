"""``HttpOrderSystem`` against the demo ERP served by a real uvicorn thread."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from conftest import free_port, live_server
from kefu.errors import NotFound
from kefu.tools import HttpOrderSystem, OrderSystem, ToolAuthFailed, ToolRejected, ToolUnavailable
from kefu.tools.demo_erp import create_demo_erp_app

NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
TOKEN = "test-erp-token"


def clock() -> datetime:
    return NOW


def rows(db: Path, sql: str) -> list[Any]:
    engine = create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql)).all())
    finally:
        engine.dispose()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "demo-erp.db"


@pytest.fixture
def erp_url(db: Path) -> Iterator[str]:
    with live_server(create_demo_erp_app(db, TOKEN, clock=clock)) as url:
        yield url


@pytest.fixture
def erp(erp_url: str) -> Iterator[HttpOrderSystem]:
    with HttpOrderSystem(erp_url, TOKEN, timeout=5.0, retries=2, backoff=0.05) as system:
        yield system


def test_get_order_returns_the_seeded_headphones_delivered_five_days_ago(erp: HttpOrderSystem):
    assert isinstance(erp, OrderSystem)
    order = erp.get_order("XP1001")

    assert order.status == "delivered"
    assert order.delivered_at == NOW - timedelta(days=5)
    assert [(i.sku, i.quantity, i.price) for i in order.items] == [("HP-ANC-PRO", 1, Decimal("299.00"))]
    assert order.total == Decimal("299.00")
    assert order.shipment is not None and order.shipment.carrier == "顺丰速运"
    assert order.shipment.events[-1].endswith("【派送站】已签收，签收人：本人")
    assert erp.get_order("XP1002").delivered_at == NOW - timedelta(days=8)


def test_unknown_order_is_not_found_naming_the_id(erp: HttpOrderSystem):
    with pytest.raises(NotFound, match="XP9999"):
        erp.get_order("XP9999")
    with pytest.raises(NotFound, match="XP9999"):
        erp.verify_customer("XP9999", "8001")


def test_verify_customer_checks_the_phone_last_four(erp: HttpOrderSystem):
    assert erp.verify_customer("XP1001", "8001") is True
    assert erp.verify_customer("XP1001", "8002") is False


def test_create_return_twice_with_one_key_gives_one_return(erp: HttpOrderSystem, db: Path):
    first = erp.create_return(
        "XP1001", kind="return", reason="不喜欢", photos=["p1.jpg"], idempotency_key="conv-1:return"
    )
    again = erp.create_return(
        "XP1001", kind="return", reason="不喜欢", photos=["p1.jpg"], idempotency_key="conv-1:return"
    )

    assert again == first
    assert first.return_id == "RT20261124-000001"
    assert (first.order_id, first.kind, first.status, first.created_at) == (
        "XP1001",
        "return",
        "requested",
        NOW,
    )
    assert rows(db, "SELECT return_id, order_id FROM returns") == [("RT20261124-000001", "XP1001")]


def test_replay_is_marked_and_a_reused_key_with_another_body_is_refused(erp_url: str, erp: HttpOrderSystem):
    headers = {"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": "k-1"}
    body = {"kind": "exchange", "reason": "尺码小了", "photos": []}
    with httpx.Client(base_url=erp_url, headers=headers) as client:
        first = client.post("/orders/XP1003/returns", json=body)
        replay = client.post("/orders/XP1003/returns", json=body)
        other = client.post("/orders/XP1003/returns", json=body | {"reason": "颜色不对"})

    assert (first.status_code, replay.status_code, other.status_code) == (201, 201, 422)
    assert replay.json() == first.json() and replay.headers["Idempotent-Replayed"] == "true"
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    with pytest.raises(ToolRejected, match="already used for a different request"):
        erp.create_return("XP1003", kind="exchange", reason="颜色不对", photos=[], idempotency_key="k-1")


def test_a_write_without_an_idempotency_key_is_refused(erp_url: str):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    response = httpx.post(f"{erp_url}/orders/XP1016/cancel", headers=headers)
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["error"]["message"]


def test_cancel_a_shipped_order_is_rejected_with_the_reason(erp: HttpOrderSystem, db: Path):
    with pytest.raises(ToolRejected, match="XP1013 is shipped; only pending or paid orders") as caught:
        erp.cancel_order("XP1013", idempotency_key="c-1")

    assert caught.value.code == "tool_rejected" and caught.value.status == 409
    assert rows(db, "SELECT status FROM orders WHERE order_id = 'XP1013'") == [("shipped",)]


def test_cancel_and_readdress_a_paid_order(erp: HttpOrderSystem):
    moved = erp.change_address("XP1016", "李娜 上海市徐汇区漕溪北路 1 号", idempotency_key="a-1")
    assert moved.address == "李娜 上海市徐汇区漕溪北路 1 号"

    cancelled = erp.cancel_order("XP1016", idempotency_key="c-2")
    assert cancelled.status == "cancelled"
    assert erp.cancel_order("XP1016", idempotency_key="c-2") == cancelled  # replay, not "already cancelled"
    with pytest.raises(ToolRejected, match="XP1016 is cancelled"):
        erp.cancel_order("XP1016", idempotency_key="c-3")


def test_state_rules_refuse_readdress_after_shipping_and_returns_before_delivery(erp: HttpOrderSystem):
    with pytest.raises(ToolRejected, match="address can only be changed before the order ships"):
        erp.change_address("XP1014", "赵磊 南京市", idempotency_key="a-2")
    with pytest.raises(ToolRejected, match="only possible for delivered orders"):
        erp.create_return("XP1017", kind="return", reason="不想要了", photos=[], idempotency_key="r-2")
    with pytest.raises(ToolRejected, match="kind must be one of return, exchange"):
        erp.create_return("XP1001", kind="refund", reason="x", photos=[], idempotency_key="r-3")


def test_request_invoice(erp: HttpOrderSystem, db: Path):
    invoice_id = erp.request_invoice(
        "XP1001", kind="electronic", title="个人", tax_id=None, idempotency_key="i-1"
    )
    assert invoice_id == "IV20261124-000001"
    with pytest.raises(ToolRejected, match="needs the company's tax id"):
        erp.request_invoice("XP1001", kind="vat_special", title="某公司", tax_id=None, idempotency_key="i-2")
    with pytest.raises(ToolRejected, match="XP1018 is pending"):
        erp.request_invoice("XP1018", kind="electronic", title="个人", tax_id=None, idempotency_key="i-3")
    assert rows(db, "SELECT invoice_id FROM invoice_requests") == [("IV20261124-000001",)]


def test_erp_down_is_tool_unavailable():
    erp = HttpOrderSystem(f"http://127.0.0.1:{free_port()}", TOKEN, retries=2, backoff=0.01)
    with erp, pytest.raises(ToolUnavailable, match=r"not reachable .* after 3 attempts; .*human agent"):
        erp.get_order("XP1001")


def test_slow_erp_is_tool_unavailable(db: Path):
    with (
        live_server(create_demo_erp_app(db, TOKEN, clock=clock, delay=1.0)) as url,
        HttpOrderSystem(url, TOKEN, timeout=0.2) as erp,
        pytest.raises(ToolUnavailable, match=r"did not answer within 0\.2 s"),
    ):
        erp.get_order("XP1001")


def test_wrong_token_is_a_clear_auth_error(erp_url: str):
    erp = HttpOrderSystem(erp_url, "wrong-token")
    with erp, pytest.raises(ToolAuthFailed, match=r"refused kefu's token .*HTTP 401") as caught:
        erp.get_order("XP1001")
    assert isinstance(caught.value, ToolUnavailable)  # the customer is offered a human
    response = httpx.get(f"{erp_url}/orders/XP1001")
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"


class LoseFirstResponses:
    """ASGI wrapper: the ERP handles the first ``n`` requests, but the client gets a 502 instead."""

    def __init__(self, app: Any, n: int) -> None:
        self.app, self.left, self.seen = app, n, 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.left == 0:
            self.seen += scope["type"] == "http"
            await self.app(scope, receive, send)
            return
        self.left -= 1
        self.seen += 1

        async def swallow(message: Any) -> None:
            if message["type"] == "http.response.start":
                await send({"type": "http.response.start", "status": 502, "headers": []})
            elif not message.get("more_body"):
                await send({"type": "http.response.body", "body": b"bad gateway"})

        await self.app(scope, receive, swallow)


def test_a_lost_response_is_retried_and_replayed_not_repeated(db: Path):
    flaky = LoseFirstResponses(create_demo_erp_app(db, TOKEN, clock=clock), n=2)
    with live_server(flaky) as url, HttpOrderSystem(url, TOKEN, retries=2, backoff=0.01) as erp:
        created = erp.create_return(
            "XP1002", kind="return", reason="左耳无声", photos=["a.jpg"], idempotency_key="r-9"
        )

    assert flaky.seen == 3
    assert created.return_id == "RT20261124-000001"
    assert rows(db, "SELECT count(*) FROM returns") == [(1,)]


def test_5xx_after_all_retries_is_tool_unavailable(db: Path):
    flaky = LoseFirstResponses(create_demo_erp_app(db, TOKEN, clock=clock), n=5)
    with (
        live_server(flaky) as url,
        HttpOrderSystem(url, TOKEN, retries=1, backoff=0.01) as erp,
        pytest.raises(ToolUnavailable, match="HTTP 502"),
    ):
        erp.get_order("XP1001")
    assert flaky.seen == 2


def test_modify_items_over_http_once_then_the_order_is_locked(erp_url: str, erp: HttpOrderSystem, db: Path):
    changed = erp.modify_items(
        "XP1017", skus=["HP-TWS-SPORT"], new_skus=["HP-TWS-SPORT-BLACK"], payment_method_id="alipay_C07",
        idempotency_key="m-1",
    )  # fmt: skip
    assert [(i.sku, i.name, i.price) for i in changed.items] == [
        ("HP-TWS-SPORT-BLACK", "真无线运动耳机 黑色", Decimal("219.00"))
    ]
    assert (changed.status, changed.total, changed.items_modified) == ("paid", Decimal("219.00"), True)
    assert erp.get_order("XP1017") == changed

    headers = {"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": "m-1"}
    body = {"skus": ["HP-TWS-SPORT"], "new_skus": ["HP-TWS-SPORT-BLACK"], "payment_method_id": "alipay_C07"}
    with httpx.Client(base_url=erp_url, headers=headers) as client:
        replay = client.post("/orders/XP1017/items", json=body)
        second = client.post("/orders/XP1017/items", json=body, headers={"Idempotency-Key": "m-2"})
        missing_key = client.post("/orders/XP1017/items", json=body, headers={"Idempotency-Key": ""})
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["items_modified"] is True and replay.json()["total"] == "219.00"
    assert second.status_code == 409 and "already modified" in second.json()["error"]["message"]
    assert missing_key.status_code == 400

    with pytest.raises(ToolRejected, match="XP1017 were already modified, which can be done only once"):
        erp.cancel_order("XP1017", idempotency_key="c-1")
    with pytest.raises(ToolRejected, match="can no longer be cancelled, re-addressed or modified"):
        erp.change_address("XP1017", "孙丽 武汉市洪山区珞喻路 1 号", idempotency_key="a-1")
    assert rows(db, "SELECT status, items_modified, total FROM orders WHERE order_id = 'XP1017'") == [
        ("paid", 1, "219.00")
    ]
    assert rows(db, "SELECT order_id, kind, amount, method_id, idempotency_key FROM payments") == [
        ("XP1017", "payment", "20.00", "alipay_C07", "m-1")
    ]


def test_modify_items_is_refused_for_delivered_and_cancelled_orders(erp: HttpOrderSystem, db: Path):
    with pytest.raises(
        ToolRejected, match="XP1003 is delivered; items can only be modified before"
    ) as caught:
        erp.modify_items(
            "XP1003", skus=["TS-WHITE-L"], new_skus=["TS-WHITE-M"], payment_method_id="alipay_C03",
            idempotency_key="m-3",
        )  # fmt: skip
    assert caught.value.status == 409
    with pytest.raises(ToolRejected, match="XP1019 is cancelled"):
        erp.modify_items(
            "XP1019", skus=["SPEAKER-MINI"], new_skus=["SPEAKER-MINI"], payment_method_id="alipay_C05",
            idempotency_key="m-4",
        )  # fmt: skip
    with pytest.raises(ToolRejected, match=r"gift card gift_card_C07 holds 10\.00"):
        erp.modify_items(
            "XP1017", skus=["HP-TWS-SPORT"], new_skus=["HP-TWS-SPORT-BLACK"], payment_method_id="gift_card_C07",
            idempotency_key="m-5",
        )  # fmt: skip
    assert rows(db, "SELECT sku FROM order_items WHERE order_id IN ('XP1003', 'XP1017') ORDER BY id") == [
        ("TS-WHITE-L",),
        ("HP-TWS-SPORT",),
    ]
    assert rows(db, "SELECT count(*) FROM payments") == [(0,)]
    assert rows(db, "SELECT count(*) FROM orders WHERE items_modified") == [(0,)]
