"""Engines from URLs, migrations at start-up, and ``build_stores``."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from kefu.config import Settings
from kefu.errors import ConfigError
from kefu.storage.engine import SQLITE_BUSY_TIMEOUT_MS, StoreUnavailable, make_engine, parse_database_url
from kefu.storage.factory import build_stores
from kefu.storage.migrate import alembic_config, current_revision, migrate
from kefu.storage.models import Base
from kefu.storage.redis_sessions import DivertingSessionStore, RedisSessionStore
from kefu.storage.sessions_sql import SqlSessionStore

POSTGRES_URL = os.environ.get("KEFU_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("KEFU_TEST_REDIS_URL")
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_migrating_twice_reaches_head_and_matches_the_models(database_url: str) -> None:
    migrate(database_url)
    migrate(database_url)

    engine = make_engine(database_url)
    try:
        assert current_revision(engine) == HEAD
        assert set(inspect(engine).get_table_names()) >= {"conversations", "messages", "sessions"}
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_two_processes_migrating_at_once_both_succeed(database_url: str) -> None:
    engines = [make_engine(database_url) for _ in range(2)]  # one pool each, like two processes
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(engine_index: int) -> None:
        try:
            start.wait()
            migrate(engines[engine_index])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert current_revision(engines[0]) == HEAD
    finally:
        for engine in engines:
            engine.dispose()


def test_sqlite_connections_use_wal_and_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'kefu.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == SQLITE_BUSY_TIMEOUT_MS
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgresql://u:p@db:5432/kefu", "postgresql+psycopg"),
        ("postgres://u@db/kefu", "postgresql+psycopg"),
        ("postgresql+psycopg://u@db/kefu", "postgresql+psycopg"),
        ("sqlite:///data/kefu.db", "sqlite+pysqlite"),
    ],
)
def test_urls_are_pinned_to_the_drivers_kefu_ships(given: str, driver: str) -> None:
    assert parse_database_url(given).drivername == driver


@pytest.mark.parametrize(
    ("given", "complaint"),
    [
        ("mysql://u@db/kefu", "unsupported scheme 'mysql'"),
        ("postgresql+psycopg2://u@db/kefu", "unsupported scheme"),
        ("sqlite://", "in-memory SQLite"),
        ("sqlite:///:memory:", "in-memory SQLite"),
        ("not a url", "not a database URL"),
    ],
)
def test_unsupported_urls_are_config_errors_naming_the_variable(given: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match="KEFU_DATABASE_URL") as info:
        make_engine(given)
    assert complaint in info.value.message


def test_migrating_an_unreachable_database_names_the_variable() -> None:
    with pytest.raises(StoreUnavailable, match="KEFU_DATABASE_URL=postgresql\\+psycopg://kefu:\\*\\*\\*@"):
        migrate("postgresql://kefu:s3cret@127.0.0.1:1/kefu")


def test_build_stores_defaults_to_sqlite_in_the_data_dir(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    stores = build_stores(settings)
    try:
        conv = stores.conversations.create_conversation(channel="cli")
        stores.conversations.add_message(conv.id, "user", "在吗？")
        assert isinstance(stores.sessions, SqlSessionStore)
        assert (settings.data_dir / "kefu.db").is_file()
        stores.ping_database()
        stores.sessions.ping()
    finally:
        stores.close()

    reopened = build_stores(settings)
    try:
        assert [m.content for m in reopened.conversations.list_messages(conv.id)] == ["在吗？"]
    finally:
        reopened.close()


@pytest.mark.redis
def test_build_stores_keeps_sessions_in_redis_when_configured(make_settings: Callable[..., Settings]) -> None:
    if not REDIS_URL:
        pytest.skip("KEFU_TEST_REDIS_URL not set: Redis tests skipped")
    stores = build_stores(make_settings(redis_url=REDIS_URL))
    try:
        assert isinstance(stores.sessions, DivertingSessionStore)  # Redis, the database while it is down
        assert isinstance(stores.sessions.redis, RedisSessionStore)
        assert stores.sessions.redis.ttl_seconds == 7 * 24 * 3600
        stores.sessions.ping()
    finally:
        stores.close()


def test_build_stores_refuses_an_unreachable_redis(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(StoreUnavailable, match="KEFU_REDIS_URL"):
        build_stores(make_settings(redis_url="redis://127.0.0.1:1/0"))


def test_build_stores_refuses_an_unsupported_database(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigError, match="KEFU_DATABASE_URL"):
        build_stores(make_settings(database_url="mysql://u@db/kefu"))
