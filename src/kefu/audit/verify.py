"""Walk the chain and name the first broken record. Needs no keys; with a keyring it also checks
every payload's AES-GCM tag (which additionally catches a chain re-hashed by someone without the key).

What each finding means:
- seq gap            → the records in between were deleted
- hash mismatch      → the row was edited after it was written (or rows were swapped)
- prev_hash mismatch → a record before it was replaced or the rows were reordered
- decrypt failure    → the key is wrong/missing, or ciphertext or metadata were altered and re-hashed

Deleting records from the *end* leaves a valid shorter chain: keep the head hash that ``verify``
reports somewhere else (a ticket, a log shipper) and compare it later.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, select

from kefu.audit.crypto import GENESIS_HASH, decrypt_payload, record_hash
from kefu.audit.errors import AuditDecryptError
from kefu.audit.keyring import Keyring
from kefu.audit.records import AuditRecord, ChainHead, iter_records
from kefu.audit.schema import audit_checkpoints, has_audit_tables


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    checked: int  # records verified before the first broken one (all of them when ok)
    first_broken: int | None  # seq of the first broken record
    reason: str
    head_seq: int | None = None  # last good record (when ok): note it down to detect truncation later
    head_hash: str | None = None
    purged_through: int | None = None  # retention checkpoint the walk started from


def verify(engine: Engine, *, keyring: Keyring | None = None) -> VerifyReport:
    """Check every record's hash and link; with ``keyring`` also decrypt every payload."""
    if not has_audit_tables(engine):
        return VerifyReport(True, 0, None, "the audit log is empty (its tables do not exist yet)")
    start = _start(engine)
    expected_seq, expected_prev, checked = start.seq + 1, start.hash, 0
    for record in iter_records(engine, after_seq=start.seq):
        problem = _problem(record, expected_seq, expected_prev, keyring)
        if problem:
            return VerifyReport(False, checked, record.seq, problem, purged_through=start.seq or None)
        checked, expected_seq, expected_prev = checked + 1, expected_seq + 1, record.hash
    reason = "chain intact" + (" and every payload decrypts" if keyring else "")
    head_seq = expected_seq - 1
    return VerifyReport(True, checked, None, reason, head_seq or None, expected_prev, start.seq or None)


def _start(engine: Engine) -> ChainHead:
    """The newest retention checkpoint, else the genesis."""
    query = select(audit_checkpoints.c.seq, audit_checkpoints.c.hash).order_by(audit_checkpoints.c.seq.desc())
    with engine.connect() as conn:
        row = conn.execute(query.limit(1)).first()
    return ChainHead(int(row.seq), row.hash, None) if row else ChainHead(0, GENESIS_HASH, None)


def _problem(
    record: AuditRecord, expected_seq: int, expected_prev: str, keyring: Keyring | None
) -> str | None:
    if record.seq != expected_seq:
        return (
            f"seq gap: expected seq {expected_seq}, found {record.seq} — "
            f"record(s) {expected_seq}..{record.seq - 1} were deleted"
        )
    if record_hash(record.fields) != record.hash:
        return "hash mismatch: the record was edited after it was written (or rows were swapped)"
    if record.prev_hash != expected_prev:
        return (
            f"prev_hash mismatch: it does not link to record {record.seq - 1} — "
            "a record before it was replaced, or records were deleted or reordered"
        )
    if keyring is not None:
        try:
            decrypt_payload(keyring, record.fields)
        except AuditDecryptError as err:
            return err.message
    return None


def format_report(report: VerifyReport) -> str:
    """One human line for ``kefu audit verify`` (exit non-zero when ``not report.ok``)."""
    base = (
        f" (continuing from the retention checkpoint at seq {report.purged_through})"
        if report.purged_through
        else ""
    )
    if report.ok:
        if not report.checked:
            return f"audit log OK: no records to check{base} — {report.reason}"
        return (
            f"audit log OK: {report.checked} records verified{base}, {report.reason}; "
            f"head seq {report.head_seq}, hash {report.head_hash} — keep this hash to detect truncation later"
        )
    return (
        f"audit log BROKEN at seq {report.first_broken}: {report.reason}. "
        f"{report.checked} records before it verified{base}. Restore the database from a backup and "
        "find out who had write access to it."
    )
