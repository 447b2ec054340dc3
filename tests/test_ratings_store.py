"""The ratings store and the headline numbers by day on SQLite and PostgreSQL (issue #13 parts 1 and 6)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, update

from kefu.audit import Keyring
from kefu.errors import NotFound
from kefu.storage.engine import make_engine
from kefu.storage.headline import format_headline, headline_by_day, ratings_summary
from kefu.storage.migrate import migrate
from kefu.storage.models import ConversationRow, MessageRow, RatingRow
from kefu.storage.ratings import InvalidRating, SqlRatingStore, to_csv, to_jsonl
from kefu.storage.sql import SqlConversationStore
from kefu.storage.stats import SqlStatsStore

DAY1 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
DAY2 = datetime(2026, 3, 2, 23, 30, tzinfo=UTC)


@pytest.fixture
def engine(database_url: str, keyring: Keyring) -> Iterator[Engine]:
    engine = make_engine(database_url)
    migrate(engine, keyring=keyring)
    yield engine
    engine.dispose()


def at(engine: Engine, row: type, row_id: str, when: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(update(row).where(row.id == row_id).values(created_at=when))  # type: ignore[attr-defined]


def test_headline_numbers_by_day(engine: Engine, keyring: Keyring) -> None:
    conversations, stats, ratings = (
        SqlConversationStore(engine, keyring),
        SqlStatsStore(engine),
        SqlRatingStore(engine),
    )
    cites = [{"kb_version": "v3", "chunk_id": "faq-1"}, {"kb_version": "v3", "chunk_id": "doc-2"}]
    made = {}
    for name, day in (("bot", DAY1), ("agent", DAY1), ("open", DAY2)):
        conversation = conversations.create_conversation(channel="web")
        at(engine, ConversationRow, conversation.id, day)
        asked = conversations.add_message(conversation.id, "user", "多久发货")
        at(engine, MessageRow, asked.id, day)
        made[name] = conversation.id
    answer = conversations.add_message(
        made["bot"], "assistant", "48 小时内 [1]", citations=cites, route="faq", model="m1"
    )
    at(engine, MessageRow, answer.id, DAY1 + timedelta(seconds=3))
    later = conversations.add_message(made["bot"], "agent", "还有别的吗")
    at(engine, MessageRow, later.id, DAY1 + timedelta(minutes=5))
    agent = conversations.add_message(made["agent"], "agent", "我来看看")
    at(engine, MessageRow, agent.id, DAY1 + timedelta(seconds=60))
    stats.record(made["bot"], {"user_messages": 1}, {"completed": True, "resolved_by": "bot"})
    stats.record(made["agent"], {"user_messages": 1}, {"completed": True, "resolved_by": "agent"})
    stats.record(made["open"], {"user_messages": 1})

    thumbs = ratings.add(made["bot"], answer.id, "thumbs", 1)
    assert (thumbs.kb_version, thumbs.citations, thumbs.route, thumbs.model) == (
        "v3",
        ["faq-1", "doc-2"],
        "faq",
        "m1",
    )
    given = [thumbs, ratings.add(made["bot"], None, "csat", 5), ratings.add(made["agent"], None, "csat", 3)]
    for rating in given:
        at(engine, RatingRow, rating.id, DAY1 + timedelta(hours=1))

    day1, day2 = headline_by_day(engine)
    assert day1 == {
        "day": "2026-03-01",
        "conversations": 2,
        "session_completion_rate": 1.0,
        "resolution_rate": 0.5,
        "first_responses": 2,
        "first_response_mean_s": 31.5,
        "first_response_median_s": 31.5,
        "csat_ratings": 2,
        "csat_mean": 4.0,
        "csat_satisfied_share": 0.5,
        "star_ratings": 0,
        "stars_mean": None,
        "thumbs": 1,
        "thumbs_up_rate": 1.0,
    }
    assert day2["day"] == "2026-03-02" and day2["conversations"] == 1 and day2["first_responses"] == 0
    assert day2["session_completion_rate"] == 0.0 and day2["csat_ratings"] == 0 and day2["csat_mean"] is None
    assert [d["day"] for d in headline_by_day(engine, DAY2 - timedelta(hours=1))] == ["2026-03-02"]
    assert ratings_summary(engine)["csat_mean"] == 4.0
    table = format_headline([day1, day2])
    assert "2026-03-01" in table and "31.5s" in table and "4.00" in table


def test_the_store_refuses_what_cannot_be_rated(engine: Engine, keyring: Keyring) -> None:
    conversations, ratings = SqlConversationStore(engine, keyring), SqlRatingStore(engine)
    conversation = conversations.create_conversation(channel="api").id
    asked = conversations.add_message(conversation, "user", "你好")
    answer = conversations.add_message(conversation, "assistant", "您好")
    with pytest.raises(InvalidRating, match="customer's own message"):
        ratings.add(conversation, asked.id, "stars", 3)
    with pytest.raises(InvalidRating, match="csat rates the whole conversation"):
        ratings.add(conversation, answer.id, "csat", 3)
    with pytest.raises(InvalidRating, match="1 to 5 stars, got 6"):
        ratings.add(conversation, answer.id, "stars", 6)
    with pytest.raises(NotFound, match="not found"):
        ratings.add("missing", None, "csat", 3)
    with pytest.raises(NotFound):
        ratings.conversation_of("missing")
    assert ratings.conversation_of(answer.id) == conversation
    assert ratings.list(conversation) == []


def test_export_lines_hold_every_field(engine: Engine, keyring: Keyring) -> None:
    conversations, ratings = SqlConversationStore(engine, keyring), SqlRatingStore(engine)
    conversation = conversations.create_conversation(channel="api").id
    answer = conversations.add_message(
        conversation, "assistant", "好的", citations=[{"kb_version": "v1", "chunk_id": "c1"}]
    )
    ratings.add(conversation, answer.id, "stars", 2, comment="  说得不对, 见 [手机号_1]  ")
    ratings.add(conversation, answer.id, "stars", 1, comment="改成一星")  # replaces the 2
    [row] = [json.loads(line) for line in to_jsonl(ratings.export())]
    assert (row["score"], row["comment"], row["citations"], row["channel"]) == (1, "改成一星", ["c1"], "api")
    [parsed] = list(csv.DictReader(io.StringIO("".join(to_csv(ratings.export())))))
    assert parsed["score"] == "1" and parsed["citations"] == "c1" and parsed["experiment_arm"] == ""
    assert list(ratings.export(since=datetime.now(UTC) + timedelta(hours=1))) == []
