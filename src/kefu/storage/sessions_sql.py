"""``SqlSessionStore``: session state as JSON text in the ``sessions`` table, with a TTL.

Expiry is checked on load; expired rows are purged by ``save``, at most once a minute, in their own
short transaction that skips rows another transaction holds (no deadlocks between savers). ``clock``
(seconds since the epoch) is injectable so tests can move time instead of sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import sessionmaker

from kefu.storage.base import SessionState
from kefu.storage.engine import ping_engine
from kefu.storage.models import SessionRow

PURGE_INTERVAL_S = 60.0
PURGE_BATCH = 500


class SqlSessionStore:
    def __init__(self, engine: Engine, ttl_seconds: float, *, clock: Callable[[], float] = time.time) -> None:
        if ttl_seconds <= 0:
            raise ValueError(f"ttl_seconds must be positive, got {ttl_seconds}")
        self.engine = engine
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._session = sessionmaker(engine)
        self._next_purge = 0.0

    def load(self, session_id: str) -> SessionState | None:
        query = select(SessionRow.state).where(
            SessionRow.session_id == session_id, SessionRow.expires_at > self._now()
        )
        with self._session() as session:
            raw = session.scalar(query)
        return SessionState.from_json(raw) if raw is not None else None

    def save(self, state: SessionState) -> None:
        now = self._now()
        values = {
            "session_id": state.session_id,
            "conversation_id": state.conversation_id,
            "state": state.to_json(),
            "expires_at": now + timedelta(seconds=self.ttl_seconds),
        }
        insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        upsert = insert(SessionRow).values(values)
        upsert = upsert.on_conflict_do_update(index_elements=[SessionRow.session_id], set_=values)
        with self._session.begin() as session:
            session.execute(upsert)
        self._purge_expired()

    def delete(self, session_id: str) -> None:
        with self._session.begin() as session:
            session.execute(delete(SessionRow).where(SessionRow.session_id == session_id))

    def ping(self) -> None:
        ping_engine(self.engine)

    def _purge_expired(self) -> None:
        if self._clock() < self._next_purge:
            return
        self._next_purge = self._clock() + min(self.ttl_seconds, PURGE_INTERVAL_S)
        expired = (
            select(SessionRow.session_id)
            .where(SessionRow.expires_at <= self._now())
            .limit(PURGE_BATCH)
            .with_for_update(skip_locked=True)
        )
        with self._session.begin() as session:
            session.execute(delete(SessionRow).where(SessionRow.session_id.in_(expired)))

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)
