"""One writer at a time on the chain, across threads *and* processes, held by the database.

PostgreSQL: ``pg_advisory_xact_lock`` (released at commit/rollback). SQLite: ``BEGIN IMMEDIATE``
(takes the write lock up front; other writers wait on the busy timeout). Each holder reads the
chain head and writes the next record inside the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, text

# Any fixed 64-bit number; it only has to be the same for every kefu process ("kefu" + "audit").
ADVISORY_LOCK_KEY = 0x6B656675_61756474


@contextmanager
def chain_lock(engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction that holds the audit chain's write lock; commits on exit."""
    if engine.dialect.name == "sqlite":
        with _sqlite_immediate(engine) as conn:
            yield conn
        return
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        yield conn


@contextmanager
def _sqlite_immediate(engine: Engine) -> Iterator[Connection]:
    # The driver's own implicit BEGIN is DEFERRED; in AUTOCOMMIT mode we issue the transaction ourselves.
    with engine.connect() as base:
        conn = base.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.exec_driver_sql("ROLLBACK")
            raise
        conn.exec_driver_sql("COMMIT")
