"""Sensitive fields encrypted at rest, checked in the real database: the raw SQLite file bytes, the raw
PostgreSQL column values, and an upgrade from schema 0001 holding plaintext."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from kefu.audit import AuditLog, Keyring, verify
from kefu.config import Settings
from kefu.errors import ConfigError
from kefu.storage.crypto import FieldDecryptError
from kefu.storage.engine import make_engine
from kefu.storage.factory import build_stores
from kefu.storage.migrate import alembic_config, current_revision, migrate
from kefu.storage.models import UTCDateTime
from kefu.storage.sql import SqlConversationStore
from kefu.storage.testing import temporary_postgres_schema
from kefu.storage.vault import SqlPiiVault

POSTGRES_URL = os.environ.get("KEFU_TEST_POSTGRES_URL")
PHONE = "13800138000"
ID_NUMBER = "11010519491231002X"
SECRETS = [PHONE.encode(), ID_NUMBER.encode()]


def sqlite_bytes(path: Path) -> bytes:
    """The database file and its write-ahead log, as they lie on disk."""
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


@pytest.fixture
def engine(database_url: str, keyring: Keyring) -> Iterator[Engine]:
    engine = make_engine(database_url)
    migrate(engine, keyring=keyring)
    yield engine
    engine.dispose()


def store_secrets(engine: Engine, keyring: Keyring) -> str:
    store = SqlConversationStore(engine, keyring)
    conv = store.create_conversation(channel="web", external_user=PHONE)
    store.add_message(conv.id, "user", "我的身份证是[身份证号_1]，手机[手机号_1]", sentiment=-0.25)
    SqlPiiVault(engine, keyring, conv.id).remember({"[身份证号_1]": ID_NUMBER, "[手机号_1]": PHONE})
    return conv.id


def test_no_plaintext_in_the_sqlite_file_or_its_wal(tmp_path: Path, keyring: Keyring) -> None:
    path = tmp_path / "kefu.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine, keyring=keyring)
    store_secrets(engine, keyring)

    on_disk = sqlite_bytes(path)  # engine still open: the new rows are in the WAL
    assert "[身份证号_1]".encode() in on_disk  # the placeholder is not secret: we read the right bytes
    for secret in SECRETS:
        assert secret not in on_disk
    engine.dispose()  # last connection closed: checkpoint into the main file
    for secret in SECRETS:
        assert secret not in sqlite_bytes(path)


@pytest.mark.postgres
def test_postgres_columns_hold_only_ciphertext(keyring: Keyring) -> None:
    if not POSTGRES_URL:
        pytest.skip("KEFU_TEST_POSTGRES_URL not set: PostgreSQL raw-column test skipped")
    with temporary_postgres_schema(POSTGRES_URL) as url:
        engine = make_engine(url)
        try:
            migrate(engine, keyring=keyring)
            conversation_id = store_secrets(engine, keyring)
            with engine.connect() as conn:
                users = conn.execute(sa.text("SELECT * FROM conversations")).mappings().all()
                vault = conn.execute(sa.text("SELECT * FROM pii_vault")).mappings().all()
        finally:
            engine.dispose()
    assert [row["id"] for row in users] == [conversation_id]
    assert "external_user" not in users[0]
    assert users[0]["external_user_encrypted"].startswith("f1:k1:")
    assert len(users[0]["external_user_hmac"]) == 64
    assert PHONE not in repr(dict(users[0]))
    assert {row["placeholder"] for row in vault} == {"[身份证号_1]", "[手机号_1]"}
    for row in vault:
        assert row["key_id"] == "k1"
        assert len(row["nonce"]) == 12
        assert not any(secret in bytes(row["ciphertext"]) for secret in SECRETS)
        assert len(row["ciphertext"]) in {len(PHONE) + 16, len(ID_NUMBER) + 16}  # + GCM tag


def test_find_and_get_still_work_by_the_plain_value(engine: Engine, keyring: Keyring) -> None:
    conversation_id = store_secrets(engine, keyring)
    store = SqlConversationStore(engine, keyring)

    found = store.find_conversation(channel="web", external_user=PHONE)
    assert found is not None and found.id == conversation_id
    assert store.get_conversation(conversation_id).external_user == PHONE
    assert store.find_conversation(channel="web", external_user="13800138001") is None
    assert store.list_messages(conversation_id)[0].sentiment == -0.25


def test_a_wrong_key_fails_with_a_clear_error(engine: Engine, keyring: Keyring) -> None:
    conversation_id = store_secrets(engine, keyring)
    impostor = Keyring.generate("k1")  # same id, other bytes

    with pytest.raises(FieldDecryptError, match=r"does not decrypt with key 'k1'.*KEFU_AUDIT_KEYS"):
        SqlConversationStore(engine, impostor).get_conversation(conversation_id)
    with pytest.raises(FieldDecryptError, match="pii_vault"):
        SqlPiiVault(engine, impostor, conversation_id).known()
    with pytest.raises(FieldDecryptError, match="key 'k1', which is not in KEFU_AUDIT_KEYS"):
        SqlConversationStore(engine, Keyring.generate("k9")).get_conversation(conversation_id)


def test_rotation_keeps_old_rows_readable_and_findable(engine: Engine, keyring: Keyring) -> None:
    old_id = store_secrets(engine, keyring)
    rotated = keyring.with_new_active("k2")
    store = SqlConversationStore(engine, rotated)

    new = store.create_conversation(channel="api", external_user=PHONE)
    found = store.find_conversation(channel="web", external_user=PHONE)

    assert found is not None and found.id == old_id and found.external_user == PHONE
    assert store.find_conversation(channel="api", external_user=PHONE) == new
    assert SqlPiiVault(engine, rotated, old_id).known()["[身份证号_1]"] == ID_NUMBER


def test_a_value_copied_to_another_row_does_not_decrypt(engine: Engine, keyring: Keyring) -> None:
    store = SqlConversationStore(engine, keyring)
    victim = store.create_conversation(channel="web", external_user=PHONE)
    other = store.create_conversation(channel="web", external_user="someone-else")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE conversations SET external_user_encrypted = "
                "(SELECT external_user_encrypted FROM conversations WHERE id = :victim) WHERE id = :other"
            ),
            {"victim": victim.id, "other": other.id},
        )

    with pytest.raises(FieldDecryptError, match=other.id):
        store.get_conversation(other.id)


def test_build_stores_encrypts_with_the_configured_keys(make_settings: Callable[..., Settings]) -> None:
    ring = Keyring.generate("prod1")
    stores = build_stores(make_settings(audit_keys=ring.to_env_value()))
    try:
        assert stores.keyring.active_id == "prod1"
        conv = stores.conversations.create_conversation(channel="web", external_user=PHONE)
        stores.vault_for(conv.id).remember({"[手机号_1]": PHONE})
        assert SqlPiiVault(stores.engine, ring, conv.id).known() == {"[手机号_1]": PHONE}
    finally:
        stores.close()


# --- upgrading a 0001 database that holds plaintext ---------------------------------------------

_V1_CONVERSATIONS = sa.table(
    "conversations",
    sa.column("id", sa.String),
    sa.column("channel", sa.String),
    sa.column("external_user", sa.String),
    sa.column("status", sa.String),
    sa.column("created_at", UTCDateTime()),
    sa.column("updated_at", UTCDateTime()),
)


def database_at_0001_with_a_plaintext_user(database_url: str, keyring: Keyring) -> Engine:
    """A database as kefu 0001 left it: an audit log made by ``ensure_schema``, a plaintext user."""
    engine = make_engine(database_url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0001")
    now = datetime.now(UTC)
    row = {"id": "c" * 32, "channel": "web", "external_user": PHONE, "status": "open"}
    with engine.begin() as conn:
        conn.execute(_V1_CONVERSATIONS.insert().values(**row, created_at=now, updated_at=now))
    AuditLog(engine, keyring).append("model_input", {"text": "你好"}, conversation_id="c" * 32)
    return engine


def test_upgrade_from_0001_encrypts_existing_users(database_url: str, keyring: Keyring) -> None:
    engine = database_at_0001_with_a_plaintext_user(database_url, keyring)
    sqlite_path = Path(database_url.removeprefix("sqlite:///"))
    if database_url.startswith("sqlite"):
        assert PHONE.encode() in sqlite_bytes(sqlite_path)  # it was on disk in clear before
    try:
        migrate(engine, keyring=keyring)

        assert current_revision(engine) == ScriptDirectory.from_config(alembic_config()).get_current_head()
        found = SqlConversationStore(engine, keyring).find_conversation(channel="web", external_user=PHONE)
        assert found is not None and (found.id, found.external_user) == ("c" * 32, PHONE)
        assert verify(engine, keyring=keyring).ok  # the audit tables were kept as they were
        with engine.connect() as conn:
            raw = conn.execute(sa.text("SELECT * FROM conversations")).mappings().one()
        assert PHONE not in repr(dict(raw))
    finally:
        engine.dispose()
    if database_url.startswith("sqlite"):  # the old value's pages were zeroed, not just freed
        assert PHONE.encode() not in sqlite_bytes(sqlite_path)


def test_upgrade_without_the_keys_refuses_and_changes_nothing(database_url: str, keyring: Keyring) -> None:
    engine = database_at_0001_with_a_plaintext_user(database_url, keyring)
    try:
        with pytest.raises(ConfigError, match="needs the KEFU_AUDIT_KEYS keyring"):
            migrate(engine)
        assert current_revision(engine) == "0001"
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT external_user FROM conversations")).scalar() == PHONE
    finally:
        engine.dispose()


def test_downgrade_to_0001_decrypts_back(database_url: str, keyring: Keyring) -> None:
    engine = database_at_0001_with_a_plaintext_user(database_url, keyring)
    try:
        migrate(engine, keyring=keyring)
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn, keyring=keyring), "0001")
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT external_user FROM conversations")).scalar() == PHONE
    finally:
        engine.dispose()
