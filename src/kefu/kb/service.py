"""The knowledge base as an operator manages it: ingest, sync, versions, and the live index.

    service = KnowledgeService.open(settings, engine)
    service.ingest(["./manuals", "https://shop.example.com/returns"])   # parse → one new KB version
    service.current()          # the KnowledgeBase of the head version (rebuilt when the head moves)
    service.sync_due()         # re-ingest the registered sources whose interval has passed

The SQL store (``kefu.kb.store``) is the truth: every version of every document. The dense index
(``kefu.kb.vectors``: FAISS on disk, pgvector, memory) and the embedding cache are derived from it
and brought up to date on load, so a crash between the two never loses a document: the next load
embeds what is missing. Parsing happens before the store is touched, and one ingest or sync is one
transaction: a bad file is reported and skipped, never half-indexed.
"""

from __future__ import annotations

import hashlib
import logging
import re
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kefu.errors import InvalidInput, KnowledgeBaseError
from kefu.kb.documents import SourceDocument
from kefu.kb.embeddings import EmbeddingCache, OpenAIEmbedder, shared_embedder
from kefu.kb.index import CACHE_FILE, IndexScores, KnowledgeBase, embed_pack, index_pack
from kefu.kb.loader import build_pack
from kefu.kb.rerank import HttpReranker
from kefu.kb.sources import Source, SourceStore
from kefu.kb.store import ApplyResult, KbStore
from kefu.kb.types import Embedder, Retrieval

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from kefu.config import Settings
    from kefu.kb.vectors import VectorIndex

log = logging.getLogger("kefu.kb")

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class IngestReport:
    """What one ingest or sync did: the new version (if any), per-file errors, skipped files."""

    result: ApplyResult | None = None
    documents: list[str] = field(default_factory=list)  # doc ids parsed successfully
    errors: list[dict[str, str]] = field(default_factory=list)  # {"target", "error"}
    skipped: list[str] = field(default_factory=list)  # unsupported file types
    source: Source | None = None

    @property
    def version(self) -> int | None:
        return self.result.version.number if self.result and self.result.version else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "change": self.result.to_dict() if self.result else None,
            "documents": self.documents,
            "errors": self.errors,
            "skipped": self.skipped,
            "source": self.source.to_dict() if self.source else None,
        }


def make_embedder(settings: Settings) -> Embedder:
    if settings.embedder == "openai":
        return OpenAIEmbedder(
            settings.embedding_url,
            settings.embedding_model,
            settings.embedding_api_key.get_secret_value(),
            dim=settings.embedding_dim,
        )
    return shared_embedder()


def index_namespace(embedder: Embedder, database_url: str = "") -> str:
    """One vector namespace per embedding model and knowledge-base database, so two servers (or test
    runs) on different databases never share index files."""
    model = re.sub(r"[^a-z0-9]+", "_", embedder.name.lower()).strip("_")[:40]
    db = hashlib.sha256(database_url.encode()).hexdigest()[:8] if database_url else ""
    return f"{model}_{db}" if db else model


class KnowledgeService:
    def __init__(
        self,
        settings: Settings,
        store: KbStore,
        sources: SourceStore,
        embedder: Embedder,
        index: VectorIndex,
        cache: EmbeddingCache,
    ) -> None:
        self.settings = settings
        self.store = store
        self.sources = sources
        self.embedder = embedder
        self.index = index
        self.cache = cache
        self.reranker: HttpReranker | None = None
        if settings.rerank_url and settings.rerank_model:
            self.reranker = HttpReranker(
                settings.rerank_url, settings.rerank_model, settings.rerank_api_key.get_secret_value()
            )
        self._kb: KnowledgeBase | None = None
        self._kb_version: int | None = None
        self._build_lock = threading.Lock()
        self._write_lock = threading.Lock()

    @classmethod
    def open(
        cls, settings: Settings, engine: Engine, *, embedder: Embedder | None = None
    ) -> KnowledgeService:
        from kefu.kb.vectors import open_vector_index

        embedder = embedder or make_embedder(settings)
        index_dir = settings.effective_index_dir
        vector_url = settings.kb_vector_url or (
            engine if settings.kb_index_backend == "pgvector" and not settings.kb_vector_url else None
        )
        if (
            settings.kb_index_backend == "pgvector"
            and engine.dialect.name != "postgresql"
            and not (settings.kb_vector_url)
        ):
            raise KnowledgeBaseError(
                "KEFU_KB_INDEX_BACKEND=pgvector needs PostgreSQL: set KEFU_KB_VECTOR_URL or use a "
                "postgresql:// KEFU_DATABASE_URL"
            )
        index = open_vector_index(
            settings.kb_index_backend,
            dim=embedder.dim,
            namespace=index_namespace(embedder, settings.effective_database_url),
            directory=index_dir / "vectors",
            database_url=vector_url,
        )
        return cls(
            settings,
            KbStore(engine),
            SourceStore(engine),
            embedder,
            index,
            EmbeddingCache(index_dir / CACHE_FILE),
        )

    # -- the live knowledge base

    def current(self, progress: Progress | None = None) -> KnowledgeBase:
        """The loaded KnowledgeBase (the head version when it was last loaded or refreshed)."""
        kb = self._kb
        return kb if kb is not None else self.refresh(progress)

    def refresh(self, progress: Progress | None = None) -> KnowledgeBase:
        """Load the head version if it moved (another process, the API or a sync changed it); the index
        is updated before the new version serves, so a search never sees a half-built one."""
        head = self.store.head()
        number = head.number if head else 0
        with self._build_lock:
            if self._kb is not None and self._kb_version == number:
                return self._kb
            kb = self.build(number or None, progress)
            self._kb, self._kb_version = kb, number
            log.info("knowledge base v%s loaded: %d chunks", number, len(kb.chunks))
            return kb

    def build(
        self, version: int | None, progress: Progress | None = None, *, live: bool = True
    ) -> KnowledgeBase:
        """The KnowledgeBase of ``version``. ``live``: through the shared vector index, which is brought
        to exactly this version's keys (only for the version about to be served); otherwise the
        vectors are held in memory (hit-testing an old version must not evict the served one's)."""
        settings = self.settings
        documents = self.store.documents(version) if version else []
        pack = build_pack(documents, f"v{version or 0}", settings.kb_chunk_chars, settings.kb_chunk_overlap)
        if progress is not None:
            progress("embedding", 0, len(pack.keys))
        scores: IndexScores | np.ndarray = (
            index_pack(pack, self.embedder, self.cache, self.index)
            if live
            else embed_pack(pack, self.embedder, self.cache)
        )
        if progress is not None:
            progress("embedding", len(pack.keys), len(pack.keys))
        excluded = (
            frozenset(f"faq:{i}" for i in self.store.conflicted_faq_ids(version)) if version else frozenset()
        )
        return KnowledgeBase(
            pack,
            self.embedder,
            scores,
            settings.faq_direct_threshold,
            settings.grounded_threshold,
            faq_margin=settings.faq_margin,
            excluded_faqs=excluded,
            reranker=self.reranker,
            rerank_candidates=settings.rerank_candidates,
        )

    def search(self, query: str, k: int = 4, version: int | None = None) -> Retrieval:
        kb = self.current()
        if version is not None and kb.version != f"v{version}":
            kb = self.build(version, live=False)
        return kb.search(query, k)

    # -- changes

    def ingest(
        self,
        targets: Sequence[str],
        *,
        author: str = "cli",
        register: bool = True,
        interval_seconds: int | None = None,
        progress: Progress | None = None,
    ) -> IngestReport:
        """Parse ``targets`` (files, folders, http(s) URLs) and store what parsed as one new version.

        With ``register`` each folder or URL list becomes a source that ``sync`` re-reads later
        (every ``interval_seconds``, default KEFU_KB_SYNC_INTERVAL)."""
        if not targets:
            raise InvalidInput("nothing to ingest: give files, folders or http(s) URLs")
        interval = self.settings.kb_sync_interval if interval_seconds is None else interval_seconds
        report = IngestReport()
        puts: list[SourceDocument] = []
        for n, target in enumerate(targets):
            if progress is not None:
                progress("parsing", n, len(targets))
            kind, location = _classify(target)
            if register and kind in ("folder", "git", "urls"):
                source = self.sources.add(kind, location, interval)
                found = self._read_source(source, report)
                puts.extend(found)
                report.source = source
            else:
                puts.extend(self._read_one(kind, location, report))
        if progress is not None:
            progress("parsing", len(targets), len(targets))
        report.documents = [d.doc_id for d in puts]
        if puts:
            with self._write_lock:
                report.result = self.store.apply(
                    puts, message=f"ingest {', '.join(targets)}"[:500], author=author
                )
        if register and report.source is not None:
            self.sources.record_run(report.source, report.documents, _summary(report))
        return report

    def sync(self, source: Source, *, author: str = "sync") -> IngestReport:
        """Re-read one source: changed documents get new versions, vanished ones are retired, files
        that fail to parse keep their previous version (and are reported)."""
        report = IngestReport(source=source)
        docs = self._read_source(source, report)
        failed = {e["target"] for e in report.errors}
        seen = {d.doc_id for d in docs}
        # Nothing read and errors (a folder unmounted or deleted, the source's only file damaged, every
        # URL down): retire nothing and keep the source's documents until it can be read again.
        unreadable = not docs and bool(report.errors)
        head_ids = {d.doc_id for d in self.store.documents()} if self.store.head() else set()
        gone = [] if unreadable else [d for d in source.doc_ids if d not in seen | failed and d in head_ids]
        report.documents = sorted(seen)
        if docs or gone:
            with self._write_lock:
                report.result = self.store.apply(
                    docs, gone, message=f"sync {source.kind} {source.location}"[:500], author=author
                )
        kept = sorted(set(source.doc_ids) if unreadable else seen | (failed & set(source.doc_ids)))
        self.sources.record_run(source, kept, _summary(report))
        return report

    def sync_all(self, *, due_only: bool, author: str = "sync") -> list[IngestReport]:
        reports = []
        for source in self.sources.list():
            if due_only and not source.due():
                continue
            try:
                reports.append(self.sync(source, author=author))
            except Exception as exc:  # one broken source never stops the others
                log.exception("sync of %s %s failed", source.kind, source.location)
                reports.append(
                    IngestReport(source=source, errors=[{"target": source.location, "error": str(exc)}])
                )
        return reports

    def sync_due(self) -> list[IngestReport]:
        return self.sync_all(due_only=True)

    def put(self, documents: Sequence[SourceDocument], *, author: str, message: str) -> ApplyResult:
        with self._write_lock:
            return self.store.apply(documents, message=message, author=author)

    def delete(self, doc_ids: Sequence[str], *, author: str) -> ApplyResult:
        with self._write_lock:
            return self.store.apply((), doc_ids, message=f"delete {', '.join(doc_ids)}"[:500], author=author)

    def rollback(self, to: int, *, author: str) -> Any:
        with self._write_lock:
            return self.store.rollback(to, author=author)

    def bootstrap(self, kb_dir: Path | None) -> IngestReport | None:
        """At start-up: register ``kb_dir`` (KEFU_KB_DIR) as a source and sync it — the first start
        imports it; later starts pick up edited files (unchanged files cost a hash, not an embedding)."""
        if kb_dir is None:
            return None
        if not kb_dir.is_dir():
            raise KnowledgeBaseError(f"knowledge base folder {kb_dir} does not exist; set KEFU_KB_DIR")
        location = str(kb_dir.resolve())
        known = next((s for s in self.sources.list() if s.location == location), None)
        if known is None and self.store.head() is not None:
            # The knowledge base was built another way (`kefu kb ingest`, the API): KEFU_KB_DIR (by
            # default the demo shop) is not mixed into it.
            log.info(
                "a knowledge base is in use; %s is not one of its sources, so it is not imported", kb_dir
            )
            return None
        source = known or self.sources.add("folder", location, self.settings.kb_sync_interval)
        report = self.sync(source, author="startup")
        if self.store.head() is None:
            detail = "; ".join(f"{e['target']}: {e['error']}" for e in report.errors[:3])
            raise KnowledgeBaseError(
                f"knowledge base folder {kb_dir} has no readable documents"
                f"{f' ({detail})' if detail else ''}; add Markdown, PDF, DOCX, HTML or FAQ files or fix KEFU_KB_DIR"
            )
        return report

    def close(self) -> None:
        self.index.close()
        if self.reranker is not None:
            self.reranker.close()
        close = getattr(self.embedder, "close", None)
        if callable(close) and self.embedder is not shared_embedder():
            close()

    # -- reading sources

    def _read_source(self, source: Source, report: IngestReport) -> list[SourceDocument]:
        if source.kind == "urls":
            docs: list[SourceDocument] = []
            for url in source.urls:
                docs.extend(self._read_one("url", url, report))
            return docs
        if source.kind == "file":
            return self._read_one("file", source.location, report)
        root = Path(source.location)
        if source.kind == "git":
            _git_pull(root, report)
        return self._read_folder(root, report)

    def _read_folder(self, root: Path, report: IngestReport) -> list[SourceDocument]:
        from kefu.kb.parsers import scan_folder

        try:
            scan = scan_folder(root, max_bytes=self.settings.kb_max_file_bytes, exclude=ignored(root))
        except KnowledgeBaseError as exc:
            report.errors.append({"target": str(root), "error": exc.message})
            return []
        report.errors.extend({"target": e.doc_id, "error": e.message} for e in scan.errors)
        report.skipped.extend(scan.skipped)
        return list(scan.documents)

    def _read_one(self, kind: str, location: str, report: IngestReport) -> list[SourceDocument]:
        from kefu.kb.parsers import fetch_url, parse_file

        try:
            if kind == "url":
                return [fetch_url(location, max_bytes=self.settings.kb_max_file_bytes)]
            if kind in ("folder", "git"):
                return self._read_folder(Path(location), report)
            path = Path(location)
            return [parse_file(path, root=path.parent, max_bytes=self.settings.kb_max_file_bytes)]
        except KnowledgeBaseError as exc:
            report.errors.append({"target": location, "error": exc.message})
            return []


IGNORE_FILE = ".kefuignore"


def ignored(root: Path) -> list[str]:
    """Glob patterns (one per line, # comments) in ``<root>/.kefuignore``: files that are not documents."""
    path = root / IGNORE_FILE
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _classify(target: str) -> tuple[str, str]:
    """("url" | "urls" | "folder" | "git" | "file", location) for a CLI/API target."""
    if re.match(r"^https?://", target, re.IGNORECASE):
        return "urls", target
    path = Path(target).expanduser()
    if path.is_dir():
        kind = "git" if (path / ".git").exists() else "folder"
        return kind, str(path.resolve())
    if path.is_file():
        return "file", str(path.resolve())
    raise InvalidInput(f"{target} is neither a file, a folder nor an http(s) URL; check the path")


def _git_pull(root: Path, report: IngestReport) -> None:
    """Fast-forward a git checkout from its upstream, if it has one; a failure is reported and the
    checkout is read as it is."""
    upstream = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--abbrev-ref", "@{upstream}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if upstream.returncode != 0:
        return  # no upstream: read the working tree as it is
    pulled = subprocess.run(
        ["git", "-C", str(root), "pull", "--ff-only", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if pulled.returncode != 0:
        report.errors.append(
            {"target": str(root), "error": f"git pull failed ({pulled.stderr.strip()[:300]}); read as is"}
        )


def _summary(report: IngestReport) -> dict[str, Any]:
    result = report.result
    return {
        "version": report.version,
        "added": len(result.added) if result else 0,
        "updated": len(result.updated) if result else 0,
        "deleted": len(result.deleted) if result else 0,
        "unchanged": len(result.unchanged) if result else 0,
        "errors": report.errors[:20],
    }


class LiveRetriever:
    """What the assistant searches: always the head version of the knowledge base."""

    def __init__(self, service: KnowledgeService) -> None:
        self.service = service

    @property
    def version(self) -> str:
        return self.service.current().version

    def search(self, query: str, k: int = 4) -> Retrieval:
        return self.service.current().search(query, k)
