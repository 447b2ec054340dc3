"""The demo ERP as a running HTTP service inside a kefu process: uvicorn on its own thread and a free
127.0.0.1 port, its own SQLite file, a generated token — what ``KEFU_DEMO_ERP=1`` (and so ``kefu demo``)
talks to over real HTTP, exactly as it would talk to a real ERP at ``KEFU_ERP_URL``.

    with DemoErpServer(data_dir / "demo-erp.db") as erp:          # seeded, /health answered
        orders = HttpOrderSystem(erp.url, erp.token)
    orders = serve_demo_erp(data_dir / "demo-erp.db")             # one object: client + server
    ...
    orders.close()                                                # stops the server too
"""

from __future__ import annotations

import logging
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import Any, Self

import httpx
import uvicorn

from kefu.errors import ConfigError
from kefu.tools.demo_erp.app import create_demo_erp_app
from kefu.tools.demo_erp.store import Clock, ErpStore, utc_now
from kefu.tools.http_erp import HttpOrderSystem

log = logging.getLogger("kefu.demo_erp")
START_TIMEOUT = 15.0


class DemoErpServer:
    """The demo ERP app served by uvicorn in a daemon thread; ``start`` returns once ``/health`` answers."""

    def __init__(
        self,
        db_path: Path,
        token: str | None = None,
        *,
        clock: Clock = utc_now,
        reseed: bool = True,
        host: str = "127.0.0.1",
    ) -> None:
        self.token = token or secrets.token_urlsafe(24)
        self.db_path = db_path
        self.app = create_demo_erp_app(db_path, self.token, clock, reseed=reseed)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind((host, 0))
        self.host, self.port = self._socket.getsockname()[:2]
        config = uvicorn.Config(
            self.app, log_level="warning", access_log=False, ws="none", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="demo-erp", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def store(self) -> ErpStore:
        """The ERP's own data (tests read what the HTTP calls changed)."""
        store: ErpStore = self.app.state.store
        return store

    @property
    def requests(self) -> list[dict[str, Any]]:
        """What reached the ERP over HTTP: method, path, status, Idempotency-Key (the last 1,000)."""
        return list(self.app.state.requests)

    def start(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._healthy():
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ConfigError(
                    f"the demo ERP did not answer {self.url}/health within {START_TIMEOUT:g} s; check "
                    f"that {self.db_path} is writable, or set KEFU_ERP_URL to a running order system"
                )
            time.sleep(0.02)
        log.info("demo ERP serving %s (data %s)", self.url, self.db_path)
        return self

    def _healthy(self) -> bool:
        if not self._server.started:
            return False
        try:
            return httpx.get(f"{self.url}/health", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._socket.close()
        self.store.close()  # the app's lifespan closes it too when it ran; closing twice is harmless

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class ServedDemoErp(HttpOrderSystem):
    """``HttpOrderSystem`` talking to a ``DemoErpServer`` it owns: ``close`` stops the server too."""

    def __init__(self, server: DemoErpServer, timeout: float = 5.0) -> None:
        super().__init__(server.url, server.token, timeout)
        self.server = server

    def close(self) -> None:
        super().close()
        self.server.stop()


def serve_demo_erp(db_path: Path, *, clock: Clock = utc_now) -> ServedDemoErp:
    """Start the demo ERP (re-seeded, so "delivered 5 days ago" holds today) and a client for it."""
    return ServedDemoErp(DemoErpServer(db_path, clock=clock).start())
