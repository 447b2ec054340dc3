"""Helpers for running the storage contract suites (and any test) against real backends.

``FakeClock`` drives ``SqlSessionStore`` TTLs without sleeping; ``temporary_postgres_schema``
gives each test run its own PostgreSQL schema, dropped afterwards, so parallel runs never collide.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from uuid import uuid4

from sqlalchemy import text

from kefu.storage.engine import make_engine, parse_database_url


class FakeClock:
    """A settable ``time.time`` stand-in: call it for the time, ``advance`` to move it."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@contextmanager
def temporary_postgres_schema(base_url: str) -> Iterator[str]:
    """Create an empty schema, yield a URL whose connections use it (``search_path``), drop it."""
    schema = f"kefu_test_{uuid4().hex[:12]}"
    admin = make_engine(base_url)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = parse_database_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
