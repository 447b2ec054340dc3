"""Migration 0006 (messages.route / cost / cache) and the cost sums over it, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic import command
from sqlalchemy import text

from kefu.audit import Keyring
from kefu.storage.costs import cost_summary, format_costs, spent, start_of_day
from kefu.storage.engine import make_engine
from kefu.storage.migrate import alembic_config, migrate
from kefu.storage.sql import SqlConversationStore


def test_0006_adds_route_cost_and_cache_to_existing_messages(database_url: str, keyring: Keyring) -> None:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            command.upgrade(alembic_config(connection), "0005")
            connection.commit()
        now = datetime.now(UTC).replace(tzinfo=None) if engine.dialect.name == "sqlite" else datetime.now(UTC)
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO conversations (id, channel, status, created_at, updated_at) "
                    "VALUES ('old', 'web', 'open', :now, :now)"
                ),
                {"now": now},
            )
            connection.execute(
                text(
                    "INSERT INTO messages (id, conversation_id, seq, role, content, status, answer_kind, "
                    "citations, prompt_tokens, completion_tokens, created_at) VALUES "
                    "('m1', 'old', 1, 'assistant', 'x', 'ok', 'faq', '[]', 0, 0, :now)"
                ),
                {"now": now},
            )
        migrate(engine)
        store = SqlConversationStore(engine, keyring)
        (old,) = store.list_messages("old")
        assert (old.route, old.cost, old.cache) == (None, None, None)

        store.add_message("old", "assistant", "y", route="complex", model="strong", cost=0.25, cache="exact")
        added = store.list_messages("old")[-1]
        assert (added.route, added.model, added.cost, added.cache) == ("complex", "strong", 0.25, "exact")
        assert spent(engine, "old") == (0.25, 0.25)
        assert spent(engine, "old", now=datetime.now(UTC) + timedelta(days=1)) == (0.0, 0.25)
        summary = cost_summary(engine)
        assert summary["cache_hits"] == 1 and summary["cache_hit_rate"] == 0.5
        today = start_of_day(datetime.now(UTC)).date().isoformat()
        assert {(r["day"], r["route"], r["model"], r["cost"]) for r in summary["by_route"]} == {
            (today, "—", "—", 0.0),
            (today, "complex", "strong", 0.25),
        }
        assert f"{today}  complex" in format_costs(summary)

        with engine.connect() as connection:  # and back: 0006 downgrades and upgrades again
            command.downgrade(alembic_config(connection), "0005")
            connection.commit()
        migrate(engine)
        assert store.list_messages("old")[-1].route is None
    finally:
        engine.dispose()
