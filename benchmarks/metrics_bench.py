"""The cost of the metrics: recording one turn (``Metrics.turn``), one request through the
``RequestMetrics`` middleware against the same bare ASGI endpoint without it, and one ``/metrics``
render with every label combination a busy shop produces. Figures, not asserts.

    .venv/bin/python benchmarks/metrics_bench.py
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable

from starlette.types import Receive, Scope, Send

from kefu.observe.http import RequestMetrics
from kefu.observe.metrics import ANSWER_KINDS, CHANNELS, Metrics, TurnFacts


def timed(call: Callable[[], object], n: int) -> float:
    """Median seconds of ``call`` over ``n`` runs (after a warm-up)."""
    for _ in range(min(n, 100)):
        call()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


async def bare(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


class App:
    """What Starlette gives the middleware: ``scope["app"].state.runtime.assistant.metrics``."""

    def __init__(self, metrics: Metrics) -> None:
        assistant = type("A", (), {"metrics": metrics})()
        runtime = type("R", (), {"assistant": assistant})()
        self.state = type("S", (), {"runtime": runtime})()


def request_seconds(app: object, owner: object, n: int) -> float:
    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b""}

    async def send(message: object) -> None:
        return None

    async def one() -> None:
        scope = {"type": "http", "method": "GET", "path": "/v1/x", "app": owner, "headers": []}
        await app(scope, receive, send)  # type: ignore[operator]

    loop = asyncio.new_event_loop()
    try:
        return timed(lambda: loop.run_until_complete(one()), n)
    finally:
        loop.close()


def main() -> None:
    metrics = Metrics()
    facts = TurnFacts(
        "c-1", "web", "grounded", 1.2, 0.4, model="qwen @ http://llm/v1", route="default", cost=0.01
    )
    per_turn = timed(lambda: metrics.turn(facts), 20_000)
    print(f"record one turn (Metrics.turn):           {per_turn * 1e6:8.1f} µs")

    owner = App(metrics)
    without = request_seconds(bare, owner, 5_000)
    with_metrics = request_seconds(RequestMetrics(bare, label="canary"), owner, 5_000)
    print(f"request, bare ASGI endpoint:              {without * 1e6:8.1f} µs")
    print(
        f"request through RequestMetrics:           {with_metrics * 1e6:8.1f} µs "
        f"(+{(with_metrics - without) * 1e6:.1f} µs)"
    )

    for n, (channel, kind) in enumerate((c, k) for c in CHANNELS for k in ANSWER_KINDS):
        for model in ("qwen @ http://llm/v1", "deepseek @ https://api/v1"):
            metrics.turn(TurnFacts(f"c{n}", channel, kind, 1.0, 0.5, model=model, route="complex", cost=0.01))
    series = metrics.render().decode().count("\n")
    render = timed(metrics.render, 200)
    print(f"render /metrics ({series} lines):           {render * 1e3:8.2f} ms")


if __name__ == "__main__":
    main()
