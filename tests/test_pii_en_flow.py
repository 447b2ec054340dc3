"""An English address through the whole assistant: the model and the log see [地址_1] and [姓名_1],
the order system gets the address the customer typed, from the conversation's vault."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conftest import faq_shop, new_conversation
from kefu.config import Settings
from kefu.llm.testing import ScriptedModel

NEW_ADDRESS = "1234 Oak Street, Apt 5, Springfield, IL 62704"


@pytest.fixture
def shop(
    make_settings: Callable[..., Settings], model: ScriptedModel, tmp_path: Path
) -> Iterator[TestClient]:
    with faq_shop(
        make_settings,
        model,
        tmp_path / "kb",
        [{"id": "ship", "question": "Which courier do you use?", "answer": "ZTO by default."}],
    ) as client:
        yield client


def test_an_english_address_reaches_the_order_system_but_is_stored_redacted(shop: TestClient) -> None:
    conversation = new_conversation(shop)
    replies = []
    for text in ("I need to change my address", "XP1016", "9002", f"Sarah Johnson, {NEW_ADDRESS}", "yes"):
        response = shop.post(f"/v1/conversations/{conversation}/messages", json={"content": text})
        assert response.status_code == 200, response.text
        replies.append(response.json()["message"]["content"])
    orders = shop.app.state.runtime.assistant.flows.orders  # type: ignore[attr-defined]
    assert orders.get_order("XP1016").address == f"Sarah Johnson, {NEW_ADDRESS}"
    assert NEW_ADDRESS in replies[3]  # the customer reads their own address in the confirmation
    stored = shop.get(f"/v1/conversations/{conversation}/messages").json()["data"]
    assert all("Oak Street" not in m["content"] and "Johnson" not in m["content"] for m in stored), stored
    assert "[姓名_1], [地址_1]" in [m["content"] for m in stored if m["role"] == "user"]
