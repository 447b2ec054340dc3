"""Shared fixtures: settings on a temporary data dir, the app with a scripted model, a real server."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Tests never read the developer's own configuration.
for _name in [n for n in os.environ if n.startswith("KEFU_") and not n.startswith("KEFU_TEST_")]:
    del os.environ[_name]

from kefu.config import Settings, load_settings  # noqa: E402


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
