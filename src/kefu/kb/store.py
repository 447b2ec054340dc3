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
Below the store: diffs, the Git-friendly JSON export/import, and FAQ consistency checks.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    text,
)

from kefu.errors import Conflict, InvalidInput, KefuError, NotFound
from kefu.kb.documents import FaqEntry, SourceDocument
from kefu.storage.engine import reachable

if TYPE_CHECKING:
    from kefu.kb.types import Embedder

metadata = MetaData()
DOC_ID_MAX = 1024

kb_documents = Table(
    "kb_documents",
    metadata,
    Column("doc_id", String(DOC_ID_MAX), primary_key=True),
    Column("created_at", String(32), nullable=False),
)
kb_document_versions = Table(
    "kb_document_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("doc_id", String(DOC_ID_MAX), ForeignKey("kb_documents.doc_id"), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("title", Text, nullable=False),
    Column("body", JSON, nullable=False),
    Column("faq_count", Integer, nullable=False),
    Column("source", Text, nullable=False),
    Column("updated_at", String(64), nullable=True),
    Column("created_at", String(32), nullable=False),
    Index("ix_kb_document_versions_doc_id", "doc_id"),
)
kb_versions = Table(
    "kb_versions",
    metadata,
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("created_at", String(32), nullable=False),
    Column("message", Text, nullable=False),
    Column("author", String(255), nullable=False),
    Column("parent", Integer, nullable=True),
    Column("stats", JSON, nullable=False),
)
kb_version_entries = Table(
    "kb_version_entries",
    metadata,
    Column("version", Integer, ForeignKey("kb_versions.number"), primary_key=True),
    Column("doc_id", String(DOC_ID_MAX), ForeignKey("kb_documents.doc_id"), primary_key=True),
    Column("document_version_id", Integer, ForeignKey("kb_document_versions.id"), nullable=False),
    Index("ix_kb_version_entries_document_version_id", "document_version_id"),
)
KB_TABLES = (kb_documents, kb_document_versions, kb_versions, kb_version_entries)

# Any fixed 64-bit number, shared by every kefu process writing to the same knowledge base.
_PG_LOCK_KEY = 0x6B656675_6B627631  # "kefu" "kbv1"
_VOLATILE = ("doc_id", "source", "updated_at", "content_hash")
EXPORT_FORMAT = "kefu-kb/1"
ConflictKind = Literal["conflict", "duplicate"]


# ---------------------------------------------------------------------------------------- values


@dataclass(frozen=True)
class VersionStats:
    added: int
    updated: int
    deleted: int
    documents: int  # in the snapshot
    faqs: int  # FAQ entries in the snapshot


@dataclass(frozen=True)
class KbVersion:
    number: int
    created_at: datetime
    message: str
    author: str
    parent: int | None  # the head this version was made on (None for v1)
    stats: VersionStats

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        return data


@dataclass(frozen=True)
class ApplyResult:
    version: KbVersion | None  # None when nothing changed
    added: list[str]
    updated: list[str]
    deleted: list[str]  # deleted, retired by replace_all, or whose new content duplicates another doc
    unchanged: list[str]
    duplicates: list[tuple[str, str]]  # (doc_id, same_as_doc_id): same content, not stored twice

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["version"] = self.version.to_dict() if self.version else None
        data["duplicates"] = [list(pair) for pair in self.duplicates]
        return data


@dataclass(frozen=True)
class DocumentVersion:
    id: int
    doc_id: str
    content_hash: str
    kind: str
    title: str
    source: str
    updated_at: str | None
    created_at: datetime
    kb_versions: list[int]  # the KB versions whose snapshot holds this document version

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        return data


@dataclass(frozen=True)
class DocChange:
    doc_id: str
    kind: str  # the kind in the newer version
    diff: str  # unified diff (text for docs, "Q: …/A: …" lines for FAQ files)
    faq_added: list[str] = field(default_factory=list)
    faq_removed: list[str] = field(default_factory=list)
    faq_changed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class KbDiff:
    from_version: int
    to_version: int
    added: list[str]
    removed: list[str]
    changed: list[DocChange]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def render(self, lang: str = "zh") -> str:
        """Plain text for the CLI: a summary line, then +/-/~ per document, with each diff."""
        a, b = self.from_version, self.to_version
        counts = (len(self.added), len(self.removed), len(self.changed))
        if not any(counts):
            return f"v{a} 与 v{b} 内容相同" if lang == "zh" else f"v{a} and v{b} have the same content"
        if lang == "zh":
            lines = [f"知识库 v{a} → v{b}：新增 {counts[0]}，删除 {counts[1]}，修改 {counts[2]}"]
        else:
            lines = [f"KB v{a} → v{b}: {counts[0]} added, {counts[1]} removed, {counts[2]} changed"]
        lines += [f"+ {doc_id}" for doc_id in self.added]
        lines += [f"- {doc_id}" for doc_id in self.removed]
        for change in self.changed:
            faq = [f"+{i}" for i in change.faq_added] + [f"-{i}" for i in change.faq_removed]
            faq += [f"~{i}" for i in change.faq_changed]
            lines.append(f"~ {change.doc_id}" + (f"  FAQ {' '.join(faq)}" if faq else ""))
            lines += [f"    {line}" for line in change.diff.splitlines()]
        return "\n".join(lines)


@dataclass(frozen=True)
class FaqRef:
    doc_id: str
    faq_id: str
    question: str
    answer: str


@dataclass(frozen=True)
class FaqConflict:
    kind: ConflictKind  # "conflict": answers differ; "duplicate": the same Q and A twice
    entry_a: FaqRef  # the earlier one in KB order (doc_id, then position in the file)
    entry_b: FaqRef
    similarity: float  # 1.0 for equal normalised questions, else the cosine of the embeddings
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Entry(NamedTuple):
    id: int  # kb_document_versions.id
    content_hash: str
    faq_count: int


# ---------------------------------------------------------------------------------------- store


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


# ---------------------------------------------------------------------------------------- documents


def _document_from(data: dict[str, Any]) -> SourceDocument:
    """A document exactly as stored (no trimming, so its content_hash is the stored one)."""
    faqs = tuple(
        FaqEntry(
            id=e["id"],
            question=e["question"],
            answer=e["answer"],
            similar=tuple(e.get("similar") or ()),
            tags=tuple(str(t) for t in e.get("tags") or ()),
        )
        for e in data.get("faqs") or ()
    )
    return SourceDocument(
        doc_id=data["doc_id"],
        kind=data["kind"],
        title=str(data.get("title") or ""),
        text=str(data.get("text") or ""),
        faqs=faqs,
        source=str(data.get("source") or ""),
        updated_at=data.get("updated_at"),
        mime=str(data.get("mime") or ""),
        meta=dict(data.get("meta") or {}),
    )


def _doc_change(old: SourceDocument, new: SourceDocument, a: int, b: int) -> DocChange:
    lines = difflib.unified_diff(
        _diff_lines(old),
        _diff_lines(new),
        fromfile=f"v{a}/{old.doc_id}",
        tofile=f"v{b}/{new.doc_id}",
        lineterm="",
    )
    before = {e.id: e for e in old.faqs}
    after = {e.id: e for e in new.faqs}
    return DocChange(
        doc_id=new.doc_id,
        kind=new.kind,
        diff="\n".join(lines),
        faq_added=[i for i in after if i not in before],
        faq_removed=[i for i in before if i not in after],
        faq_changed=[i for i in after if i in before and after[i] != before[i]],
    )


def _diff_lines(doc: SourceDocument) -> list[str]:
    lines = [f"Title: {doc.title}", ""]
    if doc.kind == "doc":
        return lines + doc.text.splitlines()
    for entry in doc.faqs:
        lines += [f"[{entry.id}]", f"Q: {entry.question}"]
        lines += [f"Q~ {s}" for s in entry.similar]
        answer = entry.answer.splitlines() or [""]
        lines += [f"A: {answer[0]}", *(f"   {line}" for line in answer[1:])]
        if entry.tags:
            lines.append(f"Tags: {', '.join(entry.tags)}")
        lines.append("")
    return lines


# ---------------------------------------------------------------------------------------- JSON files

_SAFE_SEGMENT = re.compile(r"[^\w.\-]+")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def export_paths(doc_ids: list[str]) -> dict[str, str]:
    """doc_id → a safe relative file path under ``documents/``: a relative path keeps its folders
    ("docs/运费.md" → "docs/运费.md.json"); a URL goes under "urls/<host>/…". Any name that had to be
    changed gets "~" and a short hash of the doc_id, so no two documents share a file (also on
    case-insensitive file systems)."""
    paths: dict[str, str] = {}
    taken: set[str] = set()
    for doc_id in sorted(doc_ids):
        path = _export_path(doc_id)
        if path.casefold() in taken:
            path = _export_path(doc_id, force_hash=True)
        taken.add(path.casefold())
        paths[doc_id] = path
    return paths


def _export_path(doc_id: str, force_hash: bool = False) -> str:
    raw = doc_id
    prefix: list[str] = []
    if _URL.match(doc_id):
        raw = _URL.sub("", doc_id)
        prefix = ["urls"]
        force_hash = True
    segments = [s for s in raw.split("/") if s]
    safe = [_safe_segment(s) for s in segments] or ["index"]
    if raw.endswith("/"):
        safe.append("index")
    changed = force_hash or safe != segments
    name = safe[-1][:120]
    if changed:
        name += "~" + hashlib.sha256(doc_id.encode()).hexdigest()[:10]
    return "/".join([*prefix, *(s[:120] for s in safe[:-1]), name + ".json"])


def _safe_segment(segment: str) -> str:
    cleaned = _SAFE_SEGMENT.sub("_", unicodedata.normalize("NFC", segment)).strip(".")
    return cleaned or "_"


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    path.write_bytes(payload.encode())


def _remove_stale(folder: Path, keep: set[Path]) -> None:
    for path in sorted(folder.rglob("*.json")):
        if path not in keep and path.is_file():
            path.unlink()
    for directory in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        if not any(directory.iterdir()):
            directory.rmdir()


def _read_document_file(path: Path, name: str) -> SourceDocument:
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidInput(f"{name} is not UTF-8 text; re-save it as UTF-8. Nothing was imported") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{name} is not valid JSON ({exc}); fix the file. Nothing was imported") from None
    if not isinstance(data, dict):
        raise InvalidInput(
            f"{name} must hold one JSON object (a document); fix the file. Nothing was imported"
        )
    problem = _shape_problem(data)
    if problem:
        raise InvalidInput(f"{name}: {problem}; fix the file. Nothing was imported")
    try:
        SourceDocument.from_dict(data)  # the same checks as any other document
        return _document_from(data)
    except KefuError as exc:
        raise InvalidInput(f"{name}: {exc.message}. Nothing was imported") from None


def _shape_problem(data: dict[str, Any]) -> str | None:
    if not isinstance(data.get("doc_id"), str) or not data["doc_id"].strip():
        return "'doc_id' must be a non-empty string"
    for name in ("title", "text", "source", "mime"):
        if not isinstance(data.get(name, ""), str):
            return f"{name!r} must be a string"
    if data.get("updated_at") is not None and not isinstance(data["updated_at"], str):
        return "'updated_at' must be an ISO 8601 string or null"
    if not isinstance(data.get("meta", {}), dict):
        return "'meta' must be an object"
    faqs = data.get("faqs", [])
    if not isinstance(faqs, list) or not all(isinstance(e, dict) for e in faqs):
        return "'faqs' must be a list of objects"
    return None


# ---------------------------------------------------------------------------------------- FAQ checks

_TRAILING = "？?。！!．.～~…"
_SPACE_BY_CJK = re.compile(r" (?=[^\x00-\x7f])|(?<=[^\x00-\x7f]) ")


def normalize_text(value: str) -> str:
    """For comparing questions and answers: NFKC, case-folded, whitespace collapsed (and dropped next
    to Chinese), trailing ？?。！! cut — "运费 多少钱？" and "运费多少钱" are equal."""
    folded = " ".join(unicodedata.normalize("NFKC", value).casefold().split())
    return _SPACE_BY_CJK.sub("", folded).rstrip(_TRAILING).rstrip()


def find_faq_conflicts(
    documents: Sequence[SourceDocument], *, embedder: Embedder | None = None, threshold: float = 0.95
) -> list[FaqConflict]:
    """Pairs of FAQ entries (anywhere in ``documents``) whose questions — or ``similar`` paraphrases —
    are equal once normalised, or, with ``embedder``, have query embeddings with cosine ≥ ``threshold``.
    ``kind`` is "conflict" when their normalised answers differ and "duplicate" when they are equal.
    Conflicts first, then by position in the knowledge base."""
    refs: list[FaqRef] = []
    keys: list[tuple[int, str]] = []  # (index into refs, question or paraphrase)
    for doc in sorted(documents, key=lambda d: d.doc_id):
        for entry in doc.faqs:
            refs.append(FaqRef(doc.doc_id, entry.id, entry.question, entry.answer))
            keys += [(len(refs) - 1, q) for q in dict.fromkeys([entry.question, *entry.similar])]
    best: dict[tuple[int, int], tuple[float, str, str]] = {}

    def note(i: int, j: int, similarity: float, qa: str, qb: str) -> None:
        if i == j:
            return
        pair, texts = ((i, j), (qa, qb)) if i < j else ((j, i), (qb, qa))
        if pair not in best or similarity > best[pair][0]:
            best[pair] = (similarity, *texts)

    groups: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for ref, question in keys:
        groups[normalize_text(question)].append((ref, question))
    groups.pop("", None)
    for group in groups.values():
        for n, (i, qa) in enumerate(group):
            for j, qb in group[n + 1 :]:
                note(i, j, 1.0, qa, qb)
    if embedder is not None and keys:
        for i, j, similarity, qa, qb in _similar_questions(keys, embedder, threshold):
            note(i, j, similarity, qa, qb)
    found = [_conflict(refs[i], refs[j], *best[(i, j)], threshold) for i, j in sorted(best)]
    return sorted(found, key=lambda c: c.kind != "conflict")


def _similar_questions(
    keys: list[tuple[int, str]], embedder: Embedder, threshold: float
) -> Iterator[tuple[int, int, float, str, str]]:
    texts = list(dict.fromkeys(q for _, q in keys))
    owners: dict[str, list[int]] = defaultdict(list)
    for ref, question in keys:
        owners[question].append(ref)
    vectors = embedder.embed_queries(texts)
    for start in range(0, len(texts), 256):
        sims = vectors[start : start + 256] @ vectors.T
        for row, col in zip(*(sims >= threshold).nonzero(), strict=True):
            a, b = start + int(row), int(col)
            if a >= b:
                continue
            for i in owners[texts[a]]:
                for j in owners[texts[b]]:
                    yield i, j, float(sims[row, col]), texts[a], texts[b]


def _conflict(a: FaqRef, b: FaqRef, similarity: float, qa: str, qb: str, threshold: float) -> FaqConflict:
    same_answer = normalize_text(a.answer) == normalize_text(b.answer)
    if normalize_text(qa) == normalize_text(qb):
        asked = f"the same question {qa!r}" if qa == qb else f"the same question ({qa!r} / {qb!r})"
        similarity = 1.0
    else:
        asked = f"paraphrases {qa!r} / {qb!r} (cosine {similarity:.3f} ≥ {threshold})"
    outcome = "with the same answer" if same_answer else "but different answers"
    return FaqConflict(
        kind="duplicate" if same_answer else "conflict",
        entry_a=a,
        entry_b=b,
        similarity=round(similarity, 4),
        reason=f"{a.doc_id}#{a.faq_id} and {b.doc_id}#{b.faq_id} answer {asked} {outcome}",
    )
