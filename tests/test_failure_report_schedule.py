"""The weekly top failures report runs by itself: in the server (``FailureReportWorker``, started with the
knowledge-base worker) without a broker, from the Celery beat with one; KEFU_FAILURE_REPORT_DAY=off
turns both off."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from fastapi.testclient import TestClient

from conftest import MINI_KB
from kefu.api.app import create_app
from kefu.config import Settings
from kefu.llm.testing import ScriptedModel
from kefu.reports.weekly import FailureReportWorker
from kefu.worker import failure_report_schedule, make_celery


def test_the_server_schedules_the_report_and_a_run_writes_it(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(kb_dir=MINI_KB, failure_report_day="wed", failure_report_hour=7)
    with TestClient(create_app(settings, model=ScriptedModel())) as client:
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        worker = runtime.failure_reports
        assert isinstance(worker, FailureReportWorker)
        assert worker._task is not None and not worker._task.done()  # asleep until Wednesday 07:00
        once = FailureReportWorker(
            settings, runtime.stores.engine, runtime.assistant.kb, runtime.knowledge.embedder
        )
        asyncio.run(once.run_once(datetime(2026, 12, 9, 7, 0, tzinfo=UTC)))
        assert (once.runs, once.failures) == (1, 0)
    written = sorted(p.name for p in (settings.data_dir / "reports").iterdir())
    assert written == ["failures-2026-12-09.html", "failures-2026-12-09.json", "failures-2026-12-09.md"]
    assert "No failed answers in this period." in (settings.data_dir / "reports" / written[2]).read_text()


def test_off_starts_nothing(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(kb_dir=MINI_KB, failure_report_day="off")
    with TestClient(create_app(settings, model=ScriptedModel())) as client:
        worker = client.app.state.runtime.failure_reports  # type: ignore[attr-defined]
        assert worker is None or worker._task is None
    assert failure_report_schedule(settings) == {}


def test_the_celery_beat_runs_it_weekly_in_local_time(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        celery_broker_url="redis://127.0.0.1:6379/14",
        failure_report_day="fri",
        failure_report_hour=9,
        handoff_timezone="Asia/Shanghai",
    )
    app = make_celery(settings)
    entry = app.conf.beat_schedule["kefu-failure-report"]
    assert entry["task"] == "kefu.reports.failures"
    schedule = entry["schedule"]
    assert schedule.hour == {9} and schedule.minute == {0} and schedule.day_of_week == {5}
    assert app.conf.timezone == "Asia/Shanghai"
    assert "kefu.reports.failures" in app.tasks
    assert app.conf.beat_schedule["kb-sync-due"]["task"] == "kefu.kb.sync_due"  # the hourly sync stays
