"""Shared fixtures: settings on a temporary data dir, the app with a scripted model, a real server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import uvicorn

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Tests never read the developer's own configuration.
for _name in [n for n in os.environ if n.startswith("KEFU_") and not n.startswith("KEFU_TEST_")]:
    del os.environ[_name]

from fastapi.testclient import TestClient  # noqa: E402

from kefu.api.app import create_app  # noqa: E402
from kefu.config import Settings, load_settings  # noqa: E402
from kefu.llm.testing import ScriptedModel  # noqa: E402

if TYPE_CHECKING:
    from kefu.audit import Keyring

MINI_KB = Path(__file__).parent / "data" / "mini_kb"  # a small pack whose content the tests control


@pytest.fixture(scope="session")
def shared_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedding/model cache for the whole run: the demo pack is embedded once per session."""
    return tmp_path_factory.mktemp("kefu-cache")


@pytest.fixture
def make_settings(tmp_path: Path, shared_cache_dir: Path) -> Callable[..., Settings]:
    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "environment": "test",
            "llm": "scripted",
            "data_dir": tmp_path / "data",
            "cache_dir": shared_cache_dir,
        }
        values.update(overrides)
        return load_settings(**values)

    return make


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every SQL contract suite runs on a SQLite file (in a folder that does not exist yet) and, where
    KEFU_TEST_POSTGRES_URL is set (CI sets it), on PostgreSQL in a schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'nested' / 'kefu.db'}"
        return
    postgres_url = os.environ.get("KEFU_TEST_POSTGRES_URL")
    if not postgres_url:
        pytest.skip("KEFU_TEST_POSTGRES_URL not set: PostgreSQL contract tests skipped")
    from kefu.storage.testing import temporary_postgres_schema

    with temporary_postgres_schema(postgres_url) as url:
        yield url


@pytest.fixture
def model() -> ScriptedModel:
    """The scripted model: ``model.history`` is what it received."""
    return ScriptedModel()


@pytest.fixture
def client(make_settings: Callable[..., Settings], model: ScriptedModel) -> Iterator[TestClient]:
    """The real app (lifespan run) on the mini pack, answering with ``model``."""
    with TestClient(create_app(make_settings(kb_dir=MINI_KB), model=model)) as test_client:
        yield test_client


@contextmanager
def faq_shop(
    make_settings: Callable[..., Settings], model: ScriptedModel, kb: Path, faq: list[dict[str, Any]]
) -> Iterator[TestClient]:
    """The real app on a knowledge base of just ``faq`` (written to ``kb``), with the demo order system."""
    (kb / "faq").mkdir(parents=True)
    (kb / "faq" / "faq.json").write_text(json.dumps(faq, ensure_ascii=False), encoding="utf-8")
    with TestClient(create_app(make_settings(kb_dir=kb, demo_erp=True), model=model)) as client:
        yield client


def new_conversation(client: TestClient) -> str:
    response = client.post("/v1/conversations", json={"channel": "web"})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def ask(client: TestClient, conversation_id: str, text: str) -> dict[str, Any]:
    response = client.post(f"/v1/conversations/{conversation_id}/messages", json={"content": text})
    assert response.status_code == 200, response.text
    return dict(response.json()["message"])


def system_text(model: ScriptedModel, index: int = -1) -> str:
    return model.history[index].messages[0].content


def parse_sse(lines: Iterable[str]) -> list[tuple[str, dict[str, Any]]]:
    events, name = [], "message"
    for line in lines:
        if line.startswith("event:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            events.append((name, json.loads(line.split(":", 1)[1])))
            name = "message"
    return events


@pytest.fixture
def keyring() -> Keyring:
    """A fresh AES-256-GCM key ring (key id "k1") for the encryption and audit suites."""
    from kefu.audit import Keyring

    return Keyring.generate("k1")


def stop_processes(processes: list[subprocess.Popen[bytes]]) -> None:
    """Terminate servers started by a test, the last started first; kill any that linger."""
    for process in reversed(processes):
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def live_server(app: object, timeout: float = 60.0) -> Iterator[str]:
    """Run an ASGI app in a real uvicorn server on a free port; yield its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
