"""The in-process knowledge-base worker in the real app: it serves versions made by other processes,
syncs due sources (but leaves that to Celery when a broker is configured), survives a failing tick
and stops with the app."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conftest import MINI_KB, ask, new_conversation
from kefu.api.app import create_app
from kefu.config import Settings
from kefu.kb.documents import SourceDocument
from kefu.kb.store import KbStore
from kefu.llm.testing import ScriptedModel
from kefu.runtime import Runtime
from kefu.storage.engine import make_engine

TOKEN = "kb-admin-token-for-tests"
HOURS = "# 客服时间\n\n在线客服工作时间：每天 9:00 到 21:00，节假日照常。\n"


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for: {what}")
        time.sleep(0.05)


def start(settings: Settings, model: ScriptedModel) -> TestClient:
    client = TestClient(create_app(settings, model=model))
    client.headers["Authorization"] = f"Bearer {TOKEN}"
    return client


def runtime_of(client: TestClient) -> Runtime:
    runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    assert runtime.worker is not None and runtime.worker.running
    return runtime


def register(client: TestClient, folder: Path, interval: int) -> dict[str, object]:
    body = {"kind": "folder", "location": str(folder), "interval_seconds": interval}
    response = client.post("/v1/kb/sources", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_a_version_made_by_another_process_is_served_after_a_refresh_tick(
    make_settings: Callable[..., Settings], model: ScriptedModel
) -> None:
    settings = make_settings(kb_dir=MINI_KB, admin_token=TOKEN, kb_refresh_seconds=0.1)
    with start(settings, model) as client:
        runtime = runtime_of(client)
        engine = make_engine(settings.effective_database_url)  # what `kefu kb ingest` opens
        try:
            text = "# 门店\n\n上海门店地址：静安区南京西路 100 号，营业到晚上九点。\n"
            doc = SourceDocument(doc_id="cli/门店.md", kind="doc", title="门店", text=text)
            made = KbStore(engine).apply([doc], message="ingest from the CLI", author="cli")
        finally:
            engine.dispose()
        assert made.version is not None
        wait_until(lambda: runtime.kb.version == f"v{made.version.number}", "the new version served")
        assert client.get("/v1/kb").json()["serving"] == f"v{made.version.number}"
        reply = ask(client, new_conversation(client), "上海门店在哪里？")
        assert reply["citations"][0]["doc_id"] == "cli/门店.md"
        worker = runtime.worker
        assert worker is not None and worker.refreshes > 0 and worker.failures == 0
    assert not worker.running  # stopped with the app


def test_a_due_folder_source_is_synced_by_the_worker_after_a_file_changes(
    make_settings: Callable[..., Settings], model: ScriptedModel, tmp_path: Path
) -> None:
    folder = tmp_path / "客服"
    folder.mkdir()
    (folder / "时间.md").write_text(HOURS, encoding="utf-8")
    settings = make_settings(
        kb_dir=MINI_KB, admin_token=TOKEN, kb_refresh_seconds=0.1, kb_sync_check_seconds=0.2
    )
    with start(settings, model) as client:
        runtime = runtime_of(client)
        source = register(client, folder, interval=1)
        first = source["report"]["version"]  # type: ignore[index]
        (folder / "时间.md").write_text(HOURS.replace("9:00 到 21:00", "8:00 到 22:00"), encoding="utf-8")
        store = runtime.knowledge.store
        wait_until(lambda: "8:00 到 22:00" in store.document("时间.md").text, "the worker's sync")
        head = store.head()
        assert head is not None and head.number > first and head.author == "sync"
        wait_until(lambda: runtime.kb.version == f"v{head.number}", "the synced version served")
        reply = ask(client, new_conversation(client), "在线客服几点上班？")
        assert reply["citations"][0]["doc_id"] == "时间.md"
        assert "8:00 到 22:00" in reply["content"]
        (folder / "时间.md").unlink()  # a removed file is retired by a later sync
        wait_until(lambda: "时间.md" not in {d.doc_id for d in store.documents()}, "the retirement")
        worker = runtime.worker
        assert worker is not None and worker.sync_runs >= 2


def test_with_a_celery_broker_the_server_refreshes_but_never_syncs(
    make_settings: Callable[..., Settings], model: ScriptedModel, tmp_path: Path
) -> None:
    folder = tmp_path / "客服"
    folder.mkdir()
    (folder / "时间.md").write_text(HOURS, encoding="utf-8")
    settings = make_settings(
        kb_dir=MINI_KB,
        admin_token=TOKEN,
        kb_refresh_seconds=0.05,
        kb_sync_check_seconds=0.05,
        celery_broker_url="redis://127.0.0.1:6379/15",  # only named: the server never talks to it
    )
    with start(settings, model) as client:
        runtime = runtime_of(client)
        assert client.get("/v1/kb").json()["worker"]["sync"] == "celery"
        register(client, folder, interval=1)
        (folder / "时间.md").write_text(HOURS.replace("9:00", "7:00"), encoding="utf-8")
        worker = runtime.worker
        assert worker is not None
        ticks = worker.refreshes
        started = time.monotonic()
        # past the source's 1 s interval and dozens of sync checks
        wait_until(lambda: worker.refreshes >= ticks + 20 and time.monotonic() - started > 1.5, "ticks")
        assert worker.sync_runs == 0
        assert "9:00" in runtime.knowledge.store.document("时间.md").text


def test_a_failing_refresh_is_logged_and_the_loop_goes_on(
    make_settings: Callable[..., Settings],
    model: ScriptedModel,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="kefu.kb.worker")
    index_dir = tmp_path / "index"
    settings = make_settings(kb_dir=MINI_KB, kb_index_dir=index_dir, kb_refresh_seconds=0.05)
    with start(settings, model) as client:
        runtime = runtime_of(client)
        worker = runtime.worker
        assert worker is not None
        vectors, away = index_dir / "vectors", tmp_path / "vectors-away"
        shutil.move(vectors, away)
        vectors.write_text("a file where the FAISS folder should be")  # saving the index fails
        try:
            text = "# 会员\n\n会员生日当月享受双倍积分。\n"
            doc = SourceDocument(doc_id="会员.md", kind="doc", title="会员", text=text)
            made = runtime.knowledge.store.apply([doc], message="another process", author="cli")
            assert made.version is not None
            wait_until(lambda: worker.failures >= 1, "a failed tick")
            assert "knowledge-base refresh failed; retrying at the next tick" in caplog.text
            # the vectors are in memory; the next tick serves the version
            wait_until(lambda: runtime.kb.version == f"v{made.version.number}", "the version served")
            assert worker.running
        finally:
            vectors.unlink()
            shutil.move(away, vectors)
    assert not worker.running
