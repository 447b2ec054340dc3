"""Retention: delete old records without breaking verification.

Only a *prefix* of the chain is ever deleted (every record before the first one young enough to
keep), and in the same locked transaction a checkpoint row stores the seq and hash of the last
deleted record. ``verify`` starts from the newest checkpoint instead of the genesis hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select

from kefu.audit.lock import chain_lock
from kefu.audit.records import format_timestamp, utcnow
from kefu.audit.schema import audit_checkpoints, audit_log, ensure_schema
from kefu.errors import InvalidInput


@dataclass(frozen=True)
class PurgeResult:
    purged: int  # records deleted
    checkpoint_seq: int | None  # seq of the last deleted record; None when nothing was old enough

    def __str__(self) -> str:
        if not self.purged:
            return "no audit records were old enough to purge"
        return f"purged {self.purged} audit records (through seq {self.checkpoint_seq}); the chain stays verifiable"


def purge_older_than(engine: Engine, days: float, *, now: datetime | None = None) -> PurgeResult:
    """Delete the records written more than ``days`` days before ``now`` (default: the current time)."""
    if days < 0:
        raise InvalidInput(f"retention days must be zero or more, got {days}")
    moment = now or utcnow()
    cutoff = format_timestamp(moment - timedelta(days=days))
    ensure_schema(engine)
    with chain_lock(engine) as conn:
        first_kept = conn.execute(
            select(func.min(audit_log.c.seq)).where(audit_log.c.created_at >= cutoff)
        ).scalar()
        older = select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
        if first_kept is not None:
            older = older.where(audit_log.c.seq < first_kept)
        last = conn.execute(older).first()
        if last is None:
            return PurgeResult(0, None)
        deleted = conn.execute(audit_log.delete().where(audit_log.c.seq <= last.seq))
        conn.execute(
            audit_checkpoints.insert().values(
                seq=last.seq,
                hash=last.hash,
                purged_at=format_timestamp(moment),
                purged_count=deleted.rowcount,
            )
        )
    return PurgeResult(deleted.rowcount, int(last.seq))
