"""SQLAlchemy engine from a ``KEFU_DATABASE_URL``: ``sqlite:///path`` or ``postgresql://…``.

SQLite gets WAL mode, foreign keys and a busy timeout on every connection; PostgreSQL always goes
through the psycopg 3 driver. Nothing connects here: the first query (or ``migrate``) does.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc, text
from sqlalchemy.engine import URL, make_url

from kefu.errors import ConfigError, StoreUnavailable

__all__ = ["StoreUnavailable", "make_engine", "parse_database_url", "ping_engine"]

SQLITE_BUSY_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT_S = 5
_SQLITE_DRIVERS = {"sqlite", "sqlite+pysqlite"}
_POSTGRES_DRIVERS = {"postgresql", "postgres", "postgresql+psycopg"}


def parse_database_url(database_url: str) -> URL:
    """Validate the URL and pin the driver: ``sqlite`` (file) or ``postgresql+psycopg``."""
    try:
        url = make_url(database_url)
    except exc.ArgumentError:
        raise ConfigError(
            f"KEFU_DATABASE_URL={database_url!r} is not a database URL; "
            "use sqlite:///path/to/kefu.db or postgresql://user:password@host:5432/dbname"
        ) from None
    if url.drivername in _SQLITE_DRIVERS:
        if not url.database or url.database == ":memory:":
            raise ConfigError(
                "KEFU_DATABASE_URL: in-memory SQLite is not supported (each connection would see an "
                "empty database); use a file, e.g. sqlite:///./data/kefu.db"
            )
        return url.set(drivername="sqlite+pysqlite")
    if url.drivername in _POSTGRES_DRIVERS:
        return url.set(drivername="postgresql+psycopg")
    raise ConfigError(
        f"KEFU_DATABASE_URL uses the unsupported scheme {url.drivername!r}; "
        "use sqlite:///path/to/kefu.db or postgresql://user:password@host:5432/dbname"
    )


def make_engine(database_url: str) -> Engine:
    """An engine with a connection pool; safe to share between threads."""
    url = parse_database_url(database_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    return _postgres_engine(url)


def _json_dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _sqlite_engine(url: URL) -> Engine:
    path = Path(str(url.database)).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(
            f"KEFU_DATABASE_URL: cannot create the folder {str(path.parent)!r} for the SQLite file "
            f"({err.strerror}); point it at a writable path"
        ) from None
    engine = create_engine(
        url.set(database=str(path)),
        json_serializer=_json_dumps,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
    )
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        _set_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _set_wal(cursor: Any) -> None:
    """Switching a new file to WAL needs an exclusive lock; when two processes open the same new file at
    once, SQLite may answer "database is locked" at once (deadlock avoidance skips the busy handler)."""
    for attempt in range(50):
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 49:
                raise
            time.sleep(0.1)


def _postgres_engine(url: URL) -> Engine:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise ConfigError(
            "KEFU_DATABASE_URL points to PostgreSQL but the psycopg driver is not installed; "
            "run `pip install 'kefu[postgres]'`"
        ) from None
    return create_engine(
        url,
        json_serializer=_json_dumps,
        pool_pre_ping=True,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
    )


def describe(engine: Engine) -> str:
    """The engine's URL with the password hidden, for error messages and logs."""
    return engine.url.render_as_string(hide_password=True)


@contextmanager
def reachable(engine: Engine) -> Iterator[None]:
    """Turn a failure to connect into ``StoreUnavailable`` naming ``KEFU_DATABASE_URL``."""
    try:
        yield
    except exc.OperationalError as err:
        reason = str(err.orig).strip().splitlines()[0] if err.orig else str(err)
        raise StoreUnavailable(
            f"cannot reach the database at KEFU_DATABASE_URL={describe(engine)} ({reason}); "
            "check that the server is running and the URL, user and password are right"
        ) from err


def ping_engine(engine: Engine) -> None:
    with reachable(engine), engine.connect() as conn:
        conn.execute(text("SELECT 1"))
