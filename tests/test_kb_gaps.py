"""The knowledge-gap loop through the real app (issue #13 part 4): a question the bot cannot answer, a
handoff, an agent's answer → a redacted FAQ suggestion → an admin approves it → a new KB version with its
source recorded → the bot answers the question verbatim. Duplicates, conflicts, rejection, PII and auth."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import MINI_KB, new_conversation
from kefu.api.app import create_app
from kefu.cli import app as cli_app
from kefu.config import Settings
from kefu.llm.testing import ScriptedModel

TOKEN = "kb-admin-token-for-gap-tests"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
UNKNOWN = "你们卖二手挖掘机吗"  # nothing in the mini pack
ANSWER = "我们不卖二手挖掘机，店里只卖全新的数码产品和配件。"


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(kb_dir=MINI_KB, admin_token=TOKEN)


@pytest.fixture
def shop(settings: Settings, model: ScriptedModel) -> Iterator[TestClient]:
    with TestClient(create_app(settings, model=model)) as client:
        yield client


def say(client: TestClient, conversation_id: str, text: str) -> dict[str, Any]:
    response = client.post(f"/v1/conversations/{conversation_id}/messages", json={"content": text})
    assert response.status_code == 200, response.text
    return dict(response.json())


def sign_in(client: TestClient, username: str = "ann") -> dict[str, str]:
    client.app.state.runtime.handoffs.store.ensure_agent(username, username.title(), "password-1")  # type: ignore[attr-defined]
    response = client.post("/v1/agent/login", json={"username": username, "password": "password-1"})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def agent_answers(client: TestClient, question: str, replies: list[str], username: str = "ann") -> str:
    """A customer asks ``question`` then asks for a person; the agent takes over and sends ``replies``."""
    conversation = new_conversation(client)
    say(client, conversation, question)
    handoff = say(client, conversation, "转人工")["handoff"]
    assert handoff is not None and handoff["status"] == "queued"
    agent = sign_in(client, username)
    taken = client.post(f"/v1/agent/handoffs/{handoff['id']}/take", headers=agent)
    assert taken.status_code == 200, taken.text
    for text in replies:
        sent = client.post(
            f"/v1/agent/conversations/{conversation}/messages", json={"text": text}, headers=agent
        )
        assert sent.status_code == 201, sent.text
    return conversation


def suggestions(client: TestClient, status: str | None = None) -> list[dict[str, Any]]:
    response = client.get("/v1/kb/suggestions", params={"status": status} if status else {}, headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.json()["count"] == len(response.json()["data"])
    return list(response.json()["data"])


def scan(client: TestClient) -> dict[str, Any]:
    response = client.post("/v1/kb/suggestions/scan", headers=ADMIN)
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.fixture
def any_shop(
    make_settings: Callable[..., Settings], model: ScriptedModel, database_url: str
) -> Iterator[TestClient]:
    """The shop on SQLite and (with KEFU_TEST_POSTGRES_URL) on PostgreSQL."""
    settings = make_settings(kb_dir=MINI_KB, admin_token=TOKEN, database_url=database_url)
    with TestClient(create_app(settings, model=model)) as client:
        yield client


def test_an_agents_answer_becomes_a_faq_the_bot_then_answers_verbatim(any_shop: TestClient) -> None:
    shop = any_shop
    first = say(shop, new_conversation(shop), UNKNOWN)
    assert first["answer_kind"] == "no_answer"
    conversation = agent_answers(shop, UNKNOWN, ["好的，请稍等", ANSWER])
    [suggestion] = suggestions(shop)  # found when the agent replied
    assert (suggestion["question"], suggestion["answer"], suggestion["status"]) == (
        UNKNOWN,
        ANSWER,
        "pending",
    )
    assert suggestion["source"]["conversation_id"] == conversation
    rescan = scan(shop)
    assert rescan["count"] == 0  # a scan suggests nothing new
    assert rescan["skipped"] == [
        {
            "answer_message_id": suggestion["source"]["answer_message_id"],
            "reason": f"already suggested as {suggestion['id']}",
        }
    ]

    before = shop.get("/v1/kb/versions", headers=ADMIN).json()["head"]
    approved = shop.post(f"/v1/kb/suggestions/{suggestion['id']}/approve", headers=ADMIN)
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert body["version"] == before + 1
    done = body["suggestion"]
    assert done["status"] == "approved" and done["kb_version"] == before + 1
    doc = shop.get(f"/v1/kb/documents/{done['faq_doc_id']}", headers=ADMIN).json()["document"]
    assert doc["source"] == f"agent:{suggestion['source']['agent_id']}/conversation:{conversation}"
    assert [f["answer"] for f in doc["faqs"]] == [ANSWER]

    again = say(shop, new_conversation(shop), UNKNOWN)
    assert again["answer_kind"] == "faq"
    assert again["message"]["content"] == ANSWER
    assert [c["doc_id"] for c in again["message"]["citations"]] == [done["faq_doc_id"]]

    twice = shop.post(f"/v1/kb/suggestions/{suggestion['id']}/approve", headers=ADMIN)
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "conflict"

    hits = shop.get("/v1/kb/hits", headers=ADMIN).json()
    learned = [d for d in hits["documents"] if d["doc_id"] == done["faq_doc_id"]]
    assert learned and learned[0]["cited"] == 1


def test_the_same_question_answered_again_or_in_other_words_is_suggested_once(shop: TestClient) -> None:
    agent_answers(shop, UNKNOWN, [ANSWER])
    agent_answers(shop, UNKNOWN + "？", ["二手挖掘机我们没有，只卖新的数码产品，谢谢关注。"], username="bob")
    agent_answers(
        shop, "你们店卖不卖二手挖掘机", ["不卖的，本店只有全新的数码产品。"], username="cat"
    )  # by meaning
    assert len(suggestions(shop)) == 1
    found = scan(shop)
    assert found["count"] == 0
    reasons = [s["reason"] for s in found["skipped"]]
    assert sum("the same question is already suggested" in r for r in reasons) == 2, reasons


def test_an_answer_contradicting_an_existing_faq_is_marked_conflict_and_cannot_be_approved(
    shop: TestClient,
) -> None:
    agent_answers(shop, "支持花呗付款吗？", ["目前暂不支持花呗付款，请使用微信或支付宝支付。"])
    [suggestion] = suggestions(shop)
    assert suggestion["status"] == "conflict"
    assert suggestion["conflict_with"].endswith("#pay-001")
    refused = shop.post(f"/v1/kb/suggestions/{suggestion['id']}/approve", headers=ADMIN)
    assert refused.status_code == 409 and "pay-001" in refused.json()["error"]["message"]
    rejected = shop.post(f"/v1/kb/suggestions/{suggestion['id']}/reject", headers=ADMIN)
    assert rejected.status_code == 200 and rejected.json()["suggestion"]["status"] == "rejected"
    assert [s["id"] for s in suggestions(shop, "rejected")] == [suggestion["id"]]
    assert suggestions(shop, "conflict") == []


def test_an_edited_approval_and_a_rejection(shop: TestClient) -> None:
    agent_answers(shop, UNKNOWN, [ANSWER])
    [suggestion] = suggestions(shop)
    edited = "本店不销售二手挖掘机，只销售全新数码产品。"
    approved = shop.post(
        f"/v1/kb/suggestions/{suggestion['id']}/approve", headers=ADMIN, json={"answer": edited}
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["suggestion"]["answer"] == edited
    assert say(shop, new_conversation(shop), UNKNOWN)["message"]["content"] == edited
    rejected = shop.post(f"/v1/kb/suggestions/{suggestion['id']}/reject", headers=ADMIN)
    assert rejected.status_code == 409  # already approved
    missing = shop.post("/v1/kb/suggestions/nope/reject", headers=ADMIN)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_replies_about_one_customer_or_that_say_nothing_are_not_suggested(shop: TestClient) -> None:
    agent_answers(shop, UNKNOWN, ["好的", "已为您登记，稍后会有专人致电 13812345678 联系您。"])
    assert suggestions(shop) == []
    found = scan(shop)
    assert found["count"] == 0
    [skipped] = found["skipped"]  # 「好的」 is not even a candidate; the phone number is redacted
    assert skipped["reason"].startswith("holds a personal-data placeholder")


def test_the_suggestions_api_needs_the_admin_token(
    shop: TestClient, make_settings: Callable[..., Settings], model: ScriptedModel
) -> None:
    for method, path in (
        ("GET", "/v1/kb/suggestions"),
        ("POST", "/v1/kb/suggestions/scan"),
        ("POST", "/v1/kb/suggestions/x/approve"),
        ("POST", "/v1/kb/suggestions/x/reject"),
        ("GET", "/v1/kb/hits"),
    ):
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            response = shop.request(method, path, headers=headers)
            assert response.status_code == 401, (path, response.text)
            assert response.json()["error"]["code"] == "unauthorized"
    with TestClient(create_app(make_settings(kb_dir=MINI_KB), model=model)) as off:
        response = off.get("/v1/kb/suggestions", headers=ADMIN)
        assert response.status_code == 403 and "KEFU_ADMIN_TOKEN" in response.json()["error"]["message"]


def test_the_cli_scans_lists_and_counts_hits(
    shop: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "KEFU_ENVIRONMENT": "test",
        "KEFU_LLM": "scripted",
        "KEFU_DATA_DIR": str(settings.data_dir),
        "KEFU_CACHE_DIR": str(settings.cache_dir),
        "KEFU_DATABASE_URL": settings.effective_database_url,
        "KEFU_KB_DIR": str(MINI_KB),
    }.items():
        monkeypatch.setenv(name, value)
    say(shop, new_conversation(shop), "支持花呗付款吗？")  # an FAQ answer: cited once
    agent_answers(shop, UNKNOWN, [ANSWER])
    result = CliRunner().invoke(cli_app, ["kb", "suggestions", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert listed["scan"]["count"] == 0  # the agent's reply already made it
    assert [(s["question"], s["answer"]) for s in listed["data"]] == [(UNKNOWN, ANSWER)]
    result = CliRunner().invoke(cli_app, ["kb", "hits", "--json"])
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)
    [faq] = [d for d in counts["documents"] if d["doc_id"].endswith("faq.json")]
    assert faq["cited"] >= 1


def test_hit_counts_count_citations_ratings_and_failures_per_document_and_chunk(shop: TestClient) -> None:
    liked, disliked = new_conversation(shop), new_conversation(shop)
    for conversation, score in ((liked, 1), (disliked, 0)):
        reply = say(shop, conversation, "支持花呗付款吗？")
        assert reply["answer_kind"] == "faq"
        message_id = reply["message"]["id"]
        rated = shop.post(
            f"/v1/conversations/{conversation}/messages/{message_id}/rating",
            json={"kind": "thumbs", "score": score},
        )
        assert rated.status_code in (200, 201), rated.text
    chunk_id = reply["message"]["citations"][0]["chunk_id"]
    counts = shop.get("/v1/kb/hits", headers=ADMIN).json()
    [chunk] = [c for c in counts["chunks"] if c["chunk_id"] == chunk_id]
    assert (chunk["cited"], chunk["rated"], chunk["rated_low"], chunk["failed"]) == (2, 2, 1, 1)
    [doc] = [d for d in counts["documents"] if d["doc_id"] == chunk["doc_id"]]
    assert (doc["cited"], doc["rated"], doc["rated_low"], doc["failed"]) == (2, 2, 1, 1)
