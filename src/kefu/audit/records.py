"""Reading the chain: ``AuditRecord``, the fixed-width timestamps, paging, and the chain head."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, RowMapping, select

from kefu.audit.crypto import GENESIS_HASH, ChainFields
from kefu.audit.schema import audit_checkpoints, audit_log

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
PAGE_SIZE = 500


def utcnow() -> datetime:
    return datetime.now(UTC)


def format_timestamp(moment: datetime) -> str:
    """Fixed-width UTC text: sorts like time, hashes the same on every database."""
    if moment.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def parse_timestamp(value: str) -> datetime:
    return datetime.strptime(value, TIMESTAMP_FORMAT).replace(tzinfo=UTC)


@dataclass(frozen=True)
class AuditRecord:
    """One stored record, still encrypted; ``AuditLog.decrypt(record)`` gives its payload."""

    fields: ChainFields
    hash: str

    @property
    def seq(self) -> int:
        return self.fields.seq

    @property
    def created_at(self) -> datetime:
        return parse_timestamp(self.fields.created_at)

    @property
    def kind(self) -> str:
        return self.fields.kind

    @property
    def actor(self) -> str:
        return self.fields.actor

    @property
    def conversation_id(self) -> str | None:
        return self.fields.conversation_id

    @property
    def key_id(self) -> str:
        return self.fields.key_id

    @property
    def prev_hash(self) -> str:
        return self.fields.prev_hash


def row_to_record(row: RowMapping) -> AuditRecord:
    fields = ChainFields(
        seq=int(row["seq"]),
        created_at=row["created_at"],
        kind=row["kind"],
        actor=row["actor"],
        conversation_id=row["conversation_id"],
        key_id=row["key_id"],
        nonce=bytes(row["nonce"]),
        ciphertext=bytes(row["ciphertext"]),
        prev_hash=row["prev_hash"],
    )
    return AuditRecord(fields, row["hash"])


def iter_records(
    engine: Engine, *, after_seq: int = 0, conversation_id: str | None = None
) -> Iterator[AuditRecord]:
    """Records in seq order, read a page at a time (no transaction held open between pages)."""
    while True:
        query = (
            select(audit_log).where(audit_log.c.seq > after_seq).order_by(audit_log.c.seq).limit(PAGE_SIZE)
        )
        if conversation_id is not None:
            query = query.where(audit_log.c.conversation_id == conversation_id)
        with engine.connect() as conn:
            page = [row_to_record(row) for row in conn.execute(query).mappings()]
        yield from page
        if len(page) < PAGE_SIZE:
            return
        after_seq = page[-1].seq


@dataclass(frozen=True)
class ChainHead:
    seq: int
    hash: str
    created_at: str | None


def chain_head(conn: Connection) -> ChainHead:
    """The last record, else the last purge checkpoint, else the genesis."""
    last = conn.execute(
        select(audit_log.c.seq, audit_log.c.hash, audit_log.c.created_at)
        .order_by(audit_log.c.seq.desc())
        .limit(1)
    ).first()
    if last is not None:
        return ChainHead(int(last.seq), last.hash, last.created_at)
    checkpoint = conn.execute(
        select(audit_checkpoints.c.seq, audit_checkpoints.c.hash, audit_checkpoints.c.purged_at)
        .order_by(audit_checkpoints.c.seq.desc())
        .limit(1)
    ).first()
    if checkpoint is not None:
        return ChainHead(int(checkpoint.seq), checkpoint.hash, None)
    return ChainHead(0, GENESIS_HASH, None)
