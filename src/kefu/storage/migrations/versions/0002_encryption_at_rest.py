"""Audit tables under Alembic, the encrypted PII vault, message sentiment, encrypted external_user.

(a) ``audit_log`` + ``audit_checkpoints``, as ``kefu.audit.schema`` defines them; skipped when
    ``ensure_schema`` already created them.
(b) ``pii_vault``: one encrypted value per (conversation, placeholder).
(c) ``messages.sentiment``: REAL NULL.
(d) ``conversations.external_user`` → ``external_user_hmac`` (blind index) + ``external_user_encrypted``;
    existing values are encrypted with the ``KEFU_AUDIT_KEYS`` ring that ``migrate(engine,
    keyring=…)`` passes in (``alembic upgrade`` by hand loads it from the settings, like the app).
    On SQLite the freed pages are zeroed (``secure_delete``) so the old values leave the file; on
    PostgreSQL run ``VACUUM FULL conversations`` afterwards to drop the old row versions from disk.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

from kefu.audit.keyring import Keyring
from kefu.errors import ConfigError
from kefu.storage.crypto import FieldCipher, unpack

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_CONVERSATIONS = sa.table(
    "conversations",
    sa.column("id", sa.String),
    sa.column("external_user", sa.String),
    sa.column("external_user_hmac", sa.String),
    sa.column("external_user_encrypted", sa.Text),
)


def upgrade() -> None:
    _create_audit_tables()
    op.create_table(
        "pii_vault",
        sa.Column(
            "conversation_id",
            sa.String(32),
            sa.ForeignKey("conversations.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("placeholder", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("nonce", sa.LargeBinary, nullable=False),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.add_column("messages", sa.Column("sentiment", sa.Float, nullable=True))
    with _zeroing_freed_pages():
        _encrypt_external_user()


def _create_audit_tables() -> None:
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table("audit_log"):
        op.create_table(
            "audit_log",
            sa.Column("seq", _SEQ, primary_key=True, autoincrement=False),
            sa.Column("created_at", sa.String(32), nullable=False),
            sa.Column("kind", sa.String(64), nullable=False),
            sa.Column("actor", sa.String(128), nullable=False),
            sa.Column("conversation_id", sa.String(128), nullable=True),
            sa.Column("key_id", sa.String(64), nullable=False),
            sa.Column("nonce", sa.LargeBinary, nullable=False),
            sa.Column("ciphertext", sa.LargeBinary, nullable=False),
            sa.Column("prev_hash", sa.String(64), nullable=False),
            sa.Column("hash", sa.String(64), nullable=False),
        )
        op.create_index("ix_audit_log_created_at", "audit_log", ["created_at"])
        op.create_index("ix_audit_log_conversation_id", "audit_log", ["conversation_id"])
    if not inspector.has_table("audit_checkpoints"):
        op.create_table(
            "audit_checkpoints",
            sa.Column("seq", _SEQ, primary_key=True, autoincrement=False),
            sa.Column("hash", sa.String(64), nullable=False),
            sa.Column("purged_at", sa.String(32), nullable=False),
            sa.Column("purged_count", sa.Integer, nullable=False),
        )


def _encrypt_external_user() -> None:
    from kefu.storage.sql import seal_external_user

    op.add_column("conversations", sa.Column("external_user_hmac", sa.String(64), nullable=True))
    op.add_column("conversations", sa.Column("external_user_encrypted", sa.Text, nullable=True))
    bind = op.get_bind()
    c = _CONVERSATIONS.c
    rows = bind.execute(sa.select(c.id, c.external_user).where(c.external_user.is_not(None))).all()
    if rows:
        cipher = FieldCipher(_keyring())
        values = []
        for row_id, user in rows:
            sealed = seal_external_user(cipher, row_id, user)
            values.append(
                {
                    "row_id": row_id,
                    "index": sealed["external_user_hmac"],
                    "token": sealed["external_user_encrypted"],
                }
            )
        statement = _CONVERSATIONS.update().where(c.id == sa.bindparam("row_id"))
        statement = statement.values(  # the plaintext is cleared (and zeroed on SQLite) before the drop
            external_user=None,
            external_user_hmac=sa.bindparam("index"),
            external_user_encrypted=sa.bindparam("token"),
        )
        bind.execute(statement, values)
    op.drop_index("ix_conversations_channel_user", table_name="conversations")
    op.drop_column("conversations", "external_user")
    op.create_index("ix_conversations_channel_user_hmac", "conversations", ["channel", "external_user_hmac"])


@contextmanager
def _zeroing_freed_pages() -> Iterator[None]:
    """On SQLite, overwrite deleted content with zeros while inside (the plaintext values)."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        yield
        return
    before = bind.exec_driver_sql("PRAGMA secure_delete").scalar()
    bind.exec_driver_sql("PRAGMA secure_delete = ON")
    try:
        yield
    finally:
        bind.exec_driver_sql(f"PRAGMA secure_delete = {int(before or 0)}")


def _keyring() -> Keyring:
    config = op.get_context().config
    attributes = config.attributes if config is not None else {}
    keyring = attributes.get("keyring")
    if isinstance(keyring, Keyring):
        return keyring
    if "connection" not in attributes:  # `alembic upgrade` by hand: the app's own settings
        from kefu.config import load_settings
        from kefu.storage.factory import settings_keyring

        return settings_keyring(load_settings())
    raise ConfigError(
        "migration 0002 encrypts the existing conversations.external_user values and needs the "
        "KEFU_AUDIT_KEYS keyring: call kefu.storage.migrate.migrate(engine, keyring=…) "
        "(kefu.storage.factory.build_stores does)"
    )


def downgrade() -> None:
    """Back to 0001: ``external_user`` decrypted into its plaintext column (needs the keyring).
    The audit tables stay: ``kefu.audit.schema.ensure_schema`` managed them before 0002 too."""
    from kefu.storage.sql import external_user_binding

    op.add_column("conversations", sa.Column("external_user", sa.String(255), nullable=True))
    bind = op.get_bind()
    c = _CONVERSATIONS.c
    query = sa.select(c.id, c.external_user_encrypted).where(c.external_user_encrypted.is_not(None))
    rows = bind.execute(query).all()
    if rows:
        cipher = FieldCipher(_keyring())
        values = [
            {"row_id": row_id, "plain": cipher.open(unpack(token, binding), binding)}
            for row_id, token in rows
            for binding in [external_user_binding(row_id)]
        ]
        statement = _CONVERSATIONS.update().where(c.id == sa.bindparam("row_id"))
        bind.execute(statement.values(external_user=sa.bindparam("plain")), values)
    op.drop_index("ix_conversations_channel_user_hmac", table_name="conversations")
    op.drop_column("conversations", "external_user_encrypted")
    op.drop_column("conversations", "external_user_hmac")
    op.create_index("ix_conversations_channel_user", "conversations", ["channel", "external_user"])
    op.drop_column("messages", "sentiment")
    op.drop_table("pii_vault")
