"""Upgrade the database to the newest schema, from code, at start-up.

Idempotent, and safe when several processes start at once: on PostgreSQL the upgrade runs in one
transaction holding an advisory lock; on SQLite in one ``BEGIN IMMEDIATE`` transaction (the
database's write lock). Whoever comes second waits, then finds the schema current.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, text

from kefu.storage.engine import make_engine, reachable

if TYPE_CHECKING:
    from kefu.audit.keyring import Keyring

_HERE = Path(__file__).parent
ALEMBIC_INI = _HERE / "alembic.ini"
MIGRATIONS_DIR = _HERE / "migrations"
# Any fixed 64-bit number, shared by every kefu process using the same database.
_PG_LOCK_KEY = 0x6B656675_6D696772  # "kefu" "migr"


def alembic_config(connection: Connection | None = None, *, keyring: Keyring | None = None) -> Config:
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    if keyring is not None:
        config.attributes["keyring"] = keyring
    return config


def migrate(database: str | Engine, *, keyring: Keyring | None = None) -> None:
    """Bring the schema at ``database`` (a URL or an engine) up to the newest revision.

    ``keyring`` (``KEFU_AUDIT_KEYS``) is needed only when a migration encrypts existing rows (0002:
    ``conversations.external_user``); without it such a migration raises ``ConfigError``."""
    engine = make_engine(database) if isinstance(database, str) else database
    try:
        with reachable(engine), engine.connect() as connection:
            _lock(connection)
            command.upgrade(alembic_config(connection, keyring=keyring), "head")
            connection.commit()
    finally:
        if isinstance(database, str):
            engine.dispose()


def _lock(connection: Connection) -> None:
    """Start the migration transaction holding a lock other migrating processes wait for."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    else:
        # pysqlite sees the open transaction and issues no BEGIN of its own; COMMIT ends it.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None before the first migration)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
