"""``kefu export …``: data out of the kefu database for people and tools (ratings: issue #13 part 1)."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from kefu.cli_support import friendly_errors

export_app = typer.Typer(
    help="Export data from the kefu database (PII stays redacted).", no_args_is_help=True
)


class ExportFormat(StrEnum):
    csv = "csv"
    jsonl = "jsonl"


@export_app.command("ratings")
@friendly_errors
def ratings(
    format: Annotated[ExportFormat, typer.Option("--format", help="csv or jsonl.")] = ExportFormat.jsonl,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead of standard output.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only ratings given since, e.g. 2026-03-01 (KEFU_HANDOFF_TIMEZONE).")
    ] = None,
) -> None:
    """Every rating (👍/👎, stars, CSAT) with its answer's KB version, citations, route and model; the
    comments as stored, redacted."""
    from kefu.cli import _handoff_store, _parse_since
    from kefu.config import load_settings
    from kefu.storage.ratings import EXPORTERS, SqlRatingStore

    settings = load_settings()
    start = _parse_since(since, settings)
    with _handoff_store(settings) as store:  # migrated: the ratings table exists
        records = SqlRatingStore(store.engine).export(start)
        lines = EXPORTERS[format.value](records)
        if output is None:
            sys.stdout.writelines(lines)
            return
        count = -1 if format is ExportFormat.csv else 0  # the CSV header is a line too
        with output.open("w", encoding="utf-8", newline="") as handle:
            for line in lines:
                handle.write(line)
                count += 1
        typer.echo(f"wrote {count} ratings to {output}", err=True)
