"""The knowledge base under version control: every version of every document, and a numbered KB
version — a full snapshot — for every change.

    kb_documents          one row per doc_id ever stored
    kb_document_versions  one row per stored content of a document (``body``: ``to_dict()`` minus
                          doc_id, source, updated_at and content_hash, which have columns of their own)
    kb_versions           v1, v2, …: message, author, parent, stats; the head is the highest number
    kb_version_entries    (version, doc_id) → document version: the snapshot of each KB version

Migration 0004 creates the tables; ``kefu.storage.models`` copies them into its metadata so the schema
test compares them. History is never rewritten: ``rollback`` makes a new version equal to an old one.
Writers are serialised (PostgreSQL advisory lock, SQLite ``BEGIN IMMEDIATE``) and each change is one
transaction, so a failure leaves the previous version intact and concurrent writers lose nothing.
Reads take no lock: a version, once written, never changes. Thread-safe; every method is sync.

The tables and values live in ``versions_schema``, the SQL helpers in ``versions_sql``, diffs in
``versions_diff``, the JSON export/import in ``versions_json`` and the FAQ checks in ``faq_check``;
every public name is importable from here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, select, text

from kefu.errors import Conflict, InvalidInput, NotFound
from kefu.kb.documents import SourceDocument
from kefu.kb.faq_check import ConflictKind, FaqConflict, FaqRef, find_faq_conflicts, normalize_text
from kefu.kb.versions_diff import DocChange, KbDiff, _doc_change
from kefu.kb.versions_json import (
    EXPORT_FORMAT,
    _read_document_file,
    _remove_stale,
    _write_json,
    export_paths,
)
from kefu.kb.versions_schema import (
    DOC_ID_MAX,
    KB_TABLES,
    ApplyResult,
    DocumentVersion,
    KbVersion,
    VersionStats,
    kb_document_versions,
    kb_documents,
    kb_version_entries,
    kb_versions,
    metadata,
    parse_optional_version,
    parse_version,
)
from kefu.kb.versions_sql import (
    _body,
    _check_faq_ids,
    _check_label,
    _compare,
    _document_not_found,
    _hashes,
    _head_number,
    _load_documents,
    _now,
    _plan,
    _puts_by_id,
    _read_version,
    _require_version,
    _snapshot,
    _version_of,
    _write_documents,
    _write_version,
)
from kefu.storage.engine import reachable

if TYPE_CHECKING:
    from kefu.kb.types import Embedder

__all__ = [
    "DOC_ID_MAX",
    "EXPORT_FORMAT",
    "KB_TABLES",
    "ApplyResult",
    "ConflictKind",
    "DocChange",
    "DocumentVersion",
    "FaqConflict",
    "FaqRef",
    "KbDiff",
    "KbStore",
    "KbVersion",
    "VersionStats",
    "export_paths",
    "find_faq_conflicts",
    "kb_document_versions",
    "kb_documents",
    "kb_version_entries",
    "kb_versions",
    "metadata",
    "normalize_text",
    "parse_optional_version",
    "parse_version",
]

# Any fixed 64-bit number, shared by every kefu process writing to the same knowledge base.
_PG_LOCK_KEY = 0x6B656675_6B627631  # "kefu" "kbv1"


class KbStore:
    """The versioned knowledge base in a SQL database (SQLite or PostgreSQL, migrated to 0004+)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- writing

    def apply(
        self,
        puts: Sequence[SourceDocument] = (),
        deletes: Sequence[str] = (),
        *,
        message: str,
        author: str = "system",
        replace_all: bool = False,
    ) -> ApplyResult:
        """Store new or changed documents and retire ``deletes`` (with ``replace_all``: every current
        document not in ``puts``), as one new KB version — or none when nothing changed. A put whose
        content equals another current document's is not stored (``duplicates``); if that document
        existed with other content, it is retired. All or nothing: one transaction."""
        by_id = _puts_by_id(puts)
        bodies = {doc_id: _body(doc) for doc_id, doc in by_id.items()}
        clash = sorted(by_id.keys() & set(deletes))
        if clash:
            raise InvalidInput(f"{clash[0]!r} is both put and deleted in one change; do one or the other")
        _check_label("message", message, 100_000)
        _check_label("author", author, 255)
        with self._writing() as conn:
            head = _head_number(conn)
            current = _snapshot(conn, head)
            missing = sorted(set(deletes) - current.keys())
            if missing:
                raise NotFound(
                    f"cannot delete {missing[0]!r}: it is not in the knowledge base"
                    f"{f' (head v{head})' if head else ''}; nothing was applied"
                )
            plan = _plan(current, by_id, set(deletes), replace_all)
            if not (plan.added or plan.updated or plan.deleted):
                return plan.result(None)
            new_faq_docs = [by_id[d] for d in plan.added + plan.updated if by_id[d].kind == "faq"]
            if new_faq_docs:
                _check_faq_ids(conn, head, plan.kept, new_faq_docs)
            now = _now()
            written = _write_documents(conn, [by_id[d] for d in plan.added + plan.updated], bodies, now)
            snapshot = {d: current[d] for d in plan.kept} | written
            stats = VersionStats(
                added=len(plan.added),
                updated=len(plan.updated),
                deleted=len(plan.deleted),
                documents=len(snapshot),
                faqs=sum(e.faq_count for e in snapshot.values()),
            )
            version = _write_version(conn, head, snapshot, message, author, stats, now)
        return plan.result(version)

    def rollback(self, to: int, *, author: str) -> KbVersion:
        """A new version whose snapshot equals version ``to`` ("rollback to vN"); history is kept."""
        _check_label("author", author, 255)
        with self._writing() as conn:
            head = _head_number(conn)
            _require_version(conn, to, head)
            target, current = _snapshot(conn, to), _snapshot(conn, head)
            if _hashes(target) == _hashes(current):
                raise Conflict(
                    f"the knowledge base (head v{head}) already has the content of v{to}; nothing to roll back"
                )
            added, removed, changed = _compare(current, target)
            stats = VersionStats(
                added=len(added),
                updated=len(changed),
                deleted=len(removed),
                documents=len(target),
                faqs=sum(e.faq_count for e in target.values()),
            )
            return _write_version(conn, head, target, f"rollback to v{to}", author, stats, _now())

    # -- reading

    def head(self) -> KbVersion | None:
        with self._reading() as conn:
            head = _head_number(conn)
            return _read_version(conn, head) if head else None

    def version(self, number: int) -> KbVersion:
        with self._reading() as conn:
            _require_version(conn, number, _head_number(conn))
            return _read_version(conn, number)

    def history(self, limit: int = 50) -> list[KbVersion]:
        """The newest ``limit`` versions, newest first."""
        if limit < 1:
            raise InvalidInput(f"limit must be at least 1, got {limit}")
        query = select(kb_versions).order_by(kb_versions.c.number.desc()).limit(limit)
        with self._reading() as conn:
            return [_version_of(row) for row in conn.execute(query)]

    def documents(self, version: int | None = None) -> list[SourceDocument]:
        """The snapshot of ``version`` (default: the head; [] before the first version), by doc_id."""
        with self._reading() as conn:
            number = self._resolve(conn, version)
            return _load_documents(conn, number) if number else []

    def document(self, doc_id: str, version: int | None = None) -> SourceDocument:
        with self._reading() as conn:
            number = self._resolve(conn, version)
            found = _load_documents(conn, number, doc_id) if number else []
            if found:
                return found[0]
            raise _document_not_found(conn, doc_id, number)

    def document_history(self, doc_id: str) -> list[DocumentVersion]:
        """Every stored version of ``doc_id``, newest first, with the KB versions that hold each."""
        t, e = kb_document_versions.c, kb_version_entries.c
        with self._reading() as conn:
            query = select(kb_document_versions).where(t.doc_id == doc_id).order_by(t.id.desc())
            rows = list(conn.execute(query))
            if not rows:
                raise NotFound(
                    f"document {doc_id!r} has never been in the knowledge base; check the doc_id "
                    "(a path relative to the synced folder, or a URL)"
                )
            held: dict[int, list[int]] = defaultdict(list)
            query = select(e.document_version_id, e.version).where(e.doc_id == doc_id).order_by(e.version)
            for version_id, number in conn.execute(query):
                held[version_id].append(number)
        return [
            DocumentVersion(
                id=r.id,
                doc_id=r.doc_id,
                content_hash=r.content_hash,
                kind=r.kind,
                title=r.title,
                source=r.source,
                updated_at=r.updated_at,
                created_at=datetime.fromisoformat(r.created_at),
                kb_versions=held[r.id],
            )
            for r in rows
        ]

    def diff(self, a: int, b: int) -> KbDiff:
        """What changed from version ``a`` to version ``b`` (either order)."""
        with self._reading() as conn:
            head = _head_number(conn)
            for number in (a, b):
                _require_version(conn, number, head)
            old, new = _snapshot(conn, a), _snapshot(conn, b)
            added, removed, changed = _compare(old, new)
            old_docs = {d.doc_id: d for d in _load_documents(conn, a, *changed)} if changed else {}
            new_docs = {d.doc_id: d for d in _load_documents(conn, b, *changed)} if changed else {}
        changes = [_doc_change(old_docs[d], new_docs[d], a, b) for d in changed]
        return KbDiff(from_version=a, to_version=b, added=added, removed=removed, changed=changes)

    # -- export / import

    def export_json(self, directory: Path, version: int | None = None) -> Path:
        """Write ``version`` (default: the head) as ``kb.json`` plus one ``documents/<path>.json`` per
        document: stable key order, indent 2, UTF-8, trailing newline — byte-identical for the same
        version. ``*.json`` files under ``documents/`` that are not part of it are removed. Returns
        the manifest's path."""
        with self._reading() as conn:
            number = self._resolve(conn, version)
            if number is None:
                raise NotFound("the knowledge base has no versions yet; add documents before exporting")
            info = _read_version(conn, number)
            docs = _load_documents(conn, number)
        root = Path(directory)
        folder = root / "documents"
        paths = export_paths([doc.doc_id for doc in docs])
        for doc in docs:
            _write_json(folder / paths[doc.doc_id], doc.to_dict())
        _remove_stale(folder, {folder / p for p in paths.values()})
        manifest = {
            "format": EXPORT_FORMAT,
            "version": info.number,
            "created_at": info.created_at.isoformat(),
            "message": info.message,
            "author": info.author,
            "documents": [
                {
                    "doc_id": doc.doc_id,
                    "path": f"documents/{paths[doc.doc_id]}",
                    "kind": doc.kind,
                    "content_hash": doc.content_hash,
                }
                for doc in docs
            ],
        }
        _write_json(root / "kb.json", manifest)
        return root / "kb.json"

    def import_json(self, directory: Path, *, message: str, author: str = "system") -> ApplyResult:
        """Make the knowledge base equal to the ``documents/**/*.json`` files under ``directory`` (as
        ``export_json`` writes them; ``content_hash`` in a file is ignored and recomputed). Every file
        is checked first: one bad file raises ``InvalidInput`` naming it, and nothing is applied."""
        root = Path(directory)
        folder = root / "documents"
        if not folder.is_dir():
            raise InvalidInput(
                f"{folder} does not exist; import a folder written by export_json (kb.json + documents/)"
            )
        files = sorted(p for p in folder.rglob("*.json") if p.is_file())
        if not files:
            raise InvalidInput(f"{folder} holds no *.json documents; nothing was imported")
        docs: list[SourceDocument] = []
        seen: dict[str, str] = {}
        for path in files:
            name = path.relative_to(root).as_posix()
            doc = _read_document_file(path, name)
            if doc.doc_id in seen:
                raise InvalidInput(
                    f"{name} and {seen[doc.doc_id]} both hold document {doc.doc_id!r}; remove one. "
                    "Nothing was imported"
                )
            seen[doc.doc_id] = name
            docs.append(doc)
        return self.apply(docs, message=message, author=author, replace_all=True)

    # -- FAQ consistency

    def faq_conflicts(
        self, version: int | None = None, *, embedder: Embedder | None = None, threshold: float = 0.95
    ) -> list[FaqConflict]:
        """FAQ entries of ``version`` asking the same thing: ``find_faq_conflicts`` on its snapshot."""
        return find_faq_conflicts(self.documents(version), embedder=embedder, threshold=threshold)

    def conflicted_faq_ids(
        self, version: int | None = None, *, embedder: Embedder | None = None, threshold: float = 0.95
    ) -> set[str]:
        """Ids of FAQ entries in a ``conflict`` (same question, different answers): not to be answered
        verbatim."""
        conflicts = self.faq_conflicts(version, embedder=embedder, threshold=threshold)
        return {ref.faq_id for c in conflicts if c.kind == "conflict" for ref in (c.entry_a, c.entry_b)}

    # -- connections

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with reachable(self.engine), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """One transaction holding the knowledge base's write lock; committed only if the body ends."""
        with reachable(self.engine), self.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            else:  # pysqlite sees the open transaction and issues no BEGIN of its own
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    def _resolve(self, conn: Connection, version: int | None) -> int | None:
        """``version`` once checked to exist, or the head (None before the first version)."""
        head = _head_number(conn)
        if version is None:
            return head
        _require_version(conn, version, head)
        return version
