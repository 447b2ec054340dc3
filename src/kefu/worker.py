"""The Celery worker: knowledge-base syncs and ingests on a broker, for deployments with several
replicas (without KEFU_CELERY_BROKER_URL each server syncs in-process, see ``kefu.kb.worker``).

    export KEFU_CELERY_BROKER_URL=redis://127.0.0.1:6379/0     # or amqp://guest@127.0.0.1//
    celery -A kefu.worker worker -B --loglevel=info             # -B: also run the hourly beat

Tasks, on the queue ``kefu`` (results in the broker's Redis, or ``rpc://`` for AMQP):

    kefu.kb.sync_due                re-read every registered source whose interval has passed (hourly)
    kefu.kb.sync_source(source_id)  re-read one source now
    kefu.kb.ingest(targets)         parse files, folders or URLs (paths as the worker sees them)
    kefu.reports.failures           the weekly top failures report (KEFU_FAILURE_REPORT_DAY/_HOUR, local)

Each returns ``IngestReport.to_dict()`` (sync_due: a list of them). The worker writes versions to
KEFU_DATABASE_URL — the servers' database — and the servers' refresh tick serves them within
KEFU_KB_REFRESH_SECONDS. Each worker process opens the database and the knowledge base once, at its
first task, and closes them when it stops. Nothing connects at import time: the app is built when
Celery (or ``celery_app()``) first asks for it.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from typing import TYPE_CHECKING, Any

from kefu.config import Settings, load_settings
from kefu.errors import ConfigError

if TYPE_CHECKING:
    from celery import Celery
    from sqlalchemy import Engine

    from kefu.kb.service import KnowledgeService

log = logging.getLogger("kefu.worker")
QUEUE = "kefu"
SYNC_DUE_SECONDS = 3600.0
_open: dict[int, tuple[KnowledgeService, Engine]] = {}  # per worker process (pid), opened lazily
_open_lock = threading.Lock()


def make_celery(settings: Settings) -> Celery:
    """The Celery app for ``settings`` (broker KEFU_CELERY_BROKER_URL), with the kefu tasks."""
    from celery import Celery
    from celery.signals import worker_process_shutdown, worker_shutdown

    url = settings.celery_broker_url
    if not url:
        raise ConfigError(
            "KEFU_CELERY_BROKER_URL is not set: set it to redis://… or amqp://… to run the Celery worker "
            "(without a broker the kefu server syncs the knowledge base in-process)"
        )
    if not url.startswith(("redis://", "rediss://", "amqp://", "amqps://", "pyamqp://")):
        raise ConfigError(
            f"KEFU_CELERY_BROKER_URL {url.split('://')[0]}:// is not supported; use redis:// or amqp://"
        )
    backend = url if url.startswith(("redis://", "rediss://")) else "rpc://"
    app = Celery("kefu", broker=url, backend=backend, set_as_current=False)
    app.conf.update(
        task_default_queue=QUEUE,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=7 * 24 * 3600,
        worker_prefetch_multiplier=1,  # a sync can take minutes: don't hoard tasks
        broker_connection_retry_on_startup=True,
        beat_schedule={
            "kb-sync-due": {"task": "kefu.kb.sync_due", "schedule": SYNC_DUE_SECONDS},
            **failure_report_schedule(settings),
        },
        beat_schedule_filename=str(settings.data_dir / "celerybeat-schedule"),
        timezone=settings.handoff_timezone,  # the weekly report's day and hour are local time
    )
    app.task(name="kefu.reports.failures")(failure_report)
    app.task(name="kefu.kb.sync_due")(sync_due)
    app.task(name="kefu.kb.sync_source")(sync_source)
    app.task(name="kefu.kb.ingest")(ingest)
    worker_process_shutdown.connect(close_knowledge, weak=False)
    worker_shutdown.connect(close_knowledge, weak=False)
    return app


@functools.cache
def celery_app() -> Celery:
    """The app Celery's ``-A kefu.worker`` loads (settings from the KEFU_* environment)."""
    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return make_celery(settings)


def __getattr__(name: str) -> Any:
    if name in ("app", "celery"):  # `celery -A kefu.worker` looks for these
        return celery_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------------------- tasks


def sync_due() -> list[dict[str, Any]]:
    """Re-read every source whose interval has passed."""
    reports = knowledge().sync_all(due_only=True, author="celery")
    for report in reports:
        _log(report.to_dict())
    return [r.to_dict() for r in reports]


def sync_source(source_id: str) -> dict[str, Any]:
    """Re-read one registered source (its id from ``kefu kb sources`` or GET /v1/kb/sources)."""
    service = knowledge()
    report = service.sync(service.sources.get(source_id), author="celery").to_dict()
    _log(report)
    return report


def ingest(targets: list[str], register: bool = True, interval_seconds: int | None = None) -> dict[str, Any]:
    """Parse files, folders or URLs into one new version; folders and URLs become synced sources."""
    report = (
        knowledge()
        .ingest(targets, author="celery", register=register, interval_seconds=interval_seconds)
        .to_dict()
    )
    _log(report)
    return report


def failure_report_schedule(settings: Settings) -> dict[str, Any]:
    """The beat entry of the weekly top failures report (none when KEFU_FAILURE_REPORT_DAY=off)."""
    from celery.schedules import crontab

    if settings.failure_report_day == "off":
        return {}
    every = crontab(minute=0, hour=settings.failure_report_hour, day_of_week=settings.failure_report_day)
    return {"kefu-failure-report": {"task": "kefu.reports.failures", "schedule": every}}


def failure_report() -> dict[str, Any]:
    """The top failures of the last 7 days, written under data_dir/reports and posted to the webhook."""
    from kefu.kb.service import LiveRetriever
    from kefu.reports.weekly import run_failure_report

    service = knowledge()
    service.refresh()  # the servers' newest version: "retrieval missed" is judged on what they serve
    engine = _open[os.getpid()][1]
    report, paths = run_failure_report(load_settings(), engine, LiveRetriever(service), service.embedder)
    return report.summary() | {"files": [str(p) for p in paths]}


# ---------------------------------------------------------------------------------------- the KB


def knowledge() -> KnowledgeService:
    """This process's knowledge service: opened at the first task (after the fork), then reused."""
    pid = os.getpid()
    with _open_lock:
        if pid not in _open:
            _open[pid] = _open_knowledge(load_settings())
        return _open[pid][0]


def close_knowledge(**_: Any) -> None:
    with _open_lock:
        opened = _open.pop(os.getpid(), None)
    if opened is not None:
        service, engine = opened
        service.close()
        engine.dispose()


def _open_knowledge(settings: Settings) -> tuple[KnowledgeService, Engine]:
    from kefu.kb.service import KnowledgeService
    from kefu.storage.engine import make_engine
    from kefu.storage.factory import settings_keyring
    from kefu.storage.migrate import migrate

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.effective_database_url)
    try:
        migrate(engine, keyring=settings_keyring(settings))
        return KnowledgeService.open(settings, engine), engine
    except BaseException:
        engine.dispose()
        raise


def _log(report: dict[str, Any]) -> None:
    source = report.get("source") or {}
    where = f"{source.get('kind')} {source.get('location')}" if source else "ingest"
    log.info("%s → version %s, %d errors", where, report.get("version"), len(report.get("errors", [])))
