"""Choose and build the stores from settings, once, at start-up (never at import time)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from kefu.audit.keyring import Keyring, load_keyring
from kefu.config import Settings
from kefu.storage.base import ConversationStore, SessionStore
from kefu.storage.engine import make_engine
from kefu.storage.migrate import migrate
from kefu.storage.redis_sessions import DivertingSessionStore, RedisSessionStore
from kefu.storage.sessions_sql import SqlSessionStore
from kefu.storage.sql import SqlConversationStore
from kefu.storage.vault import SqlPiiVault

if TYPE_CHECKING:
    from kefu.safety.pii import PiiVault


@dataclass
class Stores:
    conversations: ConversationStore
    sessions: SessionStore
    engine: Engine
    keyring: Keyring  # KEFU_AUDIT_KEYS: encrypts the audit log and the sensitive columns alike

    def vault_for(self, conversation_id: str) -> PiiVault:
        """The conversation's PII vault, encrypted in the database: ``redact_pii(text, vault=…)``."""
        return SqlPiiVault(self.engine, self.keyring, conversation_id)

    def ping_database(self) -> None:
        """Raise ``StoreUnavailable`` if the database cannot be reached (for /readyz)."""
        self.conversations.ping()

    def close(self) -> None:
        if isinstance(self.sessions, (RedisSessionStore, DivertingSessionStore)):
            self.sessions.close()
        self.engine.dispose()


def build_stores(settings: Settings) -> Stores:
    """The database from ``effective_database_url`` (migrated to the newest schema); sessions in
    Redis when ``redis_url`` is set, else in the same database; sensitive columns encrypted with
    ``settings_keyring(settings)``. Raises ``ConfigError`` for a bad URL or key (or no key in
    production) and ``StoreUnavailable`` when a backend cannot be reached."""
    keyring = settings_keyring(settings)
    engine = make_engine(settings.effective_database_url)
    try:
        migrate(engine, keyring=keyring)
        sessions = _session_store(settings, engine)
    except BaseException:
        engine.dispose()
        raise
    conversations = SqlConversationStore(engine, keyring)
    return Stores(conversations=conversations, sessions=sessions, engine=engine, keyring=keyring)


def settings_keyring(settings: Settings) -> Keyring:
    """The ``KEFU_AUDIT_KEYS`` ring (a development key in ``data_dir`` when unset outside production)."""
    keys = settings.audit_keys.get_secret_value() or None
    return load_keyring(environment=settings.environment, data_dir=settings.data_dir, env_value=keys)


def _session_store(settings: Settings, engine: Engine) -> SessionStore:
    if not settings.redis_url:
        return SqlSessionStore(engine, settings.session_ttl_seconds)
    store = RedisSessionStore(settings.redis_url, settings.session_ttl_seconds)
    try:
        store.ping()
    except BaseException:
        store.close()
        raise
    # a Redis that goes away later is not an outage: the database holds sessions until it is back
    return DivertingSessionStore(store, SqlSessionStore(engine, settings.session_ttl_seconds))
