"""The knowledge-base admin API (/v1/kb/…): documents, versions, diff, rollback, hit-testing, FAQ
conflicts, export/import and synced sources.

Every endpoint needs ``Authorization: Bearer <KEFU_ADMIN_TOKEN>`` (401 without or wrong; 403 while
KEFU_ADMIN_TOKEN is unset: the API is off). Every change makes a KB version and is served by this
process at once; other replicas load it at their next refresh tick (KEFU_KB_REFRESH_SECONDS).

    curl -H "Authorization: Bearer $KEFU_ADMIN_TOKEN" -F files=@退货政策.pdf -F files=@faq.xlsx \\
         http://127.0.0.1:8000/v1/kb/documents
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import tempfile
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from anyio import to_thread
from fastapi import APIRouter, Depends, File, Form, Query, Response, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from kefu.api.deps import JsonBody, RuntimeDep
from kefu.api.kb_admin import (
    ARCHIVE_FACTOR,
    UPLOAD,
    TooLarge,
    doc_summary,
    mark_outcomes,
    parse_uploads,
    receive_upload,
    require_admin,
    retrieval_public,
    unzip_export,
    zip_folder,
)
from kefu.errors import InvalidInput, KefuError, KnowledgeBaseError
from kefu.kb.documents import SourceDocument
from kefu.kb.parsers.common import human_size
from kefu.kb.service import IngestReport
from kefu.kb.sources import Source
from kefu.kb.store import ApplyResult, parse_optional_version, parse_version
from kefu.runtime import Runtime

log = logging.getLogger("kefu.api.kb")

router = APIRouter(prefix="/v1/kb", tags=["knowledge base"], dependencies=[Depends(require_admin)])
VersionQuery = Annotated[str | None, Query(description="A KB version: 3 or v3 (default: the head)")]


class FaqBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    question: str
    answer: str
    similar: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)


class DocumentBody(BaseModel):
    """A document as GET /v1/kb/documents/{doc_id} returns it (``content_hash`` is recomputed)."""

    model_config = ConfigDict(extra="forbid")
    doc_id: str | None = None
    kind: Literal["doc", "faq"]
    title: str = ""
    text: str = ""
    faqs: list[FaqBody] = Field(default_factory=list)
    source: str = ""
    updated_at: str | None = None
    mime: str = ""
    meta: dict[str, Any] = Field(default_factory=dict)
    content_hash: str | None = None


class RollbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: StrictInt | str  # 3 or "v3"


class SourceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["folder", "git", "urls", "file"]
    location: str = ""  # a folder or file path on the server, or URLs one per line
    urls: list[str] = Field(default_factory=list)  # kind "urls": instead of (or with) location
    interval_seconds: int | None = Field(default=None, ge=0)  # default KEFU_KB_SYNC_INTERVAL; 0: by hand
    sync: bool = True  # read it now


# ------------------------------------------------------------------------------ overview, documents


@router.get("")
async def overview(runtime: RuntimeDep) -> dict[str, Any]:
    knowledge, settings = runtime.knowledge, runtime.settings
    head, sources = await to_thread.run_sync(lambda: (knowledge.store.head(), knowledge.sources.list()))
    kb = knowledge.current()
    return {
        "head": head.to_dict() if head else None,
        "serving": kb.version,
        "documents": head.stats.documents if head else 0,
        "faqs": head.stats.faqs if head else 0,
        "chunks": len(kb.chunks),
        "sources": [s.to_dict() for s in sources],
        "worker": {
            "sync": "celery" if settings.celery_broker_url else "in-process",
            "refresh_seconds": settings.kb_refresh_seconds,
        },
    }


@router.get("/documents")
async def list_documents(runtime: RuntimeDep, version: VersionQuery = None) -> dict[str, Any]:
    store, wanted = runtime.knowledge.store, parse_optional_version(version)
    number, docs = await to_thread.run_sync(lambda: (_number(runtime, wanted), store.documents(wanted)))
    data = [doc_summary(d) for d in docs]
    return {"version": number, "data": data, "count": len(data)}


@router.get("/documents/{doc_id:path}")
async def get_document(doc_id: str, runtime: RuntimeDep, version: VersionQuery = None) -> dict[str, Any]:
    store, wanted = runtime.knowledge.store, parse_optional_version(version)

    def read() -> dict[str, Any]:
        doc = store.document(doc_id, wanted)
        history = [v.to_dict() for v in store.document_history(doc_id)]
        return {"version": _number(runtime, wanted), "document": doc.to_dict(), "history": history}

    return await to_thread.run_sync(read)


@router.post("/documents", response_model=None)
async def upload_documents(
    runtime: RuntimeDep,
    files: Annotated[list[UploadFile], File(description="One or more documents (PDF, DOCX, MD, FAQ …)")],
    doc_id: Annotated[
        str | None, Form(description="With one file: its doc_id (default uploads/<name>)")
    ] = None,
    message: Annotated[str | None, Form(description="The version's message")] = None,
) -> JSONResponse:
    """Parse every file; the ones that parse become ONE new version. Per-file results: 200 with them,
    or (nothing stored) 413 when every file was too large, else 422."""
    if doc_id is not None and len(files) != 1:
        raise InvalidInput(
            "doc_id names one document: upload one file with it, or leave it out "
            f"(each file then becomes {UPLOAD}/<file name>)"
        )
    limit = runtime.settings.kb_max_file_bytes
    results: list[dict[str, Any]] = []
    raw: list[tuple[dict[str, Any], bytes, str | None]] = []
    for upload in files:
        result, data = await receive_upload(upload, doc_id, limit, {r["doc_id"] for r in results})
        results.append(result)
        if data is not None:
            raw.append((result, data, upload.content_type))
    docs = await to_thread.run_sync(lambda: parse_uploads(raw, limit))
    if not docs:
        failures = [r for r in results if r["error"]]
        status = 413 if failures and all(r["status"] == 413 for r in failures) else 422
        first = failures[0]["error"]["message"] if failures else "no file"
        error = {"code": "nothing_stored", "message": f"none of the files could be stored ({first})"}
        return JSONResponse({"error": error, "version": None, "files": results}, status_code=status)
    names = ", ".join(d.doc_id for d in docs)
    knowledge = runtime.knowledge
    change = await to_thread.run_sync(
        lambda: knowledge.put(docs, author="api", message=(message or f"upload {names}")[:500])
    )
    mark_outcomes(results, change)
    body = {"version": _version(change), "change": change.to_dict(), "files": results}
    return JSONResponse(body | await serve_head(runtime))


@router.put("/documents/{doc_id:path}", dependencies=[JsonBody])
async def put_document(
    doc_id: str, body: DocumentBody, runtime: RuntimeDep, message: str | None = None
) -> dict[str, Any]:
    """Store an edited (or new) document — prose or a FAQ list — as a new version."""
    if body.doc_id is not None and body.doc_id != doc_id:
        raise InvalidInput(f"the body's doc_id {body.doc_id!r} differs from the URL's {doc_id!r}; drop one")
    data = body.model_dump(exclude={"content_hash"}) | {"doc_id": doc_id}
    data["updated_at"] = data["updated_at"] or datetime.now(UTC).isoformat(timespec="seconds")
    try:
        doc = SourceDocument.from_dict(data)
    except KnowledgeBaseError as exc:
        raise InvalidInput(f"{exc.message}; fix the document and send it again") from None
    knowledge = runtime.knowledge
    change = await to_thread.run_sync(
        lambda: knowledge.put([doc], author="api", message=(message or f"edit {doc_id}")[:500])
    )
    summary = {"version": _version(change), "change": change.to_dict(), "document": doc_summary(doc)}
    return summary | await serve_head(runtime)


@router.delete("/documents/{doc_id:path}")
async def delete_document(doc_id: str, runtime: RuntimeDep) -> dict[str, Any]:
    knowledge = runtime.knowledge

    def delete() -> tuple[ApplyResult, Source | None]:
        return knowledge.delete([doc_id], author="api"), knowledge.sources.owner_of(doc_id)

    change, owner = await to_thread.run_sync(delete)
    body: dict[str, Any] = {"version": _version(change), "change": change.to_dict()}
    if owner is not None:
        body["warning"] = (
            f"{doc_id} comes from the {owner.kind} source {owner.id} ({owner.location[:200]}): a sync "
            "brings it back when its file changes there (or a sync with force=true); remove it there "
            "or delete the source"
        )
    return body | await serve_head(runtime)


# ------------------------------------------------------------------------------ versions


@router.get("/versions")
async def list_versions(
    runtime: RuntimeDep, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> dict[str, Any]:
    versions = await to_thread.run_sync(lambda: runtime.knowledge.store.history(limit))
    data = [v.to_dict() for v in versions]
    return {"data": data, "count": len(data), "head": data[0]["number"] if data else None}


@router.get("/versions/{number}")
async def get_version(number: str, runtime: RuntimeDep) -> dict[str, Any]:
    """One version (``/versions/3`` or ``/versions/v3``) and its documents."""
    store, wanted = runtime.knowledge.store, parse_version(number)
    info, docs = await to_thread.run_sync(lambda: (store.version(wanted), store.documents(wanted)))
    return info.to_dict() | {"documents": [doc_summary(d) for d in docs]}


@router.get("/diff")
async def diff(
    runtime: RuntimeDep,
    from_version: Annotated[str | None, Query(alias="from", description="3 or v3")] = None,
    to: VersionQuery = None,
    lang: Literal["zh", "en"] = "zh",
) -> dict[str, Any]:
    """What changed from ``from`` (default: the version before ``to``) to ``to`` (default: the head)."""
    store = runtime.knowledge.store
    older, newer = parse_optional_version(from_version), parse_optional_version(to)

    def compare() -> dict[str, Any]:
        b = newer if newer is not None else _number(runtime, None)
        if b is None:
            raise InvalidInput("the knowledge base has no versions yet; add documents first")
        a = older if older is not None else max(b - 1, 1)
        found = store.diff(a, b)
        return found.to_dict() | {"text": found.render(lang)}

    return await to_thread.run_sync(compare)


@router.post("/rollback", dependencies=[JsonBody])
async def rollback(body: RollbackBody, runtime: RuntimeDep) -> dict[str, Any]:
    """A new version whose content equals ``version`` (history is kept)."""
    number = parse_version(body.version)
    made = await to_thread.run_sync(lambda: runtime.knowledge.rollback(number, author="api"))
    return {"version": made.to_dict()} | await serve_head(runtime)


# ------------------------------------------------------------------------------ hit-testing, checks


@router.get("/search")
async def search(
    runtime: RuntimeDep,
    q: Annotated[str, Query(min_length=1, max_length=2000, description="What a customer would ask")],
    k: Annotated[int, Query(ge=1, le=50)] = 5,
    version: VersionQuery = None,
) -> dict[str, Any]:
    """Hit-testing: the chunks ``q`` retrieves, their scores, the confidence and what the bot would do."""
    wanted = parse_optional_version(version)
    found = await to_thread.run_sync(lambda: runtime.knowledge.search(q, k, wanted))
    return retrieval_public(found)


@router.get("/conflicts")
async def conflicts(
    runtime: RuntimeDep, version: VersionQuery = None, semantic: bool = True
) -> dict[str, Any]:
    """FAQ entries asking the same question ("conflict": different answers — not answered verbatim
    until fixed; "duplicate": the same answer twice). ``semantic`` also compares by embedding."""
    knowledge, wanted = runtime.knowledge, parse_optional_version(version)
    embedder = knowledge.embedder if semantic else None
    found = await to_thread.run_sync(lambda: knowledge.store.faq_conflicts(wanted, embedder=embedder))
    data = [c.to_dict() for c in found]
    n_conflicts = sum(1 for c in found if c.kind == "conflict")
    return {"data": data, "count": len(data), "conflicts": n_conflicts, "duplicates": len(data) - n_conflicts}


# ------------------------------------------------------------------------------ export / import


@router.get("/export", response_class=Response)
async def export(runtime: RuntimeDep, version: VersionQuery = None) -> Response:
    """A zip of ``kb.json`` + ``documents/…json`` (``kefu kb export``'s files, Git-friendly)."""
    store, wanted = runtime.knowledge.store, parse_optional_version(version)

    def pack() -> tuple[int, bytes]:
        with tempfile.TemporaryDirectory(prefix="kefu-export-") as tmp:
            manifest = store.export_json(Path(tmp), wanted)
            number = int(_read_json(manifest)["version"])
            return number, zip_folder(Path(tmp))

    number, data = await to_thread.run_sync(pack)
    disposition = f'attachment; filename="kefu-kb-v{number}.zip"'
    return Response(data, media_type="application/zip", headers={"Content-Disposition": disposition})


@router.post("/import")
async def import_zip(
    runtime: RuntimeDep,
    file: Annotated[UploadFile, File(description="A zip from GET /v1/kb/export")],
    message: Annotated[str | None, Form()] = None,
) -> dict[str, Any]:
    """Make the knowledge base equal to the zip's documents, as one new version (all or nothing)."""
    limit = runtime.settings.kb_max_file_bytes * ARCHIVE_FACTOR
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(
            f"the zip is over {human_size(limit)}; import the folder with `kefu kb import` instead"
        )
    store, name = runtime.knowledge.store, PurePosixPath(file.filename or "upload.zip").name

    def load() -> ApplyResult:
        with tempfile.TemporaryDirectory(prefix="kefu-import-") as tmp:
            root = unzip_export(data, Path(tmp), runtime.settings.kb_max_file_bytes)
            return store.import_json(root, message=(message or f"import {name}")[:500], author="api")

    change = await to_thread.run_sync(load)
    return {"version": _version(change), "change": change.to_dict()} | await serve_head(runtime)


# ------------------------------------------------------------------------------ sources


@router.get("/sources")
async def list_sources(runtime: RuntimeDep) -> dict[str, Any]:
    found = await to_thread.run_sync(runtime.knowledge.sources.list)
    return {"data": [s.to_dict() for s in found], "count": len(found)}


@router.post("/sources", status_code=201, dependencies=[JsonBody])
async def add_source(body: SourceBody, runtime: RuntimeDep) -> dict[str, Any]:
    """Register a folder, local git checkout, file or URL list on the server, synced every
    ``interval_seconds``; with ``sync`` (default) it is read now."""
    knowledge = runtime.knowledge
    location = source_location(body)
    if body.kind == "urls" and not runtime.settings.kb_allow_private_urls:
        await to_thread.run_sync(lambda: refuse_private_hosts(location.splitlines()))
    interval = runtime.settings.kb_sync_interval if body.interval_seconds is None else body.interval_seconds

    def register() -> tuple[Source, IngestReport | None]:
        source = knowledge.sources.add(body.kind, location, interval)
        return source, knowledge.sync(source, author="api") if body.sync else None

    source, report = await to_thread.run_sync(register)
    result = {"source": source.to_dict(), "report": report.to_dict() if report else None}
    return result | (await serve_head(runtime) if report and report.version else {})


@router.post("/sources/{source_id}/sync")
async def sync_source(source_id: str, runtime: RuntimeDep, force: bool = False) -> dict[str, Any]:
    """Re-read a source and apply what changed in it since its last sync (``held``: documents whose
    file is unchanged while the KB was rolled back or edited since); ``force`` reads every file back."""
    knowledge = runtime.knowledge
    report = await to_thread.run_sync(
        lambda: knowledge.sync(knowledge.sources.get(source_id), author="api", force=force)
    )
    return report.to_dict() | await serve_head(runtime)


@router.delete("/sources/{source_id}")
async def delete_source(source_id: str, runtime: RuntimeDep, retire: bool = False) -> dict[str, Any]:
    """Stop syncing a source; with ``retire`` its documents are removed too (one new version)."""
    knowledge = runtime.knowledge

    def remove() -> tuple[Source, ApplyResult | None]:
        source = knowledge.sources.remove(source_id)
        current = {d.doc_id for d in knowledge.store.documents()}
        gone = [d for d in source.doc_ids if d in current]
        return source, knowledge.delete(gone, author="api") if retire and gone else None

    source, change = await to_thread.run_sync(remove)
    body = {"source": source.to_dict(), "version": _version(change), "change": change and change.to_dict()}
    return body | (await serve_head(runtime) if change else {})


# ------------------------------------------------------------------------------ helpers


async def serve_head(runtime: Runtime) -> dict[str, Any]:
    """Load the head version now, so the chat answers from it; a failure is reported, not raised (the
    change is stored, and the background refresh retries)."""
    try:
        kb = await to_thread.run_sync(runtime.knowledge.refresh)
    except Exception as exc:
        log.exception("loading the new knowledge-base version failed")
        detail = exc.message if isinstance(exc, KefuError) else type(exc).__name__
        return {
            "serving": runtime.knowledge.current().version,
            "warning": f"stored, but not served yet ({detail}); the background refresh retries — see the log",
        }
    return {"serving": kb.version}


def _version(change: ApplyResult | None) -> int | None:
    return change.version.number if change is not None and change.version is not None else None


def _number(runtime: Runtime, version: int | None) -> int | None:
    if version is not None:
        return runtime.knowledge.store.version(version).number  # NotFound names the versions
    head = runtime.knowledge.store.head()
    return head.number if head else None


def refuse_private_hosts(urls: list[str]) -> None:
    """A URL source registered over the API must not reach this server's own network (loopback,
    private, link-local: cloud metadata, admin ports) unless KEFU_KB_ALLOW_PRIVATE_URLS is set."""
    for url in urls:
        host = urlsplit(url).hostname or ""
        try:
            infos = socket.getaddrinfo(host, None)
        except OSError as exc:
            raise InvalidInput(f"cannot resolve the host of {url!r} ({exc}); check the URL") from None
        for info in infos:
            address = ipaddress.ip_address(info[4][0])
            if address.is_private or address.is_loopback or address.is_link_local or address.is_reserved:
                raise InvalidInput(
                    f"{url!r} points into this server's own network ({address}); intranet sources need "
                    "KEFU_KB_ALLOW_PRIVATE_URLS=true, or register them with `kefu kb ingest` on the server"
                )


def source_location(body: SourceBody) -> str:
    """The stored location: a resolved path on the server, or the URLs one per line."""
    if body.kind == "urls":
        urls = [u.strip() for u in [*body.location.splitlines(), *body.urls] if u.strip()]
        bad = [u for u in urls if not u.lower().startswith(("http://", "https://"))]
        if not urls or bad:
            what = f"{bad[0]!r} is not" if bad else "no URL given; each must be"
            raise InvalidInput(f"{what} an http(s) URL; list the pages to sync in 'urls'")
        return "\n".join(dict.fromkeys(urls))
    path = Path(body.location.strip()).expanduser()
    if not body.location.strip():
        raise InvalidInput(f"a {body.kind} source needs 'location': its path on the server")
    if body.kind == "file" and not path.is_file():
        raise InvalidInput(f"{path} is not a file on the server; give the path of a document")
    if body.kind in ("folder", "git") and not path.is_dir():
        raise InvalidInput(f"{path} is not a folder on the server; give the folder that holds the documents")
    if body.kind == "git" and not (path / ".git").exists():
        raise InvalidInput(f"{path} is not a git checkout (no .git); register it as a folder instead")
    return str(path.resolve())


def _read_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
