"""The SQL under ``KbStore``: reading snapshots and versions, planning a change, writing it.

Every function takes an open ``Connection``; ``KbStore`` owns the transactions and the write lock.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select

from kefu.errors import InvalidInput, NotFound
from kefu.kb.documents import SourceDocument
from kefu.kb.versions_json import _document_from
from kefu.kb.versions_schema import (
    DOC_ID_MAX,
    ApplyResult,
    KbVersion,
    VersionStats,
    _Entry,
    kb_document_versions,
    kb_documents,
    kb_version_entries,
    kb_versions,
)

_VOLATILE = ("doc_id", "source", "updated_at", "content_hash")


# ---------------------------------------------------------------------------------------- queries


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _head_number(conn: Connection) -> int | None:
    return conn.scalar(select(func.max(kb_versions.c.number)))


def _require_version(conn: Connection, number: int, head: int | None) -> None:
    found = conn.scalar(select(kb_versions.c.number).where(kb_versions.c.number == number))
    if found is None:
        known = f"versions are v1…v{head}" if head else "the knowledge base has no versions yet"
        raise NotFound(f"knowledge-base version v{number} does not exist ({known}); see the history")


def _snapshot(conn: Connection, number: int | None) -> dict[str, _Entry]:
    if number is None:
        return {}
    e, d = kb_version_entries.c, kb_document_versions.c
    query = (
        select(e.doc_id, d.id, d.content_hash, d.faq_count)
        .join(kb_document_versions, d.id == e.document_version_id)
        .where(e.version == number)
    )
    return {row.doc_id: _Entry(row.id, row.content_hash, row.faq_count) for row in conn.execute(query)}


def _load_documents(conn: Connection, number: int, *doc_ids: str) -> list[SourceDocument]:
    e, d = kb_version_entries.c, kb_document_versions.c
    query = (
        select(e.doc_id, d.body, d.source, d.updated_at)
        .join(kb_document_versions, d.id == e.document_version_id)
        .where(e.version == number)
        .order_by(e.doc_id)
    )
    if doc_ids:
        query = query.where(e.doc_id.in_(doc_ids))
    return [
        _document_from({**row.body, "doc_id": row.doc_id, "source": row.source, "updated_at": row.updated_at})
        for row in conn.execute(query)
    ]


def _read_version(conn: Connection, number: int) -> KbVersion:
    row = conn.execute(select(kb_versions).where(kb_versions.c.number == number)).one()
    return _version_of(row)


def _version_of(row: Any) -> KbVersion:
    return KbVersion(
        number=row.number,
        created_at=datetime.fromisoformat(row.created_at),
        message=row.message,
        author=row.author,
        parent=row.parent,
        stats=VersionStats(**row.stats),
    )


def _document_not_found(conn: Connection, doc_id: str, number: int | None) -> NotFound:
    where = f"version v{number}" if number else "the knowledge base (it has no versions yet)"
    query = select(func.max(kb_version_entries.c.version)).where(kb_version_entries.c.doc_id == doc_id)
    last = conn.scalar(query)
    if last is None:
        return NotFound(f"document {doc_id!r} is not in {where} and never was; check the doc_id")
    return NotFound(
        f"document {doc_id!r} is not in {where}; it was last in v{last} — read it with version={last}"
    )


# ---------------------------------------------------------------------------------------- writing


@dataclass
class _Plan:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # current documents whose version carries over

    def result(self, version: KbVersion | None) -> ApplyResult:
        return ApplyResult(
            version=version,
            added=self.added,
            updated=self.updated,
            deleted=sorted(self.deleted),
            unchanged=self.unchanged,
            duplicates=self.duplicates,
        )


def _plan(
    current: dict[str, _Entry], puts: dict[str, SourceDocument], deletes: set[str], replace_all: bool
) -> _Plan:
    """Sort the change into added/updated/unchanged/duplicate/deleted. A document that stays (not put)
    or an unchanged put owns its content; other puts are taken in doc_id order, first come first owned."""
    plan = _Plan()
    retired = deletes | (current.keys() - puts.keys() if replace_all else set())
    owner = {e.content_hash: d for d, e in current.items() if d not in retired and d not in puts}
    for doc_id in sorted(puts):
        if doc_id in current and current[doc_id].content_hash == puts[doc_id].content_hash:
            plan.unchanged.append(doc_id)
            owner.setdefault(current[doc_id].content_hash, doc_id)
    for doc_id in sorted(puts.keys() - set(plan.unchanged)):
        content_hash = puts[doc_id].content_hash
        if content_hash in owner:
            plan.duplicates.append((doc_id, owner[content_hash]))
            if doc_id in current:  # its stored content is no longer what its source says
                retired.add(doc_id)
            continue
        owner[content_hash] = doc_id
        (plan.updated if doc_id in current else plan.added).append(doc_id)
    plan.deleted = sorted(retired & current.keys())
    changing = set(plan.updated) | set(plan.deleted)
    plan.kept = sorted(d for d in current if d not in changing)
    return plan


def _puts_by_id(puts: Sequence[SourceDocument]) -> dict[str, SourceDocument]:
    by_id: dict[str, SourceDocument] = {}
    for doc in puts:
        if doc.doc_id in by_id:
            raise InvalidInput(f"document {doc.doc_id!r} is put twice in one change; put it once")
        if len(doc.doc_id) > DOC_ID_MAX:
            raise InvalidInput(f"doc_id {doc.doc_id[:80]!r}… is over {DOC_ID_MAX} characters; shorten it")
        by_id[doc.doc_id] = doc
    return by_id


def _body(doc: SourceDocument) -> dict[str, Any]:
    body = {k: v for k, v in doc.to_dict().items() if k not in _VOLATILE}
    try:
        json.dumps(body, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"{doc.doc_id}: its meta cannot be stored as JSON ({exc}); keep meta to plain values"
        ) from None
    return body


def _check_label(name: str, value: str, limit: int) -> None:
    if not value.strip():
        raise InvalidInput(f"a knowledge-base version needs a non-empty {name}")
    if len(value) > limit:
        raise InvalidInput(f"the {name} is over {limit} characters; shorten it")


def _check_faq_ids(conn: Connection, head: int | None, kept: list[str], new: list[SourceDocument]) -> None:
    """FAQ ids must be unique across the new snapshot (the index needs them to be)."""
    owners: dict[str, str] = {}
    kept_set = set(kept)
    old = [d for d in (_load_faq_documents(conn, head) if head else []) if d.doc_id in kept_set]
    for doc in sorted(old + new, key=lambda d: d.doc_id):
        counts = Counter(e.id for e in doc.faqs)
        for entry in doc.faqs:
            other = owners.setdefault(entry.id, doc.doc_id)
            if other != doc.doc_id or counts[entry.id] > 1:
                where = f"in {other} and in {doc.doc_id}" if other != doc.doc_id else f"twice in {other}"
                raise InvalidInput(
                    f"FAQ id {entry.id!r} is {where}; FAQ ids must be unique across the knowledge base "
                    "— rename one. Nothing was applied"
                )


def _load_faq_documents(conn: Connection, number: int) -> list[SourceDocument]:
    e, d = kb_version_entries.c, kb_document_versions.c
    query = (
        select(e.doc_id, d.body, d.source, d.updated_at)
        .join(kb_document_versions, d.id == e.document_version_id)
        .where(e.version == number, d.kind == "faq")
    )
    return [
        _document_from({**row.body, "doc_id": row.doc_id, "source": row.source, "updated_at": row.updated_at})
        for row in conn.execute(query)
    ]


def _write_documents(
    conn: Connection, docs: list[SourceDocument], bodies: dict[str, dict[str, Any]], now: str
) -> dict[str, _Entry]:
    if not docs:
        return {}
    ids = [doc.doc_id for doc in docs]
    known: set[str] = set()
    for start in range(0, len(ids), 500):
        query = select(kb_documents.c.doc_id).where(kb_documents.c.doc_id.in_(ids[start : start + 500]))
        known.update(conn.scalars(query))
    fresh = [{"doc_id": d, "created_at": now} for d in ids if d not in known]
    if fresh:
        conn.execute(insert(kb_documents), fresh)
    rows = [
        {
            "doc_id": doc.doc_id,
            "content_hash": doc.content_hash,
            "kind": doc.kind,
            "title": doc.title,
            "body": bodies[doc.doc_id],
            "faq_count": len(doc.faqs),
            "source": doc.source,
            "updated_at": doc.updated_at,
            "created_at": now,
        }
        for doc in docs
    ]
    statement = insert(kb_document_versions).returning(
        kb_document_versions.c.id, sort_by_parameter_order=True
    )
    new_ids = conn.scalars(statement, rows).all()
    return {
        doc.doc_id: _Entry(new_id, doc.content_hash, len(doc.faqs))
        for doc, new_id in zip(docs, new_ids, strict=True)
    }


def _write_version(
    conn: Connection,
    head: int | None,
    snapshot: dict[str, _Entry],
    message: str,
    author: str,
    stats: VersionStats,
    now: str,
) -> KbVersion:
    number = (head or 0) + 1
    version = KbVersion(
        number=number,
        created_at=datetime.fromisoformat(now),
        message=message,
        author=author,
        parent=head,
        stats=stats,
    )
    row = {"number": number, "created_at": now, "message": message, "author": author, "parent": head}
    conn.execute(insert(kb_versions), [{**row, "stats": asdict(stats)}])
    entries = [
        {"version": number, "doc_id": doc_id, "document_version_id": entry.id}
        for doc_id, entry in sorted(snapshot.items())
    ]
    if entries:
        conn.execute(insert(kb_version_entries), entries)
    return version


def _hashes(snapshot: dict[str, _Entry]) -> dict[str, str]:
    return {doc_id: entry.content_hash for doc_id, entry in snapshot.items()}


def _compare(old: dict[str, _Entry], new: dict[str, _Entry]) -> tuple[list[str], list[str], list[str]]:
    added = sorted(new.keys() - old.keys())
    removed = sorted(old.keys() - new.keys())
    changed = sorted(d for d in old.keys() & new.keys() if old[d].content_hash != new[d].content_hash)
    return added, removed, changed
