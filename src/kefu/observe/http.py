"""Request metrics and the release label, as one pure ASGI middleware (streams pass through untouched).

Every response carries ``X-Kefu-Version: <version>`` or ``<version>+<label>`` (``KEFU_VERSION_LABEL``,
e.g. ``canary``), so a gray release can be checked from any client. Requests are counted by route
*template* (``/v1/conversations/{conversation_id}/messages``), never by the raw path, so ids stay out
of the labels; the time is until the response headers (a stream's length is the turn histograms').
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kefu import __version__
from kefu.observe.metrics import Metrics

UNMATCHED = "unmatched"
API_FAMILIES = frozenset({"conversations", "chat", "agent", "kb", "stats"})


def version_header(label: str) -> str:
    return f"{__version__}+{label}" if label else __version__


class RequestMetrics:
    def __init__(self, app: ASGIApp, label: str = "") -> None:
        self.app = app
        self.header = (b"x-kefu-version", version_header(label).encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        recorded = False

        async def send_labelled(message: Message) -> None:
            nonlocal recorded
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self.header]}
                recorded = True
                _record(scope, int(message["status"]), time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, send_labelled)
        except BaseException:
            if not recorded:  # an exception before the response started
                _record(scope, 500, time.perf_counter() - started)
            raise


def _record(scope: Scope, status: int, seconds: float) -> None:
    metrics = _metrics(scope)
    if metrics is None:
        return
    route, method = route_template(scope), str(scope.get("method", "GET"))[:10]
    metrics.requests.labels(route, method, str(status)).inc()
    metrics.request_seconds.labels(route, method).observe(seconds)
    if status == 429:
        metrics.rate_limited.labels(route).inc()


def _metrics(scope: Scope) -> Metrics | None:
    app = scope.get("app")
    runtime = getattr(getattr(app, "state", None), "runtime", None)
    assistant = getattr(runtime, "assistant", None)
    metrics = getattr(assistant, "metrics", None)
    return metrics if isinstance(metrics, Metrics) else None


def route_template(scope: Scope) -> str:
    """The path template of the route that served the request (set by the router), else — a request
    refused before routing, such as a 429 — its API family (``/v1/agent/*``), else ``unmatched``."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str) and path:
        return path
    parts = str(scope.get("path", "")).split("/")
    if len(parts) > 2 and parts[1] == "v1" and parts[2] in API_FAMILIES:
        return f"/v1/{parts[2]}/*"
    return UNMATCHED
