"""The handoff store's promises on SQLite and PostgreSQL: agents, the queue's order and places, one
owner per handoff, handling times, and the migration that creates it all."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from kefu.audit import Keyring
from kefu.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from kefu.storage.engine import make_engine
from kefu.storage.handoff import SqlHandoffStore, check_password, hash_password
from kefu.storage.migrate import migrate
from kefu.storage.sql import SqlConversationStore
from kefu.storage.stats import SqlStatsStore

T0 = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    migrate(database_url)
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(engine: Engine, clock: Clock) -> SqlHandoffStore:
    return SqlHandoffStore(engine, clock=clock)


@pytest.fixture
def conversations(engine: Engine, keyring: Keyring) -> SqlConversationStore:
    return SqlConversationStore(engine, keyring)


def queued(store: SqlHandoffStore, conversations: SqlConversationStore, priority: int, reason: str = "asked"):
    conversation = conversations.create_conversation(channel="web")
    return store.open_handoff(conversation.id, status="queued", priority=priority, reason=reason, summary="-")


def test_passwords_are_salted_scrypt_hashes_checked_in_constant_time() -> None:
    first, second = hash_password("s3cret-pass"), hash_password("s3cret-pass")
    assert first != second and first.startswith("scrypt$") and "s3cret" not in first
    assert check_password("s3cret-pass", first) and check_password("s3cret-pass", second)
    assert not check_password("s3cret-pasS", first)
    assert not check_password("s3cret-pass", "not a hash")


def test_agents_sign_in_with_their_password_only_while_active(store: SqlHandoffStore) -> None:
    ann = store.add_agent("ann", "安娜", "password-1")
    assert store.authenticate("ann", "password-1") == ann
    with pytest.raises(Unauthorized, match="wrong username or password"):
        store.authenticate("ann", "password-2")
    with pytest.raises(Unauthorized):
        store.authenticate("nobody", "password-1")
    with pytest.raises(Conflict, match="already exists"):
        store.add_agent("ann", "Another Ann", "password-3")
    store.set_active("ann", False)
    with pytest.raises(Forbidden, match="deactivated"):
        store.authenticate("ann", "password-1")
    assert [a.username for a in store.list_agents()] == ["ann"]


@pytest.mark.parametrize(
    ("username", "password"), [("Ann", "password-1"), ("a b", "password-1"), ("ann", "short")]
)
def test_bad_agent_names_and_short_passwords_are_refused(
    store: SqlHandoffStore, username: str, password: str
) -> None:
    with pytest.raises(InvalidInput):
        store.add_agent(username, "", password)


def test_the_queue_is_ordered_by_priority_then_age_and_places_follow_it(
    store: SqlHandoffStore, conversations: SqlConversationStore, clock: Clock
) -> None:
    asked = queued(store, conversations, 4)
    clock.advance(1)
    low_confidence = queued(store, conversations, 5, "low_confidence")
    clock.advance(1)
    vip = queued(store, conversations, 1)
    clock.advance(1)
    asked_later = queued(store, conversations, 4)
    order = [vip.id, asked.id, asked_later.id, low_confidence.id]
    assert [h.id for h in store.queue()] == order
    assert [store.position(h) for h in (vip, asked, asked_later, low_confidence)] == [1, 2, 3, 4]

    agent = store.add_agent("ann", "Ann", "password-1")
    store.take(vip.id, agent.id)
    assert [h.id for h in store.queue()] == [*order[1:], vip.id]  # active ones after the queued
    assert store.position(store.get(asked.id)) == 1 and store.position(store.get(vip.id)) is None


def test_one_agent_owns_a_handoff_and_only_they_reply_release_or_close_it(
    store: SqlHandoffStore, conversations: SqlConversationStore
) -> None:
    handoff = queued(store, conversations, 4)
    ann = store.add_agent("ann", "Ann", "password-1")
    bob = store.add_agent("bob", "Bob", "password-1")
    taken = store.take(handoff.id, ann.id)
    assert (taken.status, taken.agent_id) == ("active", ann.id) and taken.taken_at is not None
    assert store.take(handoff.id, ann.id) == taken  # taking one's own again changes nothing
    with pytest.raises(Conflict, match="handled by Ann"):
        store.take(handoff.id, bob.id)
    with pytest.raises(Conflict):
        store.check_owner(handoff.conversation_id, bob.id)
    with pytest.raises(Conflict):
        store.finish(handoff.id, bob.id, "closed")
    assert store.check_owner(handoff.conversation_id, ann.id).id == handoff.id
    returned = store.finish(handoff.id, ann.id, "returned")
    assert returned.status == "returned" and returned.ended_at is not None
    assert store.current(handoff.conversation_id) is None
    assert store.latest(handoff.conversation_id) == returned
    with pytest.raises(Conflict, match="returned"):
        store.take(handoff.id, bob.id)
    with pytest.raises(NotFound):
        store.take("no-such-handoff", ann.id)


def test_a_ticket_is_open_takeable_and_becomes_queued_when_promoted(
    store: SqlHandoffStore, conversations: SqlConversationStore
) -> None:
    conversation = conversations.create_conversation(channel="web")
    ticket = store.open_handoff(conversation.id, status="ticket", priority=4, reason="asked", summary="-")
    assert store.current(conversation.id) == ticket and store.tickets() == [ticket]
    assert store.queue() == [] and store.position(ticket) is None
    promoted = store.promote(ticket.id, 2)
    assert (promoted.status, promoted.priority, promoted.created_at) == ("queued", 2, ticket.created_at)
    assert store.tickets() == [] and store.position(promoted) == 1


def test_mean_handling_time_covers_the_last_closed_handoffs(
    store: SqlHandoffStore, conversations: SqlConversationStore, clock: Clock
) -> None:
    assert store.mean_handling_seconds(20, 180.0) == 180.0  # nothing closed yet: the default
    ann = store.add_agent("ann", "Ann", "password-1")
    for seconds in (60, 120, 600):
        handoff = queued(store, conversations, 4)
        store.take(handoff.id, ann.id)
        clock.advance(seconds)
        store.finish(handoff.id, ann.id, "closed")
    released = queued(store, conversations, 4)
    store.take(released.id, ann.id)
    clock.advance(9999)
    store.finish(released.id, ann.id, "returned")  # handed back, not closed: not counted
    assert store.mean_handling_seconds(20, 180.0) == pytest.approx(260.0)
    assert store.mean_handling_seconds(2, 180.0) == pytest.approx(360.0)  # the last two: 120 and 600


def test_agents_count_as_online_for_five_minutes_after_their_last_request(
    store: SqlHandoffStore, clock: Clock
) -> None:
    ann = store.add_agent("ann", "Ann", "password-1")
    bob = store.add_agent("bob", "Bob", "password-1")
    assert store.agents_online() == 0
    store.touch_agent(ann.id)
    clock.advance(200)
    store.touch_agent(bob.id)
    assert store.agents_online() == 2
    clock.advance(200)  # ann: 400 s ago
    assert store.agents_online() == 1


def test_the_last_customer_message_of_each_conversation(
    store: SqlHandoffStore, conversations: SqlConversationStore
) -> None:
    first = conversations.create_conversation(channel="web")
    second = conversations.create_conversation(channel="web")
    conversations.add_message(first.id, "user", "我的快递到哪了")
    conversations.add_message(first.id, "assistant", "请提供订单号")
    conversations.add_message(first.id, "user", "转人工")
    conversations.add_message(first.id, "agent", "您好", agent_id="a1")
    assert store.last_customer_messages([first.id, second.id]) == {first.id: "转人工"}
    assert conversations.list_messages(first.id)[-1].agent_id == "a1"


def test_stats_rows_are_created_on_first_write_and_then_incremented(
    engine: Engine, conversations: SqlConversationStore
) -> None:
    stats = SqlStatsStore(engine)
    conversation = conversations.create_conversation(channel="web")
    assert stats.get(conversation.id).user_messages == 0
    stats.record(conversation.id, {"user_messages": 1, "low_confidence_streak": 1})
    stats.record(conversation.id, {"user_messages": 1, "low_confidence_streak": 1}, {"completed": True})
    row = stats.get(conversation.id)
    assert (row.user_messages, row.low_confidence_streak, row.completed) == (2, 2, True)
    stats.record(conversation.id, values={"low_confidence_streak": 0, "resolved_by": "agent"})
    row = stats.get(conversation.id)
    assert (row.low_confidence_streak, row.resolved_by, row.user_messages) == (0, "agent", 2)
    with pytest.raises(ValueError, match="unknown"):
        stats.record(conversation.id, {"nonsense": 1})
