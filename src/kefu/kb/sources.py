"""Registered knowledge-base sources — a folder, a local git checkout, or a list of URLs — that
``kefu kb sync`` and the background worker re-ingest on a schedule (weekly by default).

Each source remembers the documents it produced last time and the content hash each had when it
was read, so a sync retires exactly the documents that disappeared from *that* source, never touches
documents uploaded by hand or coming from another source, and applies only what changed in the
source since it was last read: a rollback or an edit made in between stands until the file changes
again. It also remembers the files that could not be read (with their size and mtime and the error),
so a broken file is reported once per change, not at every sync.
"""

from __future__ import annotations

import builtins
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import uuid4

from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, Text, select

from kefu.errors import InvalidInput, NotFound

SourceKind = Literal["folder", "git", "urls", "file"]
KINDS: tuple[str, ...] = ("folder", "git", "urls", "file")
WEEKLY = 7 * 24 * 3600

metadata = MetaData()

kb_sources = Table(
    "kb_sources",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("location", Text, nullable=False),  # folder/file path, or URLs one per line
    Column("interval_seconds", Integer, nullable=False),  # 0: only by hand
    Column("created_at", String(32), nullable=False),
    Column("last_synced_at", String(32), nullable=True),
    Column("last_result", Text, nullable=True),  # JSON summary of the last run (+ "unreadable")
    # JSON {doc_id: content hash as read}: the documents the last run produced (a plain JSON list of
    # doc ids before kefu remembered the hashes; read as "hash unknown")
    Column("doc_ids", Text, nullable=False),
)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Source:
    id: str
    kind: SourceKind
    location: str
    interval_seconds: int = WEEKLY
    created_at: str = ""
    last_synced_at: str | None = None
    last_result: dict[str, Any] = field(default_factory=dict)
    doc_ids: list[str] = field(default_factory=list)
    read_hashes: dict[str, str] = field(default_factory=dict)  # doc_id → content hash when last read

    @property
    def unreadable(self) -> dict[str, dict[str, str]]:
        """The targets the last run could not read: {target: {"error", "stamp"}} (see ``record_run``)."""
        found = self.last_result.get("unreadable")
        return found if isinstance(found, dict) else {}

    @property
    def urls(self) -> list[str]:
        return [u.strip() for u in self.location.splitlines() if u.strip()]

    def due(self, now: datetime | None = None) -> bool:
        if self.interval_seconds <= 0:
            return False
        if self.last_synced_at is None:
            return True
        last = datetime.fromisoformat(self.last_synced_at)
        return (now or _now()) >= last + timedelta(seconds=self.interval_seconds)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "location": self.location,
            "interval_seconds": self.interval_seconds,
            "created_at": self.created_at,
            "last_synced_at": self.last_synced_at,
            "last_result": self.last_result,
            "documents": len(self.doc_ids),
        }


class SourceStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, kind: str, location: str, interval_seconds: int = WEEKLY) -> Source:
        """Register a source, or return the one already registered for the same kind and location."""
        if kind not in KINDS:
            raise InvalidInput(f"unknown source kind {kind!r}; use one of {', '.join(KINDS)}")
        if not location.strip():
            raise InvalidInput("a source needs a location: a folder or file path, or URLs")
        if interval_seconds < 0:
            raise InvalidInput("the sync interval must be 0 (by hand only) or a number of seconds")
        for existing in self.list():
            if existing.kind == kind and existing.location == location:
                if existing.interval_seconds != interval_seconds:
                    existing.interval_seconds = interval_seconds
                    self._update(existing)
                return existing
        source = Source(
            id=uuid4().hex[:12],
            kind=kind,  # type: ignore[arg-type]
            location=location,
            interval_seconds=interval_seconds,
            created_at=_now().isoformat(timespec="seconds"),
        )
        with self.engine.begin() as conn:
            conn.execute(
                kb_sources.insert().values(
                    id=source.id,
                    kind=source.kind,
                    location=source.location,
                    interval_seconds=source.interval_seconds,
                    created_at=source.created_at,
                    doc_ids="[]",
                )
            )
        return source

    def list(self) -> list[Source]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(kb_sources).order_by(kb_sources.c.created_at, kb_sources.c.id)).all()
        return [_source(row._mapping) for row in rows]

    def get(self, source_id: str) -> Source:
        with self.engine.connect() as conn:
            row = conn.execute(select(kb_sources).where(kb_sources.c.id == source_id)).first()
        if row is None:
            raise NotFound(f"no knowledge-base source {source_id!r}; `kefu kb sources` lists them")
        return _source(row._mapping)

    def owner_of(self, doc_id: str) -> Source | None:
        return next((s for s in self.list() if doc_id in s.doc_ids), None)

    def record_run(
        self,
        source: Source,
        doc_ids: builtins.list[str],
        result: dict[str, Any],
        hashes: dict[str, str] | None = None,
    ) -> None:
        """Remember a run: the documents the source holds (with the content hash each was read with;
        unknown ones are kept as "") and the summary (its ``unreadable`` map included)."""
        source.doc_ids = sorted(set(doc_ids))
        known = hashes or {}
        source.read_hashes = {d: known.get(d, "") for d in source.doc_ids}
        source.last_result = result
        source.last_synced_at = _now().isoformat(timespec="seconds")
        self._update(source)

    def remove(self, source_id: str) -> Source:
        source = self.get(source_id)
        with self.engine.begin() as conn:
            conn.execute(kb_sources.delete().where(kb_sources.c.id == source_id))
        return source

    def _update(self, source: Source) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                kb_sources.update()
                .where(kb_sources.c.id == source.id)
                .values(
                    interval_seconds=source.interval_seconds,
                    last_synced_at=source.last_synced_at,
                    last_result=json.dumps(source.last_result, ensure_ascii=False),
                    doc_ids=json.dumps(
                        {d: source.read_hashes.get(d, "") for d in source.doc_ids}, ensure_ascii=False
                    ),
                )
            )


def _source(row: Any) -> Source:
    produced = json.loads(row["doc_ids"] or "[]")
    hashes = produced if isinstance(produced, dict) else dict.fromkeys(produced, "")
    return Source(
        id=row["id"],
        kind=row["kind"],
        location=row["location"],
        interval_seconds=row["interval_seconds"],
        created_at=row["created_at"],
        last_synced_at=row["last_synced_at"],
        last_result=json.loads(row["last_result"]) if row["last_result"] else {},
        doc_ids=sorted(hashes),
        read_hashes={str(k): str(v) for k, v in hashes.items()},
    )
