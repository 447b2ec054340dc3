"""The audit log's own tables (SQLAlchemy Core), created on the engine it is given.

``audit_log``: one row per record, ``seq`` is the chain position (gap-free, assigned under a lock).
``audit_checkpoints``: one row per purge — the seq and hash of the last purged record, from which
``verify`` continues the chain.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Engine, Integer, LargeBinary, MetaData, String, Table, inspect

from kefu.audit.lock import chain_lock

metadata = MetaData()

# BIGINT on PostgreSQL; plain INTEGER on SQLite (its 64-bit rowid type).
_SEQ = BigInteger().with_variant(Integer(), "sqlite")

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", _SEQ, primary_key=True, autoincrement=False),
    Column("created_at", String(32), nullable=False, index=True),
    Column("kind", String(64), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("conversation_id", String(128), nullable=True, index=True),
    Column("key_id", String(64), nullable=False),
    Column("nonce", LargeBinary, nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("seq", _SEQ, primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False),
    Column("purged_at", String(32), nullable=False),
    Column("purged_count", Integer, nullable=False),
)


def ensure_schema(engine: Engine) -> None:
    """Create the audit tables if missing (idempotent). To be folded into the Alembic migrations."""
    if has_audit_tables(engine):
        return
    with chain_lock(engine) as conn:  # several processes may start at once
        metadata.create_all(conn, checkfirst=True)


def has_audit_tables(engine: Engine) -> bool:
    names = set(inspect(engine).get_table_names())
    return {audit_log.name, audit_checkpoints.name} <= names
