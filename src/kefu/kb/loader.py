"""Load a knowledge pack: ``docs/*.md`` policy documents and ``faq/*.json`` question lists.

The pack becomes a list of ``Chunk`` plus the *match keys* the index scores a query against: a
document chunk is matched on its heading path and text; an FAQ entry on its question, each of its
``similar`` paraphrases, and its question-and-answer text. Text files may be UTF-8 (with or without
a BOM), UTF-16 with a BOM, or GB18030.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from kefu.errors import KnowledgeBaseError
from kefu.kb.chunking import (
    DEFAULT_MAX_CHARS,
    DEFAULT_OVERLAP,
    PATH_SEP,
    chunk_markdown,
    detect_lang,
    split_sections,
)
from kefu.kb.documents import FaqEntry, SourceDocument
from kefu.kb.types import Chunk
from kefu.safety.injection import inspect_source, prime_sources

log = logging.getLogger(__name__)
KeyKind = Literal["question", "passage"]
_BOMS = ((b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))
_CONTROL = {chr(c) for c in range(32)} - {"\t", "\n", "\r", "\f"}


@dataclass(frozen=True)
class MatchKey:
    chunk: int  # index into Pack.chunks
    text: str
    kind: KeyKind  # "question": an FAQ question or paraphrase; "passage": text to be found


@dataclass(frozen=True)
class Pack:
    chunks: list[Chunk]
    keys: list[MatchKey]
    version: str  # short sha256 of every file's path and bytes
    # sentences the injection guard took out of the documents, for the operator (one per document)
    quarantined: list[Quarantined] = field(default_factory=list)


@dataclass(frozen=True)
class Quarantined:
    doc_id: str
    chunk_id: str
    sentence: str  # as written, at most 200 characters
    reason: str  # "hidden markup" | "pattern: <kind>" | "classifier p=0.93"


def decode_text(data: bytes, name: str) -> str:
    """Decode UTF-8 (BOM optional), BOM-marked UTF-16, or GB18030; raise naming ``name`` otherwise."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return data.decode(codec)
    for codec in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        if not _CONTROL.intersection(text):
            return text
    raise KnowledgeBaseError(
        f"cannot decode {name}: it is not UTF-8, UTF-16 or GB18030 text; re-save it as UTF-8"
    )


def read_text(path: Path, root: Path) -> str:
    return decode_text(path.read_bytes(), str(path.relative_to(root)))


def load_pack(kb_dir: Path, max_chars: int = DEFAULT_MAX_CHARS, overlap: int = DEFAULT_OVERLAP) -> Pack:
    """Read every ``docs/*.md`` and ``faq/*.json`` under ``kb_dir`` (sorted, so ids are stable)."""
    documents = load_documents(kb_dir)
    return build_pack(documents, _version(kb_dir, documents), max_chars, overlap)


def load_documents(kb_dir: Path) -> list[SourceDocument]:
    """The demo-pack layout: ``docs/*.md`` policy documents and ``faq/*.json`` question lists."""
    if not kb_dir.is_dir():
        raise KnowledgeBaseError(f"knowledge base folder {kb_dir} does not exist; set KEFU_KB_DIR")
    docs = sorted((kb_dir / "docs").glob("*.md"))
    faqs = sorted((kb_dir / "faq").glob("*.json"))
    if not docs and not faqs:
        raise KnowledgeBaseError(
            f"knowledge base folder {kb_dir} has no docs/*.md and no faq/*.json; add some or fix KEFU_KB_DIR"
        )
    documents: list[SourceDocument] = []
    for path in docs:
        source = path.relative_to(kb_dir).as_posix()
        text = read_text(path, kb_dir)
        fallback = source.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        title, _ = split_sections(text, fallback)
        documents.append(
            SourceDocument(doc_id=source, kind="doc", title=title, text=text, mime="text/markdown")
        )
    for path in faqs:
        source = path.relative_to(kb_dir).as_posix()
        entries = tuple(
            FaqEntry.from_dict(e, f"{source} entry {n}") for n, e in enumerate(_faq_entries(path, kb_dir))
        )
        documents.append(
            SourceDocument(doc_id=source, kind="faq", title=source, faqs=entries, mime="application/json")
        )
    return documents


def build_pack(
    documents: list[SourceDocument],
    version: str,
    max_chars: int = DEFAULT_MAX_CHARS,
    overlap: int = DEFAULT_OVERLAP,
) -> Pack:
    """Chunks and match keys of ``documents``: prose first, then FAQ entries, each in the given order."""
    chunks: list[Chunk] = []
    keys: list[MatchKey] = []
    quarantined: dict[tuple[str, str], Quarantined] = {}
    prose = [
        replace(raw, source=doc.source, updated_at=doc.updated_at)
        for doc in documents
        if doc.kind == "doc"
        for raw in chunk_markdown(doc.text, doc.doc_id, max_chars, overlap)
    ]
    seen: dict[str, str] = {}
    faqs = [_faq_chunk(entry, doc, seen) for doc in documents for entry in doc.faqs]
    # every sentence judged in one batch: the chunk-by-chunk checks below find them remembered
    prime_sources([c.text for c in prose] + [t for c, _q in faqs for t in (c.text, c.answer or "")])
    for raw in prose:
        chunk = without_hidden_instructions(raw, quarantined)
        if not chunk.text.strip():
            continue
        keys.append(MatchKey(len(chunks), f"{chunk.section}\n{chunk.text}", "passage"))
        chunks.append(chunk)
    for faq, questions in faqs:
        chunk = without_hidden_instructions(faq, quarantined)
        keys.extend(MatchKey(len(chunks), q, "question") for q in questions)
        keys.append(MatchKey(len(chunks), chunk.text, "passage"))
        chunks.append(chunk)
    return Pack(chunks=chunks, keys=keys, version=version, quarantined=list(quarantined.values()))


def without_hidden_instructions(
    chunk: Chunk, quarantined: dict[tuple[str, str], Quarantined] | None = None
) -> Chunk:
    """Indirect prompt injection: orders aimed at the model (HTML comments, hidden text, 「忽略以上规则…」,
    paraphrased ones the source classifier recognises) never reach an index, a prompt, a citation or
    a verbatim FAQ answer. Each removed sentence is logged once per document and added to
    ``quarantined``."""
    checks = [inspect_source(chunk.text)]
    if chunk.answer:
        checks.append(inspect_source(chunk.answer))
    seen = quarantined if quarantined is not None else {}
    for check in checks:
        for removed in check.removed:
            key = (chunk.doc_id, removed.text)
            if key in seen:
                continue
            seen[key] = Quarantined(chunk.doc_id, chunk.id, removed.text, removed.reason)
            log.warning(
                "%s (chunk %s): instruction-like sentence removed (%s): %r",
                chunk.doc_id,
                chunk.id,
                removed.reason,
                removed.text,
            )
    text = checks[0].text
    answer = checks[1].text if chunk.answer else chunk.answer
    if text == chunk.text and answer == chunk.answer:
        return chunk
    return replace(chunk, text=text, answer=answer)


def _faq_entries(path: Path, root: Path) -> list[dict[str, Any]]:
    name = path.relative_to(root).as_posix()
    try:
        data = json.loads(read_text(path, root))
    except json.JSONDecodeError as exc:
        raise KnowledgeBaseError(f"{name} is not valid JSON ({exc}); fix the file") from None
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise KnowledgeBaseError(
            f'{name} must be a JSON list of {{"id", "question", "answer", "similar", "tags"}} objects'
        )
    return data


def _faq_chunk(entry: FaqEntry, doc: SourceDocument, seen: dict[str, str]) -> tuple[Chunk, list[str]]:
    if entry.id in seen:
        raise KnowledgeBaseError(
            f"FAQ id {entry.id!r} appears in {seen[entry.id]} and again in {doc.doc_id}; ids must be unique"
        )
    seen[entry.id] = doc.doc_id
    chunk = Chunk(
        id=f"faq:{entry.id}",
        doc_id=doc.doc_id,
        kind="faq",
        title=entry.question,
        section=PATH_SEP.join(["FAQ", *entry.tags[:1]]),
        text=f"问：{entry.question}\n答：{entry.answer}",
        source=doc.source,
        question=entry.question,
        answer=entry.answer,
        lang=detect_lang(entry.question),
        updated_at=doc.updated_at,
    )
    return chunk, list(dict.fromkeys([entry.question, *entry.similar]))


def _version(root: Path, documents: list[SourceDocument]) -> str:
    """Short sha256 of every document's id and content (the folder-loaded pack's version)."""
    digest = hashlib.sha256()
    for doc in documents:
        digest.update(doc.doc_id.encode() + b"\0" + doc.content_hash.encode() + b"\0")
    return digest.hexdigest()[:12]
