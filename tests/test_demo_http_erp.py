"""KEFU_DEMO_ERP=1 (what ``kefu demo`` sets) serves the demo ERP over real HTTP: its own thread, port,
generated token and SQLite file; the flows reach it through ``HttpOrderSystem``, and it stops with kefu."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from conftest import MINI_KB, ask, new_conversation
from kefu.api.app import create_app
from kefu.config import Settings
from kefu.flows import idempotency_key
from kefu.llm.testing import ScriptedModel
from kefu.tools import HttpOrderSystem
from kefu.tools.demo_erp import DEFAULT_TOKEN
from kefu.tools.demo_erp.server import DemoErpServer, ServedDemoErp


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(kb_dir=MINI_KB, demo_erp=True)


@pytest.fixture
def shop(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, model=ScriptedModel())) as client:
        yield client


def served_erp(client: TestClient) -> ServedDemoErp:
    orders = client.app.state.runtime.assistant.flows.orders  # type: ignore[attr-defined]
    while not isinstance(orders, ServedDemoErp) and "inner" in vars(orders):  # audit, vault wrappers
        orders = orders.inner
    assert isinstance(orders, ServedDemoErp)
    return orders


def test_a_return_in_the_chat_goes_over_http_to_the_demo_erp(shop: TestClient, settings: Settings):
    erp = served_erp(shop)
    assert isinstance(erp, HttpOrderSystem) and erp.server.url.startswith("http://127.0.0.1:")
    conversation = new_conversation(shop)
    replies = [ask(shop, conversation, t) for t in ("耳机收到5天了想退", "XP1001", "8001", "不想要了")]

    received = [(r["method"], r["path"], r["status"]) for r in erp.server.requests]
    assert ("GET", "/orders/XP1001", 200) in received
    assert ("POST", "/orders/XP1001/verify", 200) in received
    [created] = [r for r in erp.server.requests if r["path"] == "/orders/XP1001/returns"]
    assert created["status"] == 201
    assert created["idempotency_key"] == idempotency_key(conversation, "return_exchange", "create", "XP1001")

    # The ERP's own SQLite file under the data dir holds the return order the customer was shown.
    assert erp.server.db_path == settings.data_dir / "demo-erp.db"
    [return_id] = [row.return_id for row in _returns(erp, "XP1001")]
    assert return_id in replies[-1]["content"]


def test_the_demo_erp_wants_its_generated_token(shop: TestClient):
    erp = served_erp(shop)
    url = f"{erp.server.url}/orders/XP1001"
    assert erp.server.token != DEFAULT_TOKEN
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"}).status_code == 401
    answer = httpx.get(url, headers={"Authorization": f"Bearer {erp.server.token}"})
    assert answer.status_code == 200 and answer.json()["order_id"] == "XP1001"


def test_the_demo_erp_stops_with_kefu(settings: Settings):
    with TestClient(create_app(settings, model=ScriptedModel())) as client:
        health = f"{served_erp(client).server.url}/health"
        assert httpx.get(health).json() == {"status": "ok"}
    with pytest.raises(httpx.ConnectError):
        httpx.get(health, timeout=2.0)


def test_too_many_wrong_digits_lock_the_order_across_conversations(shop: TestClient):
    erp = served_erp(shop)
    first = new_conversation(shop)
    replies = [ask(shop, first, t) for t in ("我的订单到哪了", "XP1013", "1111", "2222", "3333")]
    assert "人工" in replies[-1]["content"]  # the flow's own cap: three tries per conversation
    second = new_conversation(shop)  # a guesser starts over: the ERP's cap stops them, right digits or not
    replies = [ask(shop, second, t) for t in ("我的订单到哪了", "XP1013", "8001")]
    assert replies[-1]["answer_kind"] == "handoff" and "人工" in replies[-1]["content"]
    assert "运单号" not in replies[-1]["content"]
    verifies = [r["status"] for r in erp.server.requests if r["path"] == "/orders/XP1013/verify"]
    assert verifies == [200, 200, 200, 429]


def test_a_standalone_server_serves_its_own_file(tmp_path: Path):
    with DemoErpServer(tmp_path / "erp.db", token="t") as server, HttpOrderSystem(server.url, "t") as orders:
        assert orders.get_order("XP1002").status == "delivered"
        assert server.requests[-1] == {
            "method": "GET", "path": "/orders/XP1002", "status": 200, "idempotency_key": None
        }  # fmt: skip
    assert (tmp_path / "erp.db").is_file()


def _returns(erp: ServedDemoErp, order_id: str) -> list:
    from sqlalchemy import select

    from kefu.tools.demo_erp.schema import returns

    with erp.server.store.engine.connect() as conn:
        return list(conn.execute(select(returns).where(returns.c.order_id == order_id)).all())
