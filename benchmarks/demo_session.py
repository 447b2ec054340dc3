"""Questions in a row to a real ``kefu serve`` of the demo shop, over HTTP, as a customer asks them.

    python benchmarks/demo_session.py                 # 30 questions, the local model, one at a time
    python benchmarks/demo_session.py -n 60 --concurrency 2 --llm local

The server is started as its own process (``kefu serve`` with the demo shop, the demo ERP and the
chosen model, in a fresh data dir), and questions from ``kefu eval shop`` are sent to
``POST /v1/conversations/{id}/messages`` with ``stream: true`` (their ``previous`` messages first, in
the same conversation). For each question it measures, at the client, the time to the first ``delta``
event (first visible text) and to ``done`` (full answer), judges the reply with the eval's matcher
(right / decline / wrong / incomplete), and checks the server process is still alive.
Prints p50/p90/max of both times, the outcomes, and every wrong answer in full. Figures, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from kefu.evals.shop_data import ShopQuestion, judge, load_questions


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(llm: str, data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", KEFU_LLM=llm, KEFU_DATA_DIR=str(data_dir), KEFU_DEMO_ERP="1")
    env["KEFU_RATE_LIMIT_WEB"] = "off"  # every simulated customer comes from 127.0.0.1: one client
    kefu = Path(sys.executable).with_name("kefu")
    log = (data_dir / "server.log").open("wb")
    return subprocess.Popen(
        [str(kefu), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_ready(base: str, server: subprocess.Popen[bytes], timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode} before it was ready")
        try:
            ready = httpx.get(f"{base}/readyz", timeout=5)
            if ready.status_code == 200 and ready.json().get("status") == "ready":
                return dict(ready.json())
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise SystemExit(f"not ready within {timeout:.0f} s")


def stream_answer(client: httpx.Client, base: str, conversation: str, text: str) -> tuple[float, float, dict]:
    """(seconds to the first delta, seconds to done, the stored reply message)."""
    started = time.perf_counter()
    first = None
    final: dict = {}
    with client.stream(
        "POST", f"{base}/v1/conversations/{conversation}/messages", json={"content": text, "stream": True}
    ) as response:
        response.raise_for_status()
        event = ""
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data = json.loads(line.split(":", 1)[1])
                if event == "delta" and first is None and data.get("text"):
                    first = time.perf_counter() - started
                if event == "done":
                    final = data.get("message") or {}
    done = time.perf_counter() - started
    return (first if first is not None else done), done, final


def ask(base: str, question: ShopQuestion) -> tuple[float, float, dict]:
    with httpx.Client(timeout=120) as client:
        conversation = client.post(f"{base}/v1/conversations", json={"channel": "web"}).json()["id"]
        for earlier in question.previous:
            stream_answer(client, base, conversation, earlier)
        return stream_answer(client, base, conversation, question.q)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=30, help="how many questions (default 30)")
    parser.add_argument("--llm", default="local", choices=["local", "none", "scripted"])
    parser.add_argument("--concurrency", type=int, default=1, help="conversations at once")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    pool = [q for q in load_questions() if q.expect != "flow"]
    random.Random(args.seed).shuffle(pool)
    questions = pool[: args.n]
    data_dir = Path(tempfile.mkdtemp(prefix="kefu-demo-session-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(args.llm, data_dir, port)
    results: list[tuple[ShopQuestion, float, float, dict, str]] = []
    deaths = 0
    try:
        boot = time.perf_counter()
        ready = wait_ready(base, server)
        print(f"server ready in {time.perf_counter() - boot:.1f} s: {ready.get('checks', {}).get('model')}")
        lock = threading.Lock()
        queue = list(questions)

        def worker() -> None:
            nonlocal deaths
            while True:
                with lock:
                    if not queue:
                        return
                    question = queue.pop(0)
                try:
                    first, done, message = ask(base, question)
                    error = ""
                except httpx.HTTPError as exc:
                    first = done = float("nan")
                    message, error = {}, f"{type(exc).__name__}: {exc}"
                with lock:
                    results.append((question, first, done, message, error))
                    if server.poll() is not None:
                        deaths += 1

        threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        alive = server.poll() is None
    finally:
        server.terminate()
        server.wait(30)

    outcomes: dict[str, int] = {}
    wrong = []
    for question, _first, _done, message, error in results:
        if error:
            outcomes["error"] = outcomes.get("error", 0) + 1
            continue
        verdict = judge(question, message.get("content", ""), message.get("answer_kind") or "")
        outcomes[verdict.outcome] = outcomes.get(verdict.outcome, 0) + 1
        if verdict.outcome == "wrong":
            wrong.append((question, message, verdict))
    firsts = [r[1] for r in results if not r[4]]
    dones = [r[2] for r in results if not r[4]]
    print(
        f"{len(results)} questions, llm={args.llm}, concurrency={args.concurrency}; server alive at the end: {alive}"
    )
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    if firsts:
        print(
            f"first text  p50 {statistics.median(firsts):.2f} s  p90 {pct(firsts, 0.9):.2f} s  max {max(firsts):.2f} s"
        )
        print(
            f"full answer p50 {statistics.median(dones):.2f} s  p90 {pct(dones, 0.9):.2f} s  max {max(dones):.2f} s"
        )
    kinds: dict[str, int] = {}
    for _q, _f, _d, message, _e in results:
        kind = message.get("answer_kind") or "?"
        kinds[kind] = kinds.get(kind, 0) + 1
    print("answer kinds: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    for question, message, verdict in wrong:
        print(f"WRONG {question.id}: {question.q}\n  {message.get('content')}\n  said: {verdict.forbidden}")
    for question, _f, _d, _m, error in results:
        if error:
            print(f"ERROR {question.id}: {error}")
    print(f"server log: {data_dir / 'server.log'}")


if __name__ == "__main__":
    main()
