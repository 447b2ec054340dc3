"""``kefu kb suggestions`` and ``kefu kb hits``: the knowledge-gap loop from the command line (issue #13
part 4). Approving or rejecting is the admin API's (POST /v1/kb/suggestions/{id}/approve | reject)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from kefu.cli_kb import JsonOpt, err, kb_app, out
from kefu.cli_support import friendly_errors, say_database
from kefu.config import load_settings

Days = Annotated[int, typer.Option(min=1, help="Look at the last N days of conversations.")]


@kb_app.command("suggestions")
@friendly_errors
def suggestions(
    scan: Annotated[bool, typer.Option(help="Scan for new agent answers to failed questions first.")] = True,
    days: Days = 7,
    status: Annotated[str | None, typer.Option(help="pending | conflict | approved | rejected")] = None,
    as_json: JsonOpt = False,
) -> None:
    """FAQ suggestions: questions the bot could not answer that an agent answered (redacted)."""
    from kefu.kb.gaps import GapFinder
    from kefu.kb.service import KnowledgeService
    from kefu.safety.pii import redact_pii
    from kefu.storage.factory import build_stores

    settings = load_settings()
    say_database(settings.effective_database_url)
    stores = build_stores(settings)
    try:
        service = KnowledgeService.open(settings, stores.engine)
        try:
            finder = GapFinder(
                stores.engine,
                service,
                lambda text, conversation_id: redact_pii(text, vault=stores.vault_for(conversation_id)).text,
            )
            report = finder.scan(datetime.now(UTC) - timedelta(days=days)) if scan else None
            found = finder.suggestions(status)
        finally:
            service.close()
    finally:
        stores.close()
    if as_json:
        data = {"scan": report.to_dict() if report else None, "data": [s.to_dict() for s in found]}
        out.print_json(json.dumps(data, ensure_ascii=False))
        return
    if report is not None:
        err.print(f"scan: {report.to_dict()['count']} new, {len(report.skipped)} skipped")
    if not found:
        out.print("no FAQ suggestions")
        return
    for s in found:
        extra = f" (conflicts with {s.conflict_with})" if s.conflict_with else ""
        out.print(f"[bold]{s.id}[/bold] {s.status}{extra} — {s.source}", highlight=False)
        out.print(f"  Q: {s.question}", highlight=False)
        out.print(f"  A: {s.answer}", highlight=False)


@kb_app.command("hits")
@friendly_errors
def hits(
    days: Days = 30,
    limit: Annotated[int, typer.Option(min=1, help="Rows per table.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """How often each document and chunk was cited, in failed answers, and rated (computed now)."""
    from kefu.kb.gaps import hit_counts
    from kefu.storage.engine import make_engine

    settings = load_settings()
    say_database(settings.effective_database_url)
    engine = make_engine(settings.effective_database_url)
    try:
        counts = hit_counts(engine, datetime.now(UTC) - timedelta(days=days))
    finally:
        engine.dispose()
    if as_json:
        out.print_json(json.dumps(counts, ensure_ascii=False))
        return
    for name, key in (("documents", "doc_id"), ("chunks", "chunk_id")):
        out.print(f"[bold]{name}[/bold]  cited  failed  rated  rated_low")
        for row in counts[name][:limit]:
            out.print(
                f"  {row[key]}  {row['cited']}  {row['failed']}  {row['rated']}  {row['rated_low']}",
                highlight=False,
            )
