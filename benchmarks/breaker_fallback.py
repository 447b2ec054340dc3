"""Time from a model failure to the customer's reply, with the circuit breaker closed and open.

Runs the real app in process (FastAPI TestClient, the mini test pack, KEFU_LLM=openai) against a real
``FakeServer`` on loopback in each fault mode — 500s, a hung server, a stream cut after 3 chunks — and
asks the same knowledge question repeatedly. The first calls reach the failing server (each costs the
SDK's retries, or the timeout); once the breaker is open, calls fail at once and the reply is the
knowledge base's own sentences. Prints per mode: the reply time while the breaker was closed and
after it opened (p50/max), and how many calls reached the server; first a healthy model as the
baseline. With ``--local`` also the chain's local step (KEFU_LLM_FALLBACK_LOCAL=on): the primary
fails every call, the first ask starts the bundled model in the background (and is answered from the
knowledge base at once), then the replies the local model writes. Figures, not pass/fail.

    python benchmarks/breaker_fallback.py [--asks 10] [--timeout 2] [--retries 2] [--local]
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
from kefu.config import Settings, load_settings
from kefu.llm.fake_server import FAKE_MODEL, FakeServer

MINI_KB = Path(__file__).resolve().parent.parent / "tests" / "data" / "mini_kb"
QUESTION = "你们发什么快递？多久能到？"
MODES = {
    "healthy model": {},
    "500s": {"error_rate": 1},
    "hang": {"hang": True},
    "drop mid-stream": {"drop_after": 3},
}
REPLY = "我们默认使用中通快递，江浙沪 1–2 天送达 [1]。"
# every ask must reach the model (or its breaker): the same question again would come from the answer cache
NO_ANSWER_CACHE = {"answer_cache": False} if "answer_cache" in Settings.model_fields else {}


def run(mode: str, faults: dict[str, object], args: argparse.Namespace, data: Path) -> None:
    with FakeServer(replies=[REPLY] * args.asks) as fake:
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
            llm_fallback_local="off",  # one endpoint: its breaker alone (the local step: run_local)
            **NO_ANSWER_CACHE,
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


def run_local(args: argparse.Namespace, data: Path) -> None:
    """The primary fails every call; the local model (started on the first need) answers."""
    with FakeServer() as fake:
        httpx.post(f"{fake.root_url}/_fake/config", json={"error_rate": 1}).raise_for_status()
        settings = load_settings(
            environment="test",
            data_dir=data / "local",
            kb_dir=MINI_KB,
            llm="openai",
            llm_base_url=fake.base_url,
            llm_model=FAKE_MODEL,
            answer_mode="generate",
            llm_timeout=60,
            llm_max_retries=0,
            llm_fallback_local="on",
            **NO_ANSWER_CACHE,
        )
        with TestClient(create_app(settings)) as client:
            local = client.app.state.runtime.model.models[-1]  # type: ignore[attr-defined]
            conversation = client.post("/v1/conversations", json={"channel": "web"}).json()["id"]
            first, kind = _ask(client, conversation)
            print(f"{'local step':16} first need: {first * 1000:.0f} ms ({kind}: answered while it starts)")
            started = time.perf_counter()
            while "starting" in local.describe():
                time.sleep(0.5)
            print(f"{'':16} the local model was ready {time.perf_counter() - started:.1f} s later")
            answered = [_ask(client, client.post("/v1/conversations", json={"channel": "web"}).json()["id"])]
            answered += [_ask(client, conversation) for _ in range(args.asks - 1)]
            took = [t for t, _ in answered]
            kinds = sorted({k for _, k in answered})
            print(
                f"{'':16} then {len(took)} replies by the local model (primary failing): p50 {_ms(took)}, "
                f"max {_ms(took, max)}; answer kinds {kinds}"
            )


def _ask(client: TestClient, conversation: str) -> tuple[float, str]:
    start = time.perf_counter()
    response = client.post(f"/v1/conversations/{conversation}/messages", json={"content": QUESTION})
    took = time.perf_counter() - start
    assert response.status_code == 200, response.text
    message = response.json()["message"] or {}
    return took, str(message.get("answer_kind"))


def _ms(values: list[float], pick=statistics.median) -> str:  # type: ignore[no-untyped-def]
    return f"{pick(values) * 1000:.0f} ms" if values else "-"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--asks", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=2.0, help="KEFU_LLM_TIMEOUT")
    parser.add_argument("--retries", type=int, default=2, help="KEFU_LLM_MAX_RETRIES")
    parser.add_argument("--local", action="store_true", help="also the local model step (loads the GGUF)")
    args = parser.parse_args()
    print(
        f"KEFU_LLM_TIMEOUT={args.timeout:g} KEFU_LLM_MAX_RETRIES={args.retries}; breaker defaults "
        "(opens at 50 % of ≥ 4 calls in 60 s, 30 s cool-down)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for mode, faults in MODES.items():
            run(mode, faults, args, Path(tmp))
        if args.local:
            run_local(args, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
