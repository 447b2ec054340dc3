"""The tables of the versioned knowledge base and the values ``KbStore`` returns.

    kb_documents          one row per doc_id ever stored
    kb_document_versions  one row per stored content of a document (``body``: ``to_dict()`` minus
                          doc_id, source, updated_at and content_hash, which have columns of their own)
    kb_versions           v1, v2, …: message, author, parent, stats; the head is the highest number
    kb_version_entries    (version, doc_id) → document version: the snapshot of each KB version

Migration 0004 creates the tables; ``kefu.storage.models`` copies them into its metadata (through
``kefu.kb.store.KB_TABLES``) so the schema test compares them.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, MetaData, String, Table, Text

from kefu.errors import InvalidInput

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

_VERSION = re.compile(r"\s*[vV]?\s*(\d{1,9})\s*")


def parse_version(value: str | int) -> int:
    """A KB version as people write it — ``3``, ``v3`` or ``V3`` (what ``kefu kb history`` prints) —
    as its number; anything else is ``InvalidInput`` naming the accepted forms."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        match = _VERSION.fullmatch(str(value))
        if match is None:
            raise InvalidInput(
                f"{str(value)[:40]!r} is not a knowledge-base version; write it as 3 or v3 "
                "(`kefu kb history` lists them)"
            )
        number = int(match.group(1))
    if number < 1:
        raise InvalidInput(
            f"knowledge-base versions start at v1, got {value!r}; `kefu kb history` lists them"
        )
    return number


def parse_optional_version(value: str | int | None) -> int | None:
    """``parse_version`` for an optional version (None: the head)."""
    return None if value is None else parse_version(value)


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


class _Entry(NamedTuple):
    id: int  # kb_document_versions.id
    content_hash: str
    faq_count: int
