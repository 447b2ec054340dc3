"""Alembic environment. ``kefu.storage.migrate`` hands over an open connection (inside its lock);
the ``alembic`` command line builds an engine from ``KEFU_DATABASE_URL`` instead."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection

from kefu.storage.engine import make_engine
from kefu.storage.models import Base


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_standalone() -> None:
    url = os.environ.get("KEFU_DATABASE_URL") or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("set KEFU_DATABASE_URL (e.g. sqlite:///./dev.db) to run alembic by hand")
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("kefu migrations run online only (alembic upgrade head, or kefu.storage.migrate)")

_connection = context.config.attributes.get("connection")
if _connection is None:
    _run_standalone()
else:
    _run(_connection)
