"""``kefu kb …``: ingest, hit-test, version and sync the knowledge base from the command line.

Every command works on the database in KEFU_DATABASE_URL (the same one ``kefu serve`` and ``kefu demo``
use; named on stderr); a running server picks up a new version within seconds (its background worker
refreshes).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kefu.cli_support import friendly_errors, say_database
from kefu.config import load_settings
from kefu.kb.versions_schema import parse_optional_version, parse_version

if TYPE_CHECKING:
    from kefu.kb.service import IngestReport, KnowledgeService

kb_app = typer.Typer(help="The knowledge base: ingest, search, versions, sync.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)


@contextmanager
def knowledge_service() -> Iterator[KnowledgeService]:
    from kefu.kb.service import KnowledgeService
    from kefu.storage.engine import make_engine
    from kefu.storage.factory import settings_keyring
    from kefu.storage.migrate import migrate

    settings = load_settings()
    say_database(settings.effective_database_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.effective_database_url)
    try:
        migrate(engine, keyring=settings_keyring(settings))
        service = KnowledgeService.open(settings, engine)
        try:
            yield service
        finally:
            service.close()
    finally:
        engine.dispose()


@contextmanager
def progress_bar() -> Iterator[Any]:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=False) as bar:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            label = {"parsing": "解析 parsing", "embedding": "向量 embedding"}.get(stage, stage)
            if stage not in tasks:
                tasks[stage] = bar.add_task(label, total=total or 1)
            bar.update(tasks[stage], completed=done, total=total or 1)

        yield update


def print_report(report: IngestReport, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(report.to_dict(), ensure_ascii=False, default=str))
        return
    from kefu.kb.service import describe_held, describe_reported_before

    result = report.result
    for error in report.new_errors:
        err.print(f"[red]✗[/red] {error['target']}: {error['error']}", highlight=False)
    if report.reported_before:
        err.print(f"[yellow]–[/yellow] {describe_reported_before(report)}", highlight=False)
    for skipped in report.skipped:
        err.print(f"[yellow]–[/yellow] {skipped}: unsupported file type, skipped", highlight=False)
    if report.held:
        err.print(f"[yellow]–[/yellow] {describe_held(report)}", highlight=False)
    if result is None:
        if report.documents:  # read, but nothing changed since the last sync
            out.print(
                f"no change: {len(report.documents)} document(s) read; the knowledge base stays as it is"
            )
        else:
            out.print("nothing stored: no document could be read" if report.errors else "nothing to store")
        return
    if result.version is None:
        out.print(
            f"no change: {len(result.unchanged)} document(s) unchanged; the knowledge base stays as it is"
        )
    else:
        out.print(
            f"[green]v{result.version.number}[/green]: {len(result.added)} added, {len(result.updated)} "
            f"updated, {len(result.deleted)} retired, {len(result.unchanged)} unchanged",
            highlight=False,
        )
    for doc_id, same_as in result.duplicates:
        out.print(f"duplicate: {doc_id} has the same content as {same_as}; stored once", highlight=False)
    if report.source is not None:
        every = report.source.interval_seconds
        when = f"every {every / 86400:g} day(s)" if every else "by hand only (kefu kb sync)"
        out.print(f"source {report.source.id} ({report.source.kind}) syncs {when}", highlight=False)


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
VersionOpt = Annotated[str | None, typer.Option(help="KB version, e.g. v3 or 3 (default: the head).")]


@kb_app.command("ingest")
@friendly_errors
def ingest(
    targets: Annotated[
        list[str], typer.Argument(help="Files, folders (also git checkouts) or http(s) URLs.")
    ],
    interval_days: Annotated[
        float | None,
        typer.Option(
            help="Re-sync folders and URLs every N days (default: KEFU_KB_SYNC_INTERVAL, weekly; 0 = by hand)."
        ),
    ] = None,
    register: Annotated[
        bool, typer.Option(help="Remember folders and URLs as sources for `kefu kb sync`.")
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Parse documents (Markdown, text, PDF, DOCX, HTML, FAQ JSON/CSV/XLSX) into a new KB version."""
    interval = None if interval_days is None else int(interval_days * 86400)
    with knowledge_service() as service, progress_bar() as progress:
        report = service.ingest(targets, register=register, interval_seconds=interval, progress=progress)
        kb = service.refresh(progress)  # embed now, so the server's next refresh is instant
    print_report(report, as_json)
    if not as_json:
        from rich.markup import escape

        for q in kb.quarantined:
            if q.doc_id in report.documents:
                err.print(
                    f"[yellow]![/yellow] {q.doc_id} chunk {q.chunk_id}: instruction-like sentence removed "
                    f"({q.reason}): {escape(repr(q.sentence))} — edit the document if it is legitimate text",
                    highlight=False,
                    soft_wrap=True,
                )
    if report.errors:
        raise typer.Exit(1)


@kb_app.command("search")
@friendly_errors
def search(
    query: Annotated[str, typer.Argument(help="What a customer would ask.")],
    k: Annotated[int, typer.Option("-k", min=1, max=50, help="How many hits.")] = 5,
    version: Annotated[
        str | None, typer.Option(help="Search this KB version, e.g. v3 (default: the head).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Hit-testing: the chunks a question retrieves, with their scores and what the bot would do."""
    number = parse_optional_version(version)
    with knowledge_service() as service:
        found = service.search(query, k, number)
    if as_json:
        hits = [
            {
                "chunk_id": h.chunk.id,
                "doc_id": h.chunk.doc_id,
                "title": h.chunk.title,
                "section": h.chunk.section,
                "score": round(h.score, 4),
                "dense": round(h.dense, 4),
                "bm25": round(h.sparse, 3),
                "text": h.chunk.text,
            }
            for h in found.hits
        ]
        body = {
            "query": query,
            "version": found.version,
            "confidence": round(found.confidence, 4),
            "decision": found.decision,
            "hits": hits,
        }
        out.print_json(json.dumps(body, ensure_ascii=False))
        return
    action = {
        "faq": "answer the FAQ verbatim",
        "grounded": "answer with the model, citing these",
        "none": "say the KB does not cover it, offer a human",
    }
    out.print(
        f"KB {found.version} · confidence {found.confidence:.3f} → {found.decision}: {action[found.decision]}",
        highlight=False,
    )
    table = Table("#", "chunk", "title / section", "fused", "dense", "bm25", "text")
    for n, hit in enumerate(found.hits, start=1):
        chunk = hit.chunk
        place = chunk.title + (
            f" › {chunk.section}" if chunk.section and chunk.section != chunk.title else ""
        )
        table.add_row(
            str(n),
            chunk.id,
            place,
            f"{hit.score:.3f}",
            f"{hit.dense:.3f}",
            f"{hit.sparse:.2f}",
            chunk.text.replace("\n", " ")[:80],
        )
    out.print(table)


@kb_app.command("list")
@friendly_errors
def list_documents(
    version: VersionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The documents of a KB version."""
    number = parse_optional_version(version)
    with knowledge_service() as service:
        docs = service.store.documents(number)
    if as_json:
        rows = [
            {
                "doc_id": d.doc_id,
                "kind": d.kind,
                "title": d.title,
                "faqs": len(d.faqs),
                "hash": d.content_hash,
            }
            for d in docs
        ]
        out.print_json(json.dumps(rows, ensure_ascii=False))
        return
    table = Table("document", "kind", "title", "FAQs", "updated")
    for d in docs:
        table.add_row(d.doc_id, d.kind, d.title, str(len(d.faqs)) if d.faqs else "", d.updated_at or "")
    out.print(table)


@kb_app.command("history")
@friendly_errors
def history(limit: Annotated[int, typer.Option(min=1)] = 20, as_json: JsonOpt = False) -> None:
    """KB versions, newest first."""
    with knowledge_service() as service:
        versions = service.store.history(limit)
    if as_json:
        out.print_json(json.dumps([v.to_dict() for v in versions], ensure_ascii=False, default=str))
        return
    table = Table("version", "created", "author", "change", "documents", "message")
    for v in versions:
        s = v.stats
        table.add_row(
            f"v{v.number}",
            v.created_at.isoformat(timespec="seconds"),
            v.author,
            f"+{s.added} ~{s.updated} -{s.deleted}",
            str(s.documents),
            v.message[:60],
        )
    out.print(table)


@kb_app.command("diff")
@friendly_errors
def diff(
    a: Annotated[str, typer.Argument(help="Older version: 3 or v3.")],
    b: Annotated[str | None, typer.Argument(help="Newer version (default: the head).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """What changed between two KB versions: documents added, removed and changed, with the text diff."""
    older, newer = parse_version(a), parse_optional_version(b)
    with knowledge_service() as service:
        head = service.store.head()
        result = service.store.diff(older, newer if newer is not None else (head.number if head else older))
    if as_json:
        out.print_json(json.dumps(result.to_dict(), ensure_ascii=False))
    else:
        typer.echo(result.render())


@kb_app.command("rollback")
@friendly_errors
def rollback(version: Annotated[str, typer.Argument(help="The version to return to: 3 or v3.")]) -> None:
    """Make a new version equal to an old one (history is kept; the chat follows within seconds).

    The next sync keeps it: a synced file that has not changed since the last sync is not read back
    over it (`kefu kb sync --force` does that)."""
    number = parse_version(version)
    with knowledge_service() as service:
        new = service.rollback(number, author="cli")
        service.refresh()
    out.print(f"[green]v{new.number}[/green]: {new.message}", highlight=False)


@kb_app.command("delete")
@friendly_errors
def delete(doc_ids: Annotated[list[str], typer.Argument(help="Document ids (see `kefu kb list`).")]) -> None:
    """Retire documents (a new version; `kefu kb rollback` brings them back)."""
    with knowledge_service() as service:
        result = service.delete(doc_ids, author="cli")
    out.print(f"v{result.version.number}: {len(result.deleted)} retired" if result.version else "no change")


@kb_app.command("export")
@friendly_errors
def export(
    directory: Annotated[Path, typer.Argument(help="Folder to write (e.g. a git checkout).")],
    version: VersionOpt = None,
) -> None:
    """Write a KB version as JSON files (one per document + kb.json), ready to commit to git."""
    number = parse_optional_version(version)
    with knowledge_service() as service:
        path = service.store.export_json(directory, number)
    out.print(f"exported to {path}")


@kb_app.command("import")
@friendly_errors
def import_(directory: Annotated[Path, typer.Argument(help="A folder written by `kefu kb export`.")]) -> None:
    """Make the KB equal to an exported folder (one new version; nothing applied if a file is bad)."""
    with knowledge_service() as service:
        result = service.store.import_json(directory, message=f"import {directory}", author="cli")
        service.refresh()
    if result.version is None:
        out.print("no change: the knowledge base already equals that export")
    else:
        out.print(
            f"v{result.version.number}: {len(result.added)} added, {len(result.updated)} updated, "
            f"{len(result.deleted)} retired"
        )


@kb_app.command("conflicts")
@friendly_errors
def conflicts(
    semantic: Annotated[bool, typer.Option(help="Also compare questions by embedding (slower).")] = True,
    as_json: JsonOpt = False,
) -> None:
    """FAQ entries that ask the same question with different answers (not answered verbatim until fixed)."""
    with knowledge_service() as service:
        found = service.store.faq_conflicts(embedder=service.embedder if semantic else None)
    if as_json:
        out.print_json(json.dumps([c.to_dict() for c in found], ensure_ascii=False))
        return
    if not found:
        out.print("no conflicting or duplicate FAQ entries")
        return
    for c in found:
        a, b = c.entry_a, c.entry_b
        out.print(f"[bold]{c.kind}[/bold] ({c.similarity:.3f}) {c.reason}", highlight=False)
        out.print(f"  {a.doc_id} {a.faq_id}: {a.question} → {a.answer[:80]}", highlight=False)
        out.print(f"  {b.doc_id} {b.faq_id}: {b.question} → {b.answer[:80]}", highlight=False)
    if any(c.kind == "conflict" for c in found):
        raise typer.Exit(1)


@kb_app.command("sync")
@friendly_errors
def sync(
    source: Annotated[str | None, typer.Option(help="Only this source id (see `kefu kb sources`).")] = None,
    due: Annotated[bool, typer.Option(help="Only sources whose interval has passed.")] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Make the KB equal to the sources again, undoing rollbacks and edits of their files.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Re-read registered sources: changed documents get a new version, removed ones are retired.

    Only what changed in a source since its last sync is applied: after `kefu kb rollback` (or an edit
    through the API) a file that has not changed since is left as the knowledge base has it, and said
    so; --force reads every file back. A file that cannot be read is reported once, then counted while
    it stays unchanged (exit code 1 only for new errors)."""
    with knowledge_service() as service:
        if source is not None:
            reports = [service.sync(service.sources.get(source), author="cli", force=force)]
        else:
            reports = service.sync_all(due_only=due, author="cli", force=force)
        service.refresh()
    if not reports:
        out.print("no sources to sync; `kefu kb ingest FOLDER|URL` registers one")
    for report in reports:
        if report.source is not None and not as_json:
            out.print(f"[bold]{report.source.kind} {report.source.location}[/bold]", highlight=False)
        print_report(report, as_json)
    if any(r.new_errors for r in reports):
        raise typer.Exit(1)


@kb_app.command("sources")
@friendly_errors
def sources(as_json: JsonOpt = False) -> None:
    """Registered sources and their last sync."""
    with knowledge_service() as service:
        found = service.sources.list()
    if as_json:
        out.print_json(json.dumps([s.to_dict() for s in found], ensure_ascii=False))
        return
    table = Table("id", "kind", "location", "every", "last sync", "documents")
    for s in found:
        every = f"{s.interval_seconds / 86400:g} d" if s.interval_seconds else "by hand"
        table.add_row(s.id, s.kind, s.location, every, s.last_synced_at or "never", str(len(s.doc_ids)))
    out.print(table)


@kb_app.command("remove-source")
@friendly_errors
def remove_source(
    source_id: Annotated[str, typer.Argument(help="See `kefu kb sources`.")],
    retire: Annotated[bool, typer.Option(help="Also retire the documents it produced.")] = False,
) -> None:
    """Stop syncing a source (and, with --retire, remove its documents in a new version)."""
    with knowledge_service() as service:
        source = service.sources.remove(source_id)
        current = {d.doc_id for d in service.store.documents()} if service.store.head() else set()
        gone = [d for d in source.doc_ids if d in current]
        if retire and gone:
            result = service.delete(gone, author="cli")
            out.print(f"v{result.version.number}: {len(gone)} documents retired" if result.version else "")
    out.print(f"source {source_id} removed")


import kefu.cli_gaps  # noqa: E402, F401  (kefu kb suggestions | hits: issue #13 part 4)
