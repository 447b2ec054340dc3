"""The command line as a user meets it: help lists every command, bad settings fail with the variable's name."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from kefu.cli import app

runner = CliRunner()


def test_help_lists_every_command():
    out = runner.invoke(app, ["--help"]).output
    for command in ("serve", "demo", "chat", "fake-llm", "eval", "audit", "kb", "agent", "stats", "version"):
        assert command in out
    assert "pii" in runner.invoke(app, ["eval", "--help"]).output
    kb_help = runner.invoke(app, ["kb", "--help"]).output
    for command in (
        "ingest",
        "search",
        "history",
        "diff",
        "rollback",
        "export",
        "import",
        "conflicts",
        "sync",
    ):
        assert command in kb_help


def test_a_bad_setting_stops_start_up_naming_the_variable(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("KEFU_LLM", "gpt5-please")
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 2
    assert "KEFU_LLM" in result.output and "Traceback" not in result.output


def test_production_refuses_a_placeholder_secret(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("KEFU_ENVIRONMENT", "production")
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 2 and "KEFU_SECRET_KEY" in result.output


def test_eval_with_a_missing_data_folder_says_what_to_pass(tmp_path):
    result = runner.invoke(app, ["eval", "pii", "--data", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "--data" in result.output


def test_audit_verify_reports_an_empty_log(monkeypatch: pytest.MonkeyPatch, tmp_path):
    monkeypatch.setenv("KEFU_DATA_DIR", str(tmp_path))
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 0, result.output


def test_audit_verify_names_the_record_edited_by_hand(monkeypatch: pytest.MonkeyPatch, tmp_path):
    import sqlite3

    from kefu.config import load_settings
    from kefu.runtime import open_audit_log
    from kefu.storage.engine import make_engine

    monkeypatch.setenv("KEFU_DATA_DIR", str(tmp_path))
    settings = load_settings()
    engine = make_engine(settings.effective_database_url)
    log = open_audit_log(settings, engine)
    for n in range(3):
        log.append("bot_reply", {"reply": f"第{n}条"}, conversation_id="c1")
    engine.dispose()
    assert runner.invoke(app, ["audit", "verify"]).exit_code == 0
    with sqlite3.connect(tmp_path / "kefu.db") as db:
        db.execute("UPDATE audit_log SET kind = 'model_call' WHERE seq = 2")
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 1
    assert "BROKEN at seq 2" in result.output


def test_an_unreachable_model_endpoint_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, tmp_path):
    from conftest import free_port

    for name, value in {
        "KEFU_DATA_DIR": str(tmp_path / "data"),
        "KEFU_CACHE_DIR": str(tmp_path / "cache"),
        "KEFU_KB_DIR": str(Path(__file__).parent / "data" / "mini_kb"),
        "KEFU_LLM": "openai",
        "KEFU_LLM_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",
        "KEFU_LLM_MAX_RETRIES": "0",
    }.items():
        monkeypatch.setenv(name, value)
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 2
    assert "KEFU_LLM_BASE_URL" in result.output and "Traceback" not in result.output
