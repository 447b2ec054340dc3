"""SessionStore contract: the same promises in SQL (SQLite, PostgreSQL) and in Redis."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import pytest
from sqlalchemy import func, select

from kefu.storage.base import SessionState, SessionStore, Turn
from kefu.storage.engine import StoreUnavailable, make_engine
from kefu.storage.migrate import migrate
from kefu.storage.models import SessionRow
from kefu.storage.redis_sessions import RedisSessionStore
from kefu.storage.sessions_sql import SqlSessionStore
from kefu.storage.testing import FakeClock, temporary_postgres_schema

POSTGRES_URL = os.environ.get("KEFU_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("KEFU_TEST_REDIS_URL")


@dataclass
class Backend:
    """Makes stores with a given TTL, and lets that TTL pass (moving a clock, or waiting)."""

    make: Callable[[int], SessionStore]
    let_ttl_pass: Callable[[int], None]


@contextmanager
def sql_backend(database_url: str) -> Iterator[Backend]:
    engine = make_engine(database_url)
    migrate(engine)
    clock = FakeClock()
    try:
        yield Backend(
            make=lambda ttl: SqlSessionStore(engine, ttl, clock=clock),
            let_ttl_pass=lambda ttl: clock.advance(ttl + 1),
        )
    finally:
        engine.dispose()


@contextmanager
def redis_backend(url: str) -> Iterator[Backend]:
    import redis

    client = redis.Redis.from_url(url)
    prefix = f"kefu:test:{uuid4().hex}:"
    try:
        yield Backend(
            make=lambda ttl: RedisSessionStore(client, ttl, prefix=prefix),
            let_ttl_pass=lambda ttl: time.sleep(ttl + 0.3),  # Redis expires keys by its own clock
        )
    finally:
        for key in client.scan_iter(match=prefix + "*"):
            client.delete(key)
        client.close()


@pytest.fixture(
    params=[
        "sql-sqlite",
        pytest.param("sql-postgresql", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sql-sqlite":
        with sql_backend(f"sqlite:///{tmp_path / 'kefu.db'}") as made:
            yield made
    elif request.param == "sql-postgresql":
        if not POSTGRES_URL:
            pytest.skip("KEFU_TEST_POSTGRES_URL not set: PostgreSQL contract tests skipped")
        with temporary_postgres_schema(POSTGRES_URL) as url, sql_backend(url) as made:
            yield made
    else:
        if not REDIS_URL:
            pytest.skip("KEFU_TEST_REDIS_URL not set: Redis contract tests skipped")
        with redis_backend(REDIS_URL) as made:
            yield made


@pytest.fixture
def store(backend: Backend) -> SessionStore:
    return backend.make(3600)


def a_state(session_id: str = "s-1") -> SessionState:
    return SessionState(
        session_id=session_id,
        conversation_id="c" * 32,
        turns=[Turn(user="我的订单到哪了？", assistant="您的订单 A1001 已发货，预计明天送达。")],
        summary="客户询问物流",
        updated_at=1_700_000_000.5,
    )


def test_implements_the_protocol(store: SessionStore) -> None:
    assert isinstance(store, SessionStore)


def test_absent_session_loads_as_none(store: SessionStore) -> None:
    assert store.load("never-saved") is None


def test_save_then_load_round_trips(store: SessionStore) -> None:
    store.save(a_state())
    assert store.load("s-1") == a_state()


def test_save_overwrites(store: SessionStore) -> None:
    store.save(a_state())
    changed = a_state()
    changed.turns.append(Turn(user="能改地址吗？", assistant="可以，请提供新地址。"))
    changed.summary = ""
    store.save(changed)

    assert store.load("s-1") == changed


def test_sessions_stay_apart_and_delete_removes_one(store: SessionStore) -> None:
    store.save(a_state("s-1"))
    store.save(a_state("s-2"))
    store.delete("s-1")
    store.delete("never-saved")

    assert store.load("s-1") is None
    assert store.load("s-2") == a_state("s-2")


def test_a_session_expires_after_its_ttl(backend: Backend) -> None:
    store = backend.make(1)
    store.save(a_state())
    backend.let_ttl_pass(1)

    assert store.load("s-1") is None
    store.save(a_state())  # a fresh save starts a fresh TTL
    assert store.load("s-1") == a_state()


def test_saving_restarts_the_ttl_and_purges_expired_rows(tmp_path: Path) -> None:
    with sql_backend(f"sqlite:///{tmp_path / 'kefu.db'}") as backend:
        store = backend.make(100)
        assert isinstance(store, SqlSessionStore)
        store.save(a_state("old"))
        store.save(a_state("kept"))
        backend.let_ttl_pass(60)  # 61 s later
        store.save(a_state("kept"))
        backend.let_ttl_pass(60)  # 122 s after "old" was saved, 61 s after "kept" was

        store.save(a_state("new"))

        assert store.load("kept") == a_state("kept")
        with store.engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(SessionRow)) == 2


@pytest.mark.parametrize("backend_name", ["sql-sqlite", "sql-postgresql", "redis"])
def test_ping_names_the_variable_when_unreachable(backend_name: str, tmp_path: Path) -> None:
    if backend_name == "redis":
        redis_store = RedisSessionStore("redis://127.0.0.1:1/0", 60)
        with pytest.raises(StoreUnavailable, match="KEFU_REDIS_URL"):
            redis_store.ping()
        redis_store.close()
        return
    bad = f"sqlite:///{tmp_path}" if backend_name == "sql-sqlite" else "postgresql://kefu@127.0.0.1:1/x"
    engine = make_engine(bad)
    try:
        with pytest.raises(StoreUnavailable, match="KEFU_DATABASE_URL"):
            SqlSessionStore(engine, 60).ping()
    finally:
        engine.dispose()


def test_redis_operations_name_the_variable_when_unreachable() -> None:
    redis_store = RedisSessionStore("redis://127.0.0.1:1/0", 60)
    with pytest.raises(StoreUnavailable, match=r"KEFU_REDIS_URL=redis://127\.0\.0\.1:1/0"):
        redis_store.load("s-1")
    redis_store.close()
