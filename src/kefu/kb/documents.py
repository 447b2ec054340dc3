"""What ingestion produces and the knowledge base stores: one ``SourceDocument`` per file, page or URL.

A document is either prose (``kind="doc"``: Markdown text, headings kept as ``#`` lines so chunking
keeps the heading path) or a list of FAQ pairs (``kind="faq"``). Parsers (``kefu.kb.parsers``) turn
PDF, DOCX, HTML, CSV, XLSX, JSON, Markdown and plain text into documents; the version store
(``kefu.kb.store``) keeps every version of each; ``build_pack`` turns a set of them into chunks and
match keys for the index.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from kefu.errors import KnowledgeBaseError

DocKind = Literal["doc", "faq"]


@dataclass(frozen=True)
class FaqEntry:
    id: str  # unique within the knowledge base, e.g. "ship-001"
    question: str
    answer: str
    similar: tuple[str, ...] = ()  # paraphrases of the question
    tags: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "question": self.question,
            "answer": self.answer,
            "similar": list(self.similar),
            "tags": list(self.tags),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "FAQ entry") -> FaqEntry:
        for name in ("id", "question", "answer"):
            if not isinstance(data.get(name), str) or not data[name].strip():
                raise KnowledgeBaseError(f"{where}: {name!r} must be a non-empty string")
        similar = data.get("similar", []) or []
        tags = data.get("tags", []) or []
        if not isinstance(similar, list) or not all(isinstance(s, str) for s in similar):
            raise KnowledgeBaseError(f"{where} ({data['id']}): 'similar' must be a list of strings")
        if not isinstance(tags, list):
            raise KnowledgeBaseError(f"{where} ({data['id']}): 'tags' must be a list of strings")
        return cls(
            id=data["id"].strip(),
            question=data["question"].strip(),
            answer=data["answer"].strip(),
            similar=tuple(s.strip() for s in similar if s.strip()),
            tags=tuple(str(t).strip() for t in tags if str(t).strip()),
        )


@dataclass(frozen=True)
class SourceDocument:
    doc_id: str  # stable key: the path relative to the ingested folder ("docs/shipping.md") or the URL
    kind: DocKind
    title: str
    text: str = ""  # Markdown for "doc" (headings as # lines); empty for "faq"
    faqs: tuple[FaqEntry, ...] = ()
    source: str = ""  # where it was read from: a path or a URL (defaults to doc_id)
    updated_at: str | None = None  # ISO 8601: file mtime, HTTP Last-Modified or the document's own date
    mime: str = ""  # e.g. "application/pdf"
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not self.doc_id.strip():
            raise KnowledgeBaseError("a document needs a non-empty doc_id (its path or URL)")
        if self.kind == "doc" and not self.text.strip():
            raise KnowledgeBaseError(f"{self.doc_id}: the document has no text (empty, or only images)")
        if self.kind == "faq" and not self.faqs:
            raise KnowledgeBaseError(f"{self.doc_id}: the FAQ file has no question/answer pairs")
        if not self.source:
            object.__setattr__(self, "source", self.doc_id)

    @property
    def content_hash(self) -> str:
        """sha256 of what is indexed (kind, title, text, FAQ pairs) — not of where or when it was read,
        so a re-sync of an unchanged file, or the same file under another name, hashes the same."""
        body = {
            "kind": self.kind,
            "title": self.title,
            "text": self.text,
            "faqs": [f.to_dict() for f in self.faqs],
        }
        raw = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(raw.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["faqs"] = [f.to_dict() for f in self.faqs]
        data["content_hash"] = self.content_hash
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SourceDocument:
        where = str(data.get("doc_id") or "document")
        kind = data.get("kind")
        if kind not in ("doc", "faq"):
            raise KnowledgeBaseError(f'{where}: \'kind\' must be "doc" or "faq", not {kind!r}')
        faqs = tuple(
            FaqEntry.from_dict(e, f"{where} entry {n}") for n, e in enumerate(data.get("faqs") or [])
        )
        return cls(
            doc_id=str(data.get("doc_id") or ""),
            kind=kind,
            title=str(data.get("title") or ""),
            text=str(data.get("text") or ""),
            faqs=faqs,
            source=str(data.get("source") or ""),
            updated_at=data.get("updated_at"),
            mime=str(data.get("mime") or ""),
            meta=dict(data.get("meta") or {}),
        )

    def renamed(self, doc_id: str) -> SourceDocument:
        return replace(self, doc_id=doc_id)
