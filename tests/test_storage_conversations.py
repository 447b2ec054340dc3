"""ConversationStore contract: the same promises on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from kefu.audit.keyring import Keyring
from kefu.errors import NotFound
from kefu.storage.base import ConversationStore
from kefu.storage.engine import StoreUnavailable, make_engine
from kefu.storage.migrate import migrate
from kefu.storage.sql import SqlConversationStore

POSTGRES_URL = os.environ.get("KEFU_TEST_POSTGRES_URL")


@pytest.fixture
def store(database_url: str) -> Iterator[SqlConversationStore]:
    engine = make_engine(database_url)
    migrate(engine)
    yield SqlConversationStore(engine, Keyring.generate())
    engine.dispose()


def test_implements_the_protocol(store: SqlConversationStore) -> None:
    assert isinstance(store, ConversationStore)


def test_create_then_get_round_trips_with_utc_timestamps(store: SqlConversationStore) -> None:
    created = store.create_conversation(channel="web", external_user="客户-42")

    assert created.status == "open"
    assert len(created.id) == 32
    assert created.created_at.utcoffset() == timedelta(0)
    assert store.get_conversation(created.id) == created


def test_unknown_conversation_is_not_found_with_a_hint(store: SqlConversationStore) -> None:
    with pytest.raises(NotFound) as info:
        store.get_conversation("nope")
    assert info.value.message == "conversation 'nope' not found — create one with POST /v1/conversations"
    with pytest.raises(NotFound, match="POST /v1/conversations"):
        store.add_message("nope", "user", "你好")
    with pytest.raises(NotFound, match="'nope'"):
        store.list_messages("nope")


def test_find_returns_the_latest_open_conversation_of_that_user_and_channel(
    store: SqlConversationStore,
) -> None:
    store.create_conversation(channel="web", external_user="u1")
    latest = store.create_conversation(channel="web", external_user="u1")
    store.create_conversation(channel="api", external_user="u1")
    store.create_conversation(channel="web", external_user="u2")

    assert store.find_conversation(channel="web", external_user="u1") == latest
    assert store.find_conversation(channel="web", external_user="u3") is None
    assert store.find_conversation(channel="openai", external_user="u1") is None


def test_messages_round_trip_in_order_with_their_metadata(store: SqlConversationStore) -> None:
    conv = store.create_conversation(channel="api")
    citations = [{"source": "退换货政策.md", "title": "七天无理由退货", "score": 0.91}]
    asked = store.add_message(conv.id, "user", "我想退货，怎么办？")
    answered = store.add_message(
        conv.id,
        "assistant",
        "您好！签收后七天内可申请无理由退货。[1]",
        answer_kind="grounded",
        citations=citations,
        model="qwen2.5-0.5b",
        prompt_tokens=812,
        completion_tokens=37,
        latency_ms=1234.5,
    )

    listed = store.list_messages(conv.id)

    assert listed == [asked, answered]
    assert listed[1].citations == citations
    assert (listed[1].prompt_tokens, listed[1].completion_tokens) == (812, 37)
    assert (listed[0].status, listed[0].answer_kind, listed[0].citations) == ("ok", None, [])
    assert listed[0].created_at.utcoffset() == timedelta(0)
    assert store.get_conversation(conv.id).updated_at == answered.created_at


def test_list_limit_returns_the_last_n_in_order(store: SqlConversationStore) -> None:
    conv = store.create_conversation(channel="web")
    for i in range(7):
        store.add_message(conv.id, "user" if i % 2 == 0 else "assistant", f"第{i}条")

    assert [m.content for m in store.list_messages(conv.id, limit=3)] == ["第4条", "第5条", "第6条"]
    assert len(store.list_messages(conv.id, limit=100)) == 7
    assert store.list_messages(conv.id, limit=0) == []


def test_messages_of_other_conversations_stay_apart(store: SqlConversationStore) -> None:
    first = store.create_conversation(channel="web")
    second = store.create_conversation(channel="web")
    store.add_message(first.id, "user", "一")
    store.add_message(second.id, "user", "二")

    assert [m.content for m in store.list_messages(first.id)] == ["一"]
    assert store.list_messages(store.create_conversation(channel="web").id) == []


def test_bad_fields_are_refused(store: SqlConversationStore) -> None:
    conv = store.create_conversation(channel="web")
    with pytest.raises(TypeError, match="unknown field"):
        store.add_message(conv.id, "assistant", "x", tokens=3)
    with pytest.raises(ValueError, match="role"):
        store.add_message(conv.id, "robot", "x")  # type: ignore[arg-type]
    assert store.list_messages(conv.id) == []


def test_concurrent_appends_lose_nothing_and_keep_each_writers_order(store: SqlConversationStore) -> None:
    conv = store.create_conversation(channel="web")
    writers, per_writer = 20, 5
    start = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(writer: int) -> None:
        try:
            start.wait()
            for i in range(per_writer):
                store.add_message(conv.id, "user", f"{writer}:{i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    contents = [m.content for m in store.list_messages(conv.id)]
    assert sorted(contents) == sorted(f"{w}:{i}" for w in range(writers) for i in range(per_writer))
    for w in range(writers):
        assert [c for c in contents if c.startswith(f"{w}:")] == [f"{w}:{i}" for i in range(per_writer)]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_ping_names_the_variable_when_the_database_is_unreachable(backend: str, tmp_path: Path) -> None:
    bad_url = f"sqlite:///{tmp_path}" if backend == "sqlite" else "postgresql://kefu@127.0.0.1:1/kefu"
    engine = make_engine(bad_url)  # a folder, not a file / a closed port
    try:
        with pytest.raises(StoreUnavailable, match="KEFU_DATABASE_URL"):
            SqlConversationStore(engine, Keyring.generate()).ping()
    finally:
        engine.dispose()
