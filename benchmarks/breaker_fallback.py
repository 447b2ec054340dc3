"""Time from a model failure to the customer's reply, with the circuit breaker closed and open.

Runs the real app in process (FastAPI TestClient, the mini test pack, KEFU_LLM=openai) against a real
``FakeServer`` on loopback in each fault mode — 500s, a hung server, a stream cut after 3 chunks — and
asks the same knowledge question repeatedly. The first calls reach the failing server (each costs the
SDK's retries, or the timeout); once the breaker is open, calls fail at once and the reply is the
knowledge base's own sentences. Prints per mode: the reply time while the breaker was closed and
after it opened (p50/max), and how many calls reached the server. Figures, not pass/fail.

    python benchmarks/breaker_fallback.py [--asks 10] [--timeout 2] [--retries 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import httpx
from fastapi.testclient import TestClient

from kefu.api.app import create_app
from kefu.config import load_settings
from kefu.llm.fake_server import FAKE_MODEL, FakeServer

MINI_KB = Path(__file__).resolve().parent.parent / "tests" / "data" / "mini_kb"
QUESTION = "你们发什么快递？多久能到？"
MODES = {"500s": {"error_rate": 1}, "hang": {"hang": True}, "drop mid-stream": {"drop_after": 3}}


def run(mode: str, faults: dict[str, object], args: argparse.Namespace, data: Path) -> None:
    with FakeServer() as fake:
        httpx.post(f"{fake.root_url}/_fake/config", json=faults).raise_for_status()
        settings = load_settings(
            environment="test",
            data_dir=data / mode.replace(" ", "-"),
            cache_dir=data / "cache",
            kb_dir=MINI_KB,
            llm="openai",
            llm_base_url=fake.base_url,
            llm_model=FAKE_MODEL,
            answer_mode="generate",
            llm_timeout=args.timeout,
            llm_max_retries=args.retries,
        )
        closed: list[float] = []
        opened: list[float] = []
        with TestClient(create_app(settings)) as client:
            breaker = client.app.state.runtime.model.breaker  # type: ignore[attr-defined]
            conversation = client.post("/v1/conversations", json={"channel": "web"}).json()["id"]
            for _ in range(args.asks):
                was_open = breaker.state == "open"
                start = time.perf_counter()
                response = client.post(
                    f"/v1/conversations/{conversation}/messages", json={"content": QUESTION}
                )
                took = time.perf_counter() - start
                assert response.status_code == 200, response.text
                (opened if was_open else closed).append(took)
        reached = len(httpx.get(f"{fake.root_url}/_fake/requests").json()["requests"])
        fake.state.hang = False
    print(
        f"{mode:16} breaker closed: {len(closed)} replies, p50 {_ms(closed)}, max {_ms(closed, max)} · "
        f"open: {len(opened)} replies, p50 {_ms(opened)}, max {_ms(opened, max)} · "
        f"{reached} HTTP calls reached the model"
    )


def _ms(values: list[float], pick=statistics.median) -> str:  # type: ignore[no-untyped-def]
    return f"{pick(values) * 1000:.0f} ms" if values else "-"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--asks", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=2.0, help="KEFU_LLM_TIMEOUT")
    parser.add_argument("--retries", type=int, default=2, help="KEFU_LLM_MAX_RETRIES")
    args = parser.parse_args()
    print(
        f"KEFU_LLM_TIMEOUT={args.timeout:g} KEFU_LLM_MAX_RETRIES={args.retries}; breaker defaults "
        "(opens at 50 % of ≥ 4 calls in 60 s, 30 s cool-down)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for mode, faults in MODES.items():
            run(mode, faults, args, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
