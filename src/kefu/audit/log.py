"""``AuditLog``: append-only, hash-chained, encrypted records of what the bot and its operators did.

Each record's payload (already PII-redacted by the caller) is AES-256-GCM encrypted under the active
key, bound to its metadata as associated data; the row hash covers every column and the previous
row's hash, so an edit, a deletion or a reordering breaks the chain (see ``kefu.audit.verify``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, exc, select

from kefu.audit.crypto import (
    ChainFields,
    associated_data,
    decrypt_payload,
    encode_payload,
    encrypt,
    record_hash,
)
from kefu.audit.errors import AuditWriteError
from kefu.audit.keyring import Keyring
from kefu.audit.lock import chain_lock
from kefu.audit.records import (
    AuditRecord,
    chain_head,
    format_timestamp,
    iter_records,
    row_to_record,
    utcnow,
)
from kefu.audit.retention import PurgeResult, purge_older_than
from kefu.audit.schema import audit_log, ensure_schema
from kefu.errors import InvalidInput, NotFound

_LIMITS = {"kind": 64, "actor": 128, "conversation_id": 128}


def _check_meta(kind: str, actor: str, conversation_id: str | None) -> None:
    for name, value in (("kind", kind), ("actor", actor), ("conversation_id", conversation_id)):
        if value is None and name == "conversation_id":
            continue
        if not value or len(value) > _LIMITS[name]:
            raise InvalidInput(f"audit {name} must be 1-{_LIMITS[name]} characters, got {value!r}")


class AuditLog:
    """Thread- and process-safe appender and reader over one database (``ensure_schema`` on init)."""

    def __init__(self, engine: Engine, keyring: Keyring, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.engine = engine
        self.keyring = keyring
        self._clock = clock
        ensure_schema(engine)

    def append(
        self, kind: str, payload: dict[str, Any], *, conversation_id: str | None = None, actor: str = "bot"
    ) -> AuditRecord:
        """Encrypt ``payload`` and chain it after the current head; durable when it returns."""
        _check_meta(kind, actor, conversation_id)
        plaintext = encode_payload(payload)
        try:
            with chain_lock(self.engine) as conn:
                record = self._next_record(conn, kind, plaintext, conversation_id, actor)
                conn.execute(audit_log.insert().values(**vars(record.fields), hash=record.hash))
        except exc.IntegrityError as err:
            raise AuditWriteError(
                "another writer took the next audit seq without the chain lock; every writer must go "
                "through kefu.audit.AuditLog.append"
            ) from err
        return record

    def _next_record(
        self, conn: Connection, kind: str, plaintext: bytes, conversation_id: str | None, actor: str
    ) -> AuditRecord:
        head = chain_head(conn)
        created_at = format_timestamp(self._clock())
        if head.created_at is not None and created_at < head.created_at:
            created_at = head.created_at  # the chain's clock never runs backwards
        seq, key_id = head.seq + 1, self.keyring.active_id
        aad = associated_data(seq, kind, created_at, head.hash, actor, conversation_id, key_id)
        nonce, ciphertext = encrypt(self.keyring.active_key, plaintext, aad)
        fields = ChainFields(
            seq, created_at, kind, actor, conversation_id, key_id, nonce, ciphertext, head.hash
        )
        return AuditRecord(fields, record_hash(fields))

    def get(self, seq: int) -> AuditRecord:
        with self.engine.connect() as conn:
            row = conn.execute(select(audit_log).where(audit_log.c.seq == seq)).mappings().first()
        if row is None:
            raise NotFound(
                f"audit record {seq} not found — it was never written or was purged by retention; "
                "list what exists with `kefu audit verify`"
            )
        return row_to_record(row)

    def read(self, seq: int) -> dict[str, Any]:
        """The decrypted payload of record ``seq``."""
        return self.decrypt(self.get(seq))

    def decrypt(self, record: AuditRecord) -> dict[str, Any]:
        return decrypt_payload(self.keyring, record.fields)

    def records(self, conversation_id: str | None = None) -> Iterator[AuditRecord]:
        """All records (or one conversation's) in chain order, still encrypted."""
        return iter_records(self.engine, conversation_id=conversation_id)

    def purge_older_than(self, days: float) -> PurgeResult:
        """Delete records older than ``days`` days, keeping the chain verifiable (see ``retention``)."""
        return purge_older_than(self.engine, days, now=self._clock())
