"""The command line as a user meets it: help lists every command, bad settings fail with the variable's name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def _env(tmp_path: Path, cache_dir: Path, **extra: str) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_") or k.startswith("KEFU_TEST_")}
    env |= {"KEFU_DATA_DIR": str(tmp_path / "data"), "KEFU_CACHE_DIR": str(cache_dir), "KEFU_LLM": "none"}
    env |= {"HF_HUB_OFFLINE": "1"} | extra
    return env


def test_an_agent_added_after_kefu_demo_signs_in_to_the_demo_and_start_up_logs_each_thing_once(
    tmp_path: Path, shared_cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A newcomer runs `kefu demo`, then `kefu agent add bob` in another terminal: bob signs in on the
    demo's /agent page (one database). The demo's start-up log says each thing once."""
    import signal
    import subprocess
    import sys
    import time

    import httpx

    from conftest import free_port

    port = free_port()
    env = _env(tmp_path, shared_cache_dir)
    log_path = tmp_path / "demo.log"
    with log_path.open("w") as log_file:
        demo = subprocess.Popen(
            [sys.executable, "-m", "kefu.cli", "demo", "--port", str(port)],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 300
            while True:
                assert demo.poll() is None, log_path.read_text()
                try:
                    if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "kefu demo did not come up\n" + log_path.read_text()
                time.sleep(0.5)
            for name, value in env.items():
                if name.startswith("KEFU_"):
                    monkeypatch.setenv(name, value)
            added = runner.invoke(app, ["agent", "add", "bob", "--password", "bob-secret-1"])
            assert added.exit_code == 0, added.output
            assert f"database: sqlite:///{tmp_path / 'data' / 'kefu.db'}" in added.stderr
            login = httpx.post(
                f"{base}/v1/agent/login", json={"username": "bob", "password": "bob-secret-1"}, timeout=10
            )
            assert login.status_code == 200, login.text
            assert login.json()["agent"]["username"] == "bob"
        finally:
            demo.send_signal(signal.SIGINT)
            try:
                demo.wait(timeout=60)
            except subprocess.TimeoutExpired:
                demo.kill()
                demo.wait()
    log = log_path.read_text()
    assert log.count("kefu ready") == 1, log
    assert log.count("KEFU_AUDIT_KEYS is not set") == 1, log
    assert "ModuleNotFoundError" not in log and "faiss.loader" not in log, log
    assert "setup plugin" not in log, log
    assert log.count("database: sqlite:///") == 1 and "demo.db" not in log, log


def test_production_turns_the_demo_account_off(
    tmp_path: Path, shared_cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`kefu demo` made demo / demo1234 (printed on screen): `kefu serve` in production deactivates it."""
    import base64

    from conftest import free_port
    from kefu.cli import DEMO_AGENT, DEMO_AGENT_PASSWORD, _handoff_store
    from kefu.config import load_settings

    key = base64.b64encode(bytes(range(32))).decode()
    for name, value in _env(tmp_path, shared_cache_dir, KEFU_AUDIT_KEYS=f"k1:{key}").items():
        if name.startswith("KEFU_"):
            monkeypatch.setenv(name, value)
    with _handoff_store(load_settings(), announce=False) as store:
        store.ensure_agent(DEMO_AGENT, "演示客服", DEMO_AGENT_PASSWORD)
        store.add_agent("alice", "Alice", "alice-secret-1")
    monkeypatch.setenv("KEFU_ENVIRONMENT", "production")
    monkeypatch.setenv("KEFU_SECRET_KEY", "a-real-secret-for-this-test-only-0123456789")
    monkeypatch.setenv("KEFU_LLM", "openai")  # unreachable: serve stops with one line after the check
    monkeypatch.setenv("KEFU_LLM_BASE_URL", f"http://127.0.0.1:{free_port()}/v1")
    monkeypatch.setenv("KEFU_LLM_MAX_RETRIES", "0")
    monkeypatch.setenv("KEFU_KB_DIR", str(Path(__file__).parent / "data" / "mini_kb"))
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 2, result.output
    assert "agent 'demo'" in result.stderr and "deactivated in production" in result.stderr
    states = {a.username: a.active for a in _agents(tmp_path)}
    assert states == {"demo": False, "alice": True}


def _agents(tmp_path: Path) -> list[Any]:
    from kefu.storage.engine import make_engine
    from kefu.storage.handoff import SqlHandoffStore

    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'kefu.db'}")
    try:
        return SqlHandoffStore(engine).list_agents()
    finally:
        engine.dispose()


def test_the_development_key_warning_is_logged_once_per_process(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from kefu.audit.keyring import load_keyring

    with caplog.at_level(logging.WARNING, logger="kefu.audit.keyring"):
        for _ in range(3):  # the stores, the agent store and the audit log each load the ring
            load_keyring(environment="development", data_dir=tmp_path, env_value="")
    assert [r.getMessage().count("DEVELOPMENT key") for r in caplog.records] == [1]
