"""The weekly top failures report, run by itself.

Every KEFU_FAILURE_REPORT_DAY at KEFU_FAILURE_REPORT_HOUR (in KEFU_HANDOFF_TIMEZONE) the report of the
7 days before is written under ``<data_dir>/reports/`` and, when KEFU_FAILURE_REPORT_WEBHOOK is set, its
JSON summary is POSTed there. Without a Celery broker the server runs it in process
(``FailureReportWorker``, started with the knowledge-base worker); with KEFU_CELERY_BROKER_URL the
Celery beat does (task ``kefu.reports.failures``, ``kefu.worker``) and the servers leave it alone.
``kefu report failures --since 7d`` runs it by hand.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING

from anyio import to_thread

from kefu.reports.clusters import ClusterSettings
from kefu.reports.report import FailureReport, build_failure_report, post_summary, write_report

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from kefu.config import Settings
    from kefu.kb.types import Embedder, Retriever

log = logging.getLogger("kefu.reports")

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEK = timedelta(days=7)


def next_run(now: datetime, day: str, hour: int, zone: tzinfo) -> datetime:
    """The next ``day`` at ``hour``:00 in ``zone`` strictly after ``now``, in UTC."""
    local = now.astimezone(zone)
    at = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    at += timedelta(days=(DAYS.index(day) - local.weekday()) % 7)
    if at <= local:
        at += WEEK
    return at.astimezone(UTC)


def cluster_settings(settings: Settings) -> ClusterSettings:
    return ClusterSettings(
        similarity=settings.failure_report_similarity,
        grounded_threshold=settings.grounded_threshold,
        near_miss=settings.failure_report_near_miss,
    )


def run_failure_report(
    settings: Settings,
    engine: Engine,
    kb: Retriever | None,
    embedder: Embedder,
    *,
    until: datetime | None = None,
) -> tuple[FailureReport, list[Path]]:
    """The report of the week before ``until`` (now), written under data_dir/reports and posted."""
    until = until or datetime.now(UTC)
    report = build_failure_report(
        engine,
        kb,
        embedder,
        since=until - WEEK,
        until=until,
        top=settings.failure_report_top,
        settings=cluster_settings(settings),
    )
    paths = write_report(report, settings.data_dir / "reports")
    log.info(
        "top failures report: %d failed answers in %d clusters → %s",
        report.failed_cases,
        report.total_clusters,
        paths[0].with_suffix(".*"),
    )
    if settings.failure_report_webhook:
        post_summary(report, settings.failure_report_webhook)
    return report, paths


class FailureReportWorker:
    """One asyncio task: sleeps until the next weekly run, runs it in a thread, sleeps again."""

    def __init__(self, settings: Settings, engine: Engine, kb: Retriever | None, embedder: Embedder) -> None:
        self.settings = settings
        self.engine = engine
        self.kb = kb
        self.embedder = embedder
        self.runs = 0
        self.failures = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> asyncio.Task[None] | None:
        if self.settings.failure_report_day == "off":
            return None
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name="kefu-failure-report")
        return self._task

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None or task.done():
            return
        task.cancel()
        await asyncio.wait([task])

    async def run(self) -> None:
        s = self.settings
        while True:
            now = datetime.now(UTC)
            at = next_run(now, s.failure_report_day, s.failure_report_hour, s.working_hours.zone)
            await asyncio.sleep((at - now).total_seconds())
            await self.run_once(at)

    async def run_once(self, until: datetime | None = None) -> None:
        try:
            await to_thread.run_sync(
                lambda: run_failure_report(self.settings, self.engine, self.kb, self.embedder, until=until)
            )
            self.runs += 1
        except Exception:
            self.failures += 1
            log.exception(
                "the weekly failure report failed; it runs again next week (or run it by hand: "
                "kefu report failures --since 7d)"
            )
