"""Choose and build the stores from settings, once, at start-up (never at import time)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from kefu.config import Settings
from kefu.storage.base import ConversationStore, SessionStore
from kefu.storage.engine import make_engine
from kefu.storage.migrate import migrate
from kefu.storage.redis_sessions import RedisSessionStore
from kefu.storage.sessions_sql import SqlSessionStore
from kefu.storage.sql import SqlConversationStore


@dataclass
class Stores:
    conversations: ConversationStore
    sessions: SessionStore
    engine: Engine

    def ping_database(self) -> None:
        """Raise ``StoreUnavailable`` if the database cannot be reached (for /readyz)."""
        self.conversations.ping()

    def close(self) -> None:
        if isinstance(self.sessions, RedisSessionStore):
            self.sessions.close()
        self.engine.dispose()


def build_stores(settings: Settings) -> Stores:
    """The database from ``effective_database_url`` (migrated to the newest schema); sessions in
    Redis when ``redis_url`` is set, else in the same database. Raises ``ConfigError`` for a bad
    URL and ``StoreUnavailable`` when a backend cannot be reached."""
    engine = make_engine(settings.effective_database_url)
    try:
        migrate(engine)
        sessions = _session_store(settings, engine)
    except BaseException:
        engine.dispose()
        raise
    return Stores(conversations=SqlConversationStore(engine), sessions=sessions, engine=engine)


def _session_store(settings: Settings, engine: Engine) -> SessionStore:
    if not settings.redis_url:
        return SqlSessionStore(engine, settings.session_ttl_seconds)
    store = RedisSessionStore(settings.redis_url, settings.session_ttl_seconds)
    try:
        store.ping()
    except BaseException:
        store.close()
        raise
    return store
