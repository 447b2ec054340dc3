"""The top failures report: built from the stores, written as Markdown, HTML and JSON, posted to a webhook.

    report = build_failure_report(engine, kb, embedder, since=…, until=…, top=10)
    paths = write_report(report, data_dir / "reports")     # failures-2026-12-07.{md,html,json}
    post_summary(report, "https://hooks.example.com/kefu")  # the JSON summary, a real HTTP POST

Every question in it is the stored text, redacted before it was stored (「[手机号_1]」 stays a placeholder).
"""

from __future__ import annotations

import html
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine

from kefu.kb.types import Embedder, Retriever
from kefu.reports.clusters import CAUSE_LABELS, Cluster, ClusterSettings, cluster_cases, explain
from kefu.reports.failures import find_failures

log = logging.getLogger("kefu.reports")

FORMATS = ("md", "html", "json")


@dataclass
class FailureReport:
    since: datetime
    until: datetime
    generated_at: datetime
    failed_cases: int
    clusters: list[Cluster]  # the top ones, best first
    total_clusters: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "generated_at": self.generated_at.isoformat(),
            "failed_cases": self.failed_cases,
            "total_clusters": self.total_clusters,
            "clusters": [c.to_dict(rank) for rank, c in enumerate(self.clusters, start=1)],
        }

    def summary(self) -> dict[str, Any]:
        """What the webhook receives: the figures and each cluster's headline, without examples."""
        return {
            "report": "kefu top failures",
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "failed_cases": self.failed_cases,
            "clusters": [
                {
                    "rank": rank,
                    "count": c.count,
                    "cause": c.cause,
                    "question": c.representative,
                    "fix": c.fix,
                }
                for rank, c in enumerate(self.clusters, start=1)
            ],
        }


def build_failure_report(
    engine: Engine,
    kb: Retriever | None,
    embedder: Embedder,
    *,
    since: datetime,
    until: datetime,
    top: int = 10,
    settings: ClusterSettings | None = None,
) -> FailureReport:
    """Find the failed cases of [since, until), cluster them by meaning, explain the ``top`` clusters."""
    settings = settings or ClusterSettings()
    cases = find_failures(engine, since, until)
    clusters = cluster_cases(cases, embedder, settings.similarity)
    for cluster in clusters[:top]:
        explain(cluster, kb, settings)
    return FailureReport(since, until, datetime.now(UTC), len(cases), clusters[:top], len(clusters))


def to_markdown(report: FailureReport) -> str:
    lines = [
        f"# Top {len(report.clusters)} failures",
        "",
        f"{_day(report.since)} – {_day(report.until)}: {report.failed_cases} failed answers in "
        f"{report.total_clusters} clusters.",
        "",
    ]
    if not report.clusters:
        lines.append("No failed answers in this period.")
    for rank, c in enumerate(report.clusters, start=1):
        lines += [
            f"## {rank}. {_md(c.representative)}",
            "",
            f"- **count**: {c.count} (impact {c.impact:g}; {_signals(c)})",
            f"- **likely cause**: {CAUSE_LABELS[c.cause]}",
            f"- **suggested fix**: {_md(c.fix)}",
            "- **examples**:",
            *(f"  - {_md(e.question)}" for e in c.examples),
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def to_html(report: FailureReport) -> str:
    e = html.escape
    rows = []
    for rank, c in enumerate(report.clusters, start=1):
        examples = "".join(f"<li>{e(x.question)}</li>" for x in c.examples)
        rows.append(
            f"<tr><td>{rank}</td><td>{e(c.representative)}</td><td>{c.count}</td><td>{c.impact:g}</td>"
            f"<td>{e(CAUSE_LABELS[c.cause])}</td><td>{e(c.fix)}</td><td><ul>{examples}</ul></td>"
            f"<td>{e(_signals(c))}</td></tr>"
        )
    body = (
        "<table><thead><tr><th>#</th><th>question</th><th>count</th><th>impact</th><th>likely cause</th>"
        "<th>suggested fix</th><th>examples (redacted)</th><th>signals</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
        if rows
        else "<p>No failed answers in this period.</p>"
    )
    title = f"Top {len(report.clusters)} failures, {_day(report.since)} – {_day(report.until)}"
    return (
        '<!doctype html>\n<html lang="zh"><head><meta charset="utf-8">'
        f"<title>{e(title)}</title><style>body{{font-family:sans-serif}}table{{border-collapse:collapse}}"
        "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}</style></head>"
        f"<body><h1>{e(title)}</h1><p>{report.failed_cases} failed answers in {report.total_clusters} "
        f"clusters.</p>{body}</body></html>\n"
    )


def to_json(report: FailureReport) -> str:
    return json.dumps(report.to_dict(), ensure_ascii=False, indent=2) + "\n"


def render(report: FailureReport, fmt: str) -> str:
    writers = {"md": to_markdown, "html": to_html, "json": to_json}
    if fmt not in writers:
        raise ValueError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}")
    return writers[fmt](report)


def write_report(report: FailureReport, directory: Path) -> list[Path]:
    """The report in every format under ``directory``, named by its last day."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"failures-{report.until.astimezone(UTC):%Y-%m-%d}"
    paths = []
    for fmt in FORMATS:
        path = directory / f"{stem}.{fmt}"
        path.write_text(render(report, fmt), encoding="utf-8")
        paths.append(path)
    return paths


def post_summary(report: FailureReport, url: str, timeout: float = 10.0) -> bool:
    """POST the JSON summary to ``url``; False (logged, with what to check) when it did not arrive."""
    try:
        response = httpx.post(url, json=report.summary(), timeout=timeout)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        log.warning(
            "the failure report's summary could not be posted to KEFU_FAILURE_REPORT_WEBHOOK (%s): %s — "
            "check the URL and that the receiver accepts a JSON POST; the report is on disk all the same",
            url.split("?")[0],
            exc,
        )
        return False
    return True


def _signals(cluster: Cluster) -> str:
    return ", ".join(f"{name} {n}" for name, n in cluster.signals.items())


def _day(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _md(text: str) -> str:
    """One line of Markdown: newlines folded, characters that would start markup escaped."""
    flat = " ".join(text.split())
    for char in "\\`*<>|":
        flat = flat.replace(char, "\\" + char)
    return flat
