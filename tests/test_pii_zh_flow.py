"""The address flow through the whole assistant, in Chinese and in English (a name and a street address):
the model and the log see [地址_1] (and [姓名_1]), the order system
gets the address the customer typed, from the conversation's vault, and so does the reply the customer
reads (only that: the stored reply keeps the placeholder)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conftest import faq_shop, new_conversation
from kefu.config import Settings
from kefu.llm.testing import ScriptedModel

NEW_ADDRESS = "上海市浦东新区世纪大道 200 号 3 楼"


@pytest.fixture
def shop(
    make_settings: Callable[..., Settings], model: ScriptedModel, tmp_path: Path
) -> Iterator[TestClient]:
    with faq_shop(
        make_settings,
        model,
        tmp_path / "kb",
        [{"id": "ship", "question": "发什么快递？", "answer": "默认中通快递。"}],
    ) as client:
        yield client


EN_ADDRESS = "1234 Oak Street, Apt 5, Springfield, IL 62704"
CASES = {
    # the customer's messages; the address the order system must get; what the stored user message holds;
    # what no stored message may hold (the first: the address, which the confirmation shows the customer)
    "zh": (
        ("我要改地址", "XP1016", "9002", NEW_ADDRESS, "是"),
        NEW_ADDRESS,
        "[地址_1]",
        (NEW_ADDRESS, "世纪大道"),
    ),
    "en": (
        ("I need to change my address", "XP1016", "9002", f"Sarah Johnson, {EN_ADDRESS}", "yes"),
        f"Sarah Johnson, {EN_ADDRESS}",
        "[姓名_1], [地址_1]",
        (EN_ADDRESS, "Oak Street", "Johnson"),
    ),
}


@pytest.mark.parametrize("lang", sorted(CASES))
def test_a_new_address_reaches_the_order_system_but_is_stored_redacted(shop: TestClient, lang: str) -> None:
    messages, typed, placeholder, secrets = CASES[lang]
    conversation = new_conversation(shop)
    replies = []
    for text in messages:
        response = shop.post(f"/v1/conversations/{conversation}/messages", json={"content": text})
        assert response.status_code == 200, response.text
        replies.append(response.json()["message"]["content"])
    # the customer reads their own address in the confirmation; everything stored holds the placeholder
    assert secrets[0] in replies[3] and "[地址_1]" not in replies[3]
    orders = shop.app.state.runtime.assistant.flows.orders  # type: ignore[attr-defined]
    assert orders.get_order("XP1016").address == typed
    stored = shop.get(f"/v1/conversations/{conversation}/messages").json()["data"]
    assert all(secret not in m["content"] for m in stored for secret in secrets), stored
    assert placeholder in [m["content"] for m in stored if m["role"] == "user"]
    confirmation = [m["content"] for m in stored if m["role"] == "assistant"][3]
    assert "[地址_1]" in confirmation


def test_a_placeholder_split_across_stream_pieces_is_revealed_whole() -> None:
    import asyncio

    from kefu.dialog.events import Delta, Done, Event
    from kefu.dialog.orchestrator import revealed

    async def pieces() -> AsyncIterator[Event]:
        for text in ("改为：[地", "址_1", "]？好的", "，[未知_9] 不动"):
            yield Delta(text)
        yield Done(None)

    async def run() -> list[str]:
        values = {"[地址_1]": NEW_ADDRESS}
        out = revealed(pieces(), lambda text: re.sub(r"\[[^\]]+\]", lambda m: values.get(m[0], m[0]), text))
        return [e.text async for e in out if isinstance(e, Delta)]

    sent = asyncio.run(run())
    assert "".join(sent) == f"改为：{NEW_ADDRESS}？好的，[未知_9] 不动"
    assert all("[地" not in piece or "]" in piece for piece in sent)  # never half a placeholder
