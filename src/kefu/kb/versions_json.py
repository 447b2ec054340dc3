"""The Git-friendly JSON form of a knowledge-base version (``KbStore.export_json`` / ``import_json``):
safe file paths for doc_ids, byte-stable writing, and checked reading of document files.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from pathlib import Path
from typing import Any

from kefu.errors import InvalidInput, KefuError
from kefu.kb.documents import FaqEntry, SourceDocument

EXPORT_FORMAT = "kefu-kb/1"


_SAFE_SEGMENT = re.compile(r"[^\w.\-]+")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


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
