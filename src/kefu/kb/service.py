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

from kefu.breakers import breaker_for
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
    # Sync only: targets in ``errors`` that failed the same way, unchanged, at the source's last run
    reported_before: list[str] = field(default_factory=list)
    # Sync only: documents whose file is unchanged since the last sync while the knowledge base has
    # other content for them (a rollback or an edit since): kept as the knowledge base has them
    held: list[str] = field(default_factory=list)

    @property
    def version(self) -> int | None:
        return self.result.version.number if self.result and self.result.version else None

    @property
    def new_errors(self) -> list[dict[str, str]]:
        """The errors not reported at the source's previous run (all of them for an ingest)."""
        before = set(self.reported_before)
        return [e for e in self.errors if e["target"] not in before]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "change": self.result.to_dict() if self.result else None,
            "documents": self.documents,
            "errors": self.errors,
            "skipped": self.skipped,
            "reported_before": self.reported_before,
            "held": self.held,
            "source": self.source.to_dict() if self.source else None,
        }


HELD_HINT = "`kefu kb sync --force` makes them equal to the files again"


def describe_held(report: IngestReport) -> str:
    """One line on the documents a sync kept as the knowledge base has them."""
    names = ", ".join(report.held[:5]) + (" …" if len(report.held) > 5 else "")
    return (
        f"kept {len(report.held)} document(s) as the knowledge base has them: the file is unchanged since "
        f"the last sync and the knowledge base was changed after it (a rollback or an edit): {names}. "
        f"{HELD_HINT}"
    )


def describe_reported_before(report: IngestReport) -> str:
    names = ", ".join(report.reported_before[:5]) + (" …" if len(report.reported_before) > 5 else "")
    return f"{len(report.reported_before)} file(s) still unreadable (reported before): {names}"


def log_report(report: IngestReport) -> None:
    """A sync in the log (the background worker, start-up): the new version, each new error once,
    one line for the errors reported before and one for the documents kept."""
    where = f"{report.source.kind} {report.source.location}" if report.source else "?"
    if report.version is not None:
        log.info("synced %s → KB v%s", where, report.version)
    for error in report.new_errors[:5]:
        log.warning("sync of %s: %s: %s", where, error["target"], error["error"])
    if report.reported_before:
        log.info("sync of %s: %s", where, describe_reported_before(report))
    if report.held:
        log.info("sync of %s: %s", where, describe_held(report))


def make_embedder(settings: Settings) -> Embedder:
    if settings.embedder == "openai":
        return OpenAIEmbedder(
            settings.embedding_url,
            settings.embedding_model,
            settings.embedding_api_key.get_secret_value(),
            dim=settings.embedding_dim,
            breaker=breaker_for(
                settings, "embeddings", settings.embedding_url, fallback="searches rank by BM25 only"
            ),
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
                settings.rerank_url,
                settings.rerank_model,
                settings.rerank_api_key.get_secret_value(),
                breaker=breaker_for(
                    settings, "rerank", settings.rerank_url, fallback="searches serve the fused order"
                ),
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
        from kefu.safety.injection_classifier import use_classifier
        from kefu.safety.injection_source import CACHE_FILE as SOURCE_CACHE_FILE
        from kefu.safety.injection_source import use_source_cache

        # documents are guarded as they load (kb/loader.py): KEFU_INJECTION_CLASSIFIER decides before the
        # first build whether the source classifier runs, and its sentence vectors live beside the index's
        use_classifier(settings.injection_classifier)
        use_source_cache(index_dir / SOURCE_CACHE_FILE)
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
            hashes = {d.doc_id: d.content_hash for d in puts}
            unreadable = _unreadable(report.source, report, mark=False)  # an ingest reports every error
            self.sources.record_run(report.source, report.documents, _summary(report, unreadable), hashes)
        return report

    def sync(self, source: Source, *, author: str = "sync", force: bool = False) -> IngestReport:
        """Re-read one source and apply what changed in it since its last run: changed documents get
        new versions, vanished ones are retired, files that fail to parse keep their previous version
        (and are reported — once: an unchanged file failing the same way again is only counted in
        ``reported_before``). A document whose file is unchanged since the last run is not read back
        over the knowledge base, so a rollback or an edit made since stands (``held``) until the file
        changes; ``force`` makes the knowledge base equal to the source again."""
        report = IngestReport(source=source)
        docs = self._read_source(source, report)
        failed = {e["target"] for e in report.errors}
        seen = {d.doc_id for d in docs}
        # Nothing read and errors (a folder unmounted or deleted, the source's only file damaged, every
        # URL down): retire nothing and keep the source's documents until it can be read again.
        unreadable = not docs and bool(report.errors)
        head = self._head_hashes()
        gone = [] if unreadable else [d for d in source.doc_ids if d not in seen | failed and d in head]
        puts = docs if force else self._changed_since_last_run(source, docs, head, report)
        report.documents = sorted(seen)
        if puts or gone:
            with self._write_lock:
                report.result = self.store.apply(
                    puts, gone, message=f"sync {source.kind} {source.location}"[:500], author=author
                )
        kept = sorted(set(source.doc_ids) if unreadable else seen | (failed & set(source.doc_ids)))
        hashes = source.read_hashes | {d.doc_id: d.content_hash for d in docs}
        failures = _unreadable(source, report)
        self.sources.record_run(source, kept, _summary(report, failures), hashes)
        return report

    def _head_hashes(self) -> dict[str, str]:
        """doc_id → content hash of the head version's documents."""
        return {d.doc_id: d.content_hash for d in self.store.documents()} if self.store.head() else {}

    @staticmethod
    def _changed_since_last_run(
        source: Source, docs: Sequence[SourceDocument], head: dict[str, str], report: IngestReport
    ) -> list[SourceDocument]:
        """The documents read whose content differs from the last run's (or is new); those unchanged
        whose knowledge-base content differs go to ``report.held`` — unless the knowledge base holds
        their content under another id (a duplicate, stored once)."""
        changed, same_content = [], set(head.values())
        for doc in docs:
            last = source.read_hashes.get(doc.doc_id, "")
            if not last or last != doc.content_hash:
                changed.append(doc)
            elif head.get(doc.doc_id) != doc.content_hash and not (
                doc.doc_id not in head and doc.content_hash in same_content
            ):
                report.held.append(doc.doc_id)
        return changed

    def sync_all(self, *, due_only: bool, author: str = "sync", force: bool = False) -> list[IngestReport]:
        reports = []
        for source in self.sources.list():
            if due_only and not source.due():
                continue
            try:
                reports.append(self.sync(source, author=author, force=force))
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
        demo = None
        if known is None and self.store.head() is not None:
            demo = self._demo_pack_only()
            if demo is None:
                # The knowledge base was built another way (`kefu kb ingest`, the API): KEFU_KB_DIR (by
                # default the demo shop) is not mixed into it.
                log.info(
                    "a knowledge base is in use; %s is not one of its sources, so it is not imported", kb_dir
                )
                return None
        source = known or self.sources.add("folder", location, self.settings.kb_sync_interval)
        report = self.sync(source, author="startup")
        log_report(report)
        if self.store.head() is None or (demo is not None and not report.documents):
            if demo is not None:
                self.sources.remove(source.id)  # the demo pack stays until the folder can be read
            detail = "; ".join(f"{e['target']}: {e['error']}" for e in report.errors[:3])
            raise KnowledgeBaseError(
                f"knowledge base folder {kb_dir} has no readable documents"
                f"{f' ({detail})' if detail else ''}; add Markdown, PDF, DOCX, HTML or FAQ files or fix KEFU_KB_DIR"
            )
        if demo is not None:
            self._retire_demo_pack(demo, report, kb_dir)
        return report

    def _demo_pack_only(self) -> Source | None:
        """The bundled demo shop's source, when it is the only one (the knowledge base `kefu demo` or a
        first start without KEFU_KB_DIR made): a KEFU_KB_DIR of the shop's own then replaces it."""
        from kefu.config import DEMO_SHOP_DIR

        sources = self.sources.list()
        demo_location = str(DEMO_SHOP_DIR.resolve())
        return sources[0] if len(sources) == 1 and sources[0].location == demo_location else None

    def _retire_demo_pack(self, demo: Source, report: IngestReport, kb_dir: Path) -> None:
        self.sources.remove(demo.id)
        head = self._head_hashes()
        gone = [d for d in demo.doc_ids if d in head and d not in report.documents]
        if gone:
            self.delete(gone, author="startup")
        log.info(
            "%s replaces the demo shop's knowledge pack: %d demo document(s) retired "
            "(`kefu kb history` shows them; `kefu kb rollback` brings them back)",
            kb_dir,
            len(gone),
        )

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


def _summary(report: IngestReport, unreadable: dict[str, dict[str, str]]) -> dict[str, Any]:
    result = report.result
    return {
        "version": report.version,
        "added": len(result.added) if result else 0,
        "updated": len(result.updated) if result else 0,
        "deleted": len(result.deleted) if result else 0,
        "unchanged": len(result.unchanged) if result else 0,
        "held": len(report.held),
        "errors": report.errors[:20],
        "unreadable": unreadable,
    }


def _unreadable(source: Source, report: IngestReport, *, mark: bool = True) -> dict[str, dict[str, str]]:
    """The failures of this run as the source remembers them ({target: {"error", "stamp"}}); marks in
    ``report.reported_before`` those that failed at the last run too, unchanged and with the same error."""
    before = source.unreadable
    now: dict[str, dict[str, str]] = {}
    for error in report.errors:
        target = error["target"]
        now[target] = {"error": error["error"], "stamp": _file_stamp(source, target)}
        if mark and before.get(target) == now[target] and target not in report.reported_before:
            report.reported_before.append(target)
    return now


def _file_stamp(source: Source, target: str) -> str:
    """``size:mtime_ns`` of the file behind an error target (a path relative to a folder source, or
    absolute), "" for a URL or a file that is not there: what makes "the same file failing again"."""
    if re.match(r"^https?://", target, re.IGNORECASE):
        return ""
    path = Path(target)
    if not path.is_absolute() and source.kind in ("folder", "git"):
        path = Path(source.location) / target
    try:
        info = path.stat()
    except OSError:
        return ""
    return f"{info.st_size}:{info.st_mtime_ns}" if path.is_file() else ""


class LiveRetriever:
    """What the assistant searches: always the head version of the knowledge base."""

    def __init__(self, service: KnowledgeService) -> None:
        self.service = service

    @property
    def version(self) -> str:
        return self.service.current().version

    def search(self, query: str, k: int = 4) -> Retrieval:
        return self.service.current().search(query, k)
