"""What the knowledge-base admin API (``kefu.api.routes.kb``) is built from: the admin-token check,
the public form of documents and hits, uploaded files turned into documents, and the export zip."""

from __future__ import annotations

import hmac
import io
import zipfile
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from fastapi import Request, UploadFile

from kefu.api.agent_auth import bearer_token
from kefu.api.deps import RuntimeDep
from kefu.errors import Forbidden, InvalidInput, KefuError, Unauthorized
from kefu.kb.documents import SourceDocument
from kefu.kb.parsers.common import human_size
from kefu.kb.store import ApplyResult
from kefu.kb.types import Hit, Retrieval

UPLOAD = "uploads"  # uploaded files become documents "uploads/<filename>"
ARCHIVE_FACTOR = 25  # an import zip may hold up to this many times KEFU_KB_MAX_FILE_BYTES
ACTIONS = {
    "faq": "answer the FAQ verbatim",
    "grounded": "answer with the model, citing these hits",
    "none": "say the knowledge base does not cover it and offer a human",
}


class TooLarge(InvalidInput):
    code = "too_large"
    status = 413


def require_admin(request: Request, runtime: RuntimeDep) -> None:
    expected = runtime.settings.admin_token.get_secret_value()
    if not expected:
        raise Forbidden(
            "the knowledge-base admin API is off: set KEFU_ADMIN_TOKEN (a long random string) and restart"
        )
    given = bearer_token(request) or ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthorized(
            "the knowledge-base admin API needs Authorization: Bearer <KEFU_ADMIN_TOKEN>; "
            "the token is missing or wrong"
        )


def doc_summary(doc: SourceDocument) -> dict[str, Any]:
    return {
        "doc_id": doc.doc_id,
        "kind": doc.kind,
        "title": doc.title,
        "faqs": len(doc.faqs),
        "chars": len(doc.text),
        "content_hash": doc.content_hash,
        "source": doc.source,
        "updated_at": doc.updated_at,
        "mime": doc.mime,
    }


def retrieval_public(found: Retrieval) -> dict[str, Any]:
    return {
        "query": found.query,
        "version": found.version,
        "confidence": round(found.confidence, 4),
        "decision": found.decision,
        "action": ACTIONS[found.decision],
        "faq": found.faq.chunk.id if found.faq else None,
        "hits": [hit_public(rank, hit) for rank, hit in enumerate(found.hits, start=1)],
    }


def hit_public(rank: int, hit: Hit) -> dict[str, Any]:
    chunk = hit.chunk
    data: dict[str, Any] = {
        "rank": rank,
        "chunk_id": chunk.id,
        "doc_id": chunk.doc_id,
        "kind": chunk.kind,
        "title": chunk.title,
        "section": chunk.section,
        "source": chunk.source,
        "updated_at": chunk.updated_at,
        "text": chunk.text,
        "scores": {
            "fused": round(hit.score, 4),
            "dense": round(hit.dense, 4),
            "sparse": round(hit.sparse, 4),
        },
    }
    if chunk.kind == "faq":
        data |= {"question": chunk.question, "answer": chunk.answer}
    return data


async def receive_upload(
    upload: UploadFile, doc_id: str | None, limit: int, taken: set[str]
) -> tuple[dict[str, Any], bytes | None]:
    """One uploaded file's result entry and bytes (None when refused before parsing)."""
    name = PurePosixPath((upload.filename or "").replace("\\", "/")).name
    key = (doc_id or "").strip().strip("/") or f"{UPLOAD}/{name}"
    result: dict[str, Any] = {"filename": upload.filename, "doc_id": key, "status": 200, "error": None}
    if not name:
        return _failed(result, InvalidInput("a file without a name; give every uploaded file its name")), None
    if key in taken:
        return _failed(result, InvalidInput(f"{key} is uploaded twice in this request; send it once")), None
    data = await upload.read(limit + 1)
    if len(data) > limit:
        size = human_size(upload.size) if upload.size else f"over {human_size(limit)}"
        message = (
            f"{name} is {size}, over the {human_size(limit)} limit (KEFU_KB_MAX_FILE_BYTES); split it "
            "into smaller files or raise KEFU_KB_MAX_FILE_BYTES"
        )
        return _failed(result, TooLarge(message)), None
    return result, data


def parse_uploads(raw: list[tuple[dict[str, Any], bytes, str | None]], limit: int) -> list[SourceDocument]:
    from kefu.kb.parsers import parse_bytes

    now = datetime.now(UTC).isoformat(timespec="seconds")
    docs = []
    for result, data, mime in raw:
        try:
            doc = parse_bytes(
                data, PurePosixPath(result["filename"]).name, doc_id=result["doc_id"], mime=mime,
                updated_at=now, max_bytes=limit,
            )  # fmt: skip
        except KefuError as exc:
            _failed(result, exc)
            continue
        result |= {
            "kind": doc.kind,
            "title": doc.title,
            "faqs": len(doc.faqs),
            "content_hash": doc.content_hash,
        }
        docs.append(doc)
    return docs


def _failed(result: dict[str, Any], exc: KefuError) -> dict[str, Any]:
    status = exc.status if 400 <= exc.status < 500 else 422
    result |= {"status": status, "error": {"code": exc.code, "message": exc.message}}
    return result


def mark_outcomes(results: list[dict[str, Any]], change: ApplyResult) -> None:
    outcome = {d: "added" for d in change.added} | {d: "updated" for d in change.updated}
    outcome |= {d: "unchanged" for d in change.unchanged}
    duplicates = dict(change.duplicates)
    for result in results:
        if result["error"] is None:
            doc_id = result["doc_id"]
            result["outcome"] = "duplicate" if doc_id in duplicates else outcome.get(doc_id, "unchanged")
            if doc_id in duplicates:
                result["same_as"] = duplicates[doc_id]


def zip_folder(root: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            archive.write(path, path.relative_to(root).as_posix())
    return buffer.getvalue()


def unzip_export(data: bytes, dest: Path, max_member: int) -> Path:
    """Unpack an export zip safely (no absolute or ``..`` paths, sizes checked as read); the folder
    holding ``documents/`` — the zip's root or its only top-level folder."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise InvalidInput("the upload is not a zip file; send the zip GET /v1/kb/export gives") from None
    total, budget = 0, max_member * ARCHIVE_FACTOR
    with archive:
        for info in archive.infolist():
            parts = PurePosixPath(info.filename.replace("\\", "/")).parts
            if info.filename.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                raise InvalidInput(f"the zip holds an unsafe path {info.filename!r}; nothing was imported")
            if info.is_dir():
                continue
            with archive.open(info) as member:
                content = member.read(max_member + 1)
            total += len(content)
            if len(content) > max_member or total > budget:
                raise TooLarge(f"{info.filename} unpacks to more than allowed; nothing was imported")
            target = dest.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
    tops = [p for p in dest.iterdir() if p.is_dir()]
    if not (dest / "documents").is_dir() and len(tops) == 1 and (tops[0] / "documents").is_dir():
        return tops[0]
    return dest
