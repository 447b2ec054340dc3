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


@export_app.command("finetune")
@friendly_errors
def finetune(
    out: Annotated[Path, typer.Option("--out", help="Directory for train.jsonl and validation.jsonl.")],
    since: Annotated[
        str | None,
        typer.Option(help="Only ratings and agent replies since: 30d (days back) or an ISO date."),
    ] = None,
    validation: Annotated[
        float, typer.Option(help="Share of conversations in validation.jsonl (stable hash of the id).")
    ] = 0.1,
) -> None:
    """Well-rated answers and agent-corrected answers as OpenAI chat fine-tuning JSONL (issue #13 part 5):
    the bot's system prompt with its sources, redacted, deduplicated, split by conversation."""
    from datetime import UTC, datetime, timedelta

    from kefu.cli import _handoff_store, _parse_since
    from kefu.config import load_settings
    from kefu.errors import InvalidInput
    from kefu.learning.finetune import KbChunkTexts, collect

    settings = load_settings()
    if not 0.0 <= validation < 1.0:
        raise InvalidInput(f"--validation {validation} is not in [0, 1); use e.g. 0.1 for 10 %")
    if since is not None and since.endswith("d") and since[:-1].isdigit():
        start: datetime | None = datetime.now(UTC) - timedelta(days=int(since[:-1]))
    else:
        start = _parse_since(since, settings)
    with _handoff_store(settings) as store:
        texts = KbChunkTexts(store.engine, settings.kb_chunk_chars, settings.kb_chunk_overlap)
        result = collect(
            store.engine, shop=settings.shop_name, since=start, validation=validation, texts=texts
        )
    train, valid = result.write(out)
    typer.echo(result.summary())
    typer.echo(f"wrote {train} and {valid}")
