"""A customer message sent again with the same client id (a request cut by a restart, a proxy or a flaky
network, retried by the page or an integration) is stored once and answered once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kefu.api.app import create_app
from kefu.config import Settings, load_settings
from kefu.llm.testing import ScriptedModel
from kefu.runtime import build_runtime


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, shared_cache_dir: Path) -> Iterator[TestClient]:
    """One app for the HTTP tests (loading the demo shop's knowledge base is the slow part)."""
    data = tmp_path_factory.mktemp("retries")
    settings = load_settings(environment="test", llm="scripted", data_dir=data, cache_dir=shared_cache_dir)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def stored(client: TestClient, conversation_id: str) -> list[tuple[str, str]]:
    body = client.get(f"/v1/conversations/{conversation_id}/messages").json()
    return [(m["role"], m["content"]) for m in body["data"]]


def test_the_same_client_message_id_twice_is_stored_and_answered_once(client: TestClient) -> None:
    cid = client.post("/v1/conversations", json={"channel": "web"}).json()["id"]
    body = {"content": "耳机保修多久？", "client_message_id": "m-1"}
    first = client.post(f"/v1/conversations/{cid}/messages", json=body).json()
    again = client.post(f"/v1/conversations/{cid}/messages", json=body).json()
    assert first["replayed"] is False and again["replayed"] is True
    assert again["message"]["id"] == first["message"]["id"]  # the stored reply, not a new one
    assert again["message"]["content"] == first["message"]["content"]
    assert stored(client, cid) == [("user", "耳机保修多久？"), ("assistant", first["message"]["content"])]

    # the header works the same way, and a new id is a new message
    header = {"Idempotency-Key": "m-2"}
    second = client.post(
        f"/v1/conversations/{cid}/messages", json={"content": "耳机保修多久？"}, headers=header
    )
    repeat = client.post(
        f"/v1/conversations/{cid}/messages", json={"content": "耳机保修多久？"}, headers=header
    )
    assert second.json()["replayed"] is False and repeat.json()["replayed"] is True
    assert len(stored(client, cid)) == 4


def test_a_retried_stream_replays_the_stored_reply(client: TestClient) -> None:
    cid = client.post("/v1/conversations", json={"channel": "web"}).json()["id"]
    body = {"content": "你们发什么快递？", "client_message_id": "s-1", "stream": True}
    first = client.post(f"/v1/conversations/{cid}/messages", json=body).text
    again = client.post(f"/v1/conversations/{cid}/messages", json=body).text
    assert '"replayed": false' in first and '"replayed": true' in again
    assert "event: done" in again and len(stored(client, cid)) == 2


def test_a_bad_client_message_id_is_refused_with_the_rule(client: TestClient) -> None:
    cid = client.post("/v1/conversations", json={"channel": "web"}).json()["id"]
    response = client.post(
        f"/v1/conversations/{cid}/messages", json={"content": "在吗", "client_message_id": "x" * 65}
    )
    assert response.status_code == 422
    assert "client_message_id" in response.text and "64" in response.text
    assert stored(client, cid) == []


def test_a_message_stored_by_an_attempt_that_died_is_answered_by_the_retry(
    make_settings: Callable[..., Settings],
) -> None:
    """The first attempt stored the customer's message and died before the reply (a killed replica):
    the retry answers it, without storing the message a second time."""

    async def run() -> list[tuple[str, str]]:
        model = ScriptedModel([])
        runtime = await build_runtime(make_settings(llm="scripted"), model=model)
        try:
            conversations = runtime.assistant.conversations
            conv = conversations.create_conversation(channel="web")
            conversations.add_message(conv.id, "user", "耳机保修多久？", client_id="d-1")  # then it died
            events = [e async for e in runtime.assistant.answer(conv.id, "耳机保修多久？", client_id="d-1")]
            assert not any(getattr(e, "replayed", False) for e in events)
            return [(m.role, m.client_id or "") for m in conversations.list_messages(conv.id)]
        finally:
            await runtime.aclose()

    assert asyncio.run(run()) == [("user", "d-1"), ("assistant", "")]
