"""``kefu report failures``: the top failures report by hand (the weekly run is ``kefu.reports.weekly``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from kefu.cli_support import friendly_errors, say_database
from kefu.config import Settings, load_settings
from kefu.errors import InvalidInput


class ReportFormat(StrEnum):
    md = "md"
    html = "html"
    json = "json"


@friendly_errors
def report_failures(
    since: Annotated[
        str, typer.Option(help="The period: 7d, 24h, or a start date/date-time such as 2026-03-01.")
    ] = "7d",
    fmt: Annotated[ReportFormat, typer.Option("--format", help="md, html or json.")] = ReportFormat.md,
    out: Annotated[
        Path | None, typer.Option(help="Write the report to this file instead of printing it.")
    ] = None,
    top: Annotated[
        int | None, typer.Option(min=1, max=100, help="Clusters shown (KEFU_FAILURE_REPORT_TOP).")
    ] = None,
) -> None:
    """The top failed questions of the period, clustered by meaning: count, redacted examples, likely cause
    and a suggested fix."""
    from kefu.kb.service import LiveRetriever
    from kefu.reports.report import build_failure_report, render
    from kefu.reports.weekly import cluster_settings
    from kefu.runtime import open_knowledge
    from kefu.storage.engine import make_engine
    from kefu.storage.factory import settings_keyring
    from kefu.storage.migrate import migrate

    settings = load_settings()
    until = datetime.now(UTC)
    start = parse_period(since, settings, until)
    say_database(settings.effective_database_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.effective_database_url)
    try:
        migrate(engine, keyring=settings_keyring(settings))
        knowledge = open_knowledge(settings, engine)
        try:
            report = build_failure_report(
                engine,
                LiveRetriever(knowledge),
                knowledge.embedder,
                since=start,
                until=until,
                top=top or settings.failure_report_top,
                settings=cluster_settings(settings),
            )
        finally:
            knowledge.close()
    finally:
        engine.dispose()
    text = render(report, fmt.value)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        typer.echo(
            f"wrote {out}: {report.failed_cases} failed answers, {len(report.clusters)} clusters", err=True
        )


def parse_period(since: str, settings: Settings, now: datetime) -> datetime:
    """``7d`` / ``24h`` before ``now``, or an ISO date/date-time (read in KEFU_HANDOFF_TIMEZONE without a zone)."""
    relative = re.fullmatch(r"\s*(\d+)\s*([dh])\s*", since)
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2)
        return now - (timedelta(days=amount) if unit == "d" else timedelta(hours=amount))
    try:
        parsed = datetime.fromisoformat(since)
    except ValueError:
        raise InvalidInput(
            f"--since {since!r} is neither a period nor an ISO date; use e.g. 7d, 24h or 2026-03-01"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=settings.working_hours.zone)
