"""Server overhead of a chat turn, against a bare ASGI endpoint measured in the same run.

Starts three real servers on loopback — `kefu fake-llm` (0 ms latency, unlimited tokens/s), `kefu serve`
(KEFU_LLM=openai pointed at the fake, the demo shop, a fresh SQLite database) and the bare endpoint of
bare_asgi.py — then drives N concurrent conversations of T turns each against kefu and the same number
of requests against the bare endpoint. Prints turns/s and p50/p99 of client-side latency and of
server-side time (the Server-Timing header), and the kefu/bare ratios. Figures, not pass/fail.

    python benchmarks/chat_overhead.py [--conversations 50] [--turns 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

QUESTIONS = [
    "你们发什么快递？多久能到？",
    "那新疆呢？",
    "七天无理由退货怎么算时间？",
    "可以开增值税专用发票吗？",
    "支持花呗分期吗",
    "会员积分怎么用",
    "耳机保修多久",
    "How long does a refund take?",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(cmd: list[str], env: dict[str, str], port: int, timeout: float = 180) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(
                f"{cmd[:3]} exited: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{cmd[:3]} did not listen on {port} within {timeout}s")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def server_ms(response: httpx.Response) -> float:
    return float(response.headers["server-timing"].split("dur=")[1])


def question(n: int, t: int, unique: bool) -> str:
    """The t-th question of conversation n; with ``unique`` no two turns send the same text, so no cache
    of recent queries helps (real traffic is in between: many customers ask the same FAQ)."""
    text = QUESTIONS[(n + t) % len(QUESTIONS)]
    return f"{text} (单号 A{n:05d}{t:02d})" if unique else text


async def drive_kefu(
    base: str, conversations: int, turns: int, unique: bool
) -> tuple[list[float], list[float], float, Counter[str]]:
    client_ms: list[float] = []
    server: list[float] = []
    kinds: Counter[str] = Counter()
    async with httpx.AsyncClient(
        base_url=base, timeout=60, limits=httpx.Limits(max_connections=conversations)
    ) as http:

        async def conversation(n: int) -> None:
            cid = (await http.post("/v1/conversations", json={"channel": "api"})).json()["id"]
            for t in range(turns):
                text = question(n + offset, t, unique)
                began = time.perf_counter()
                response = await http.post(f"/v1/conversations/{cid}/messages", json={"content": text})
                client_ms.append((time.perf_counter() - began) * 1000)
                response.raise_for_status()
                server.append(server_ms(response))
                kinds[response.json()["message"]["answer_kind"]] += 1

        offset = 10_000  # warm-up questions differ from the measured ones
        await asyncio.gather(*(conversation(n) for n in range(min(conversations, 4))))
        offset = 0
        client_ms.clear(), server.clear(), kinds.clear()
        began = time.perf_counter()
        await asyncio.gather(*(conversation(n) for n in range(conversations)))
        elapsed = time.perf_counter() - began
    return client_ms, server, elapsed, kinds


async def drive_bare(base: str, conversations: int, turns: int) -> tuple[list[float], list[float], float]:
    client_ms: list[float] = []
    server: list[float] = []
    async with httpx.AsyncClient(
        base_url=base, timeout=60, limits=httpx.Limits(max_connections=conversations)
    ) as http:

        async def conversation(n: int) -> None:
            for t in range(turns):
                began = time.perf_counter()
                response = await http.post("/", json={"content": QUESTIONS[(n + t) % len(QUESTIONS)]})
                client_ms.append((time.perf_counter() - began) * 1000)
                server.append(server_ms(response))

        await asyncio.gather(*(conversation(n) for n in range(4)))
        client_ms.clear(), server.clear()
        began = time.perf_counter()
        await asyncio.gather(*(conversation(n) for n in range(conversations)))
        elapsed = time.perf_counter() - began
    return client_ms, server, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--conversations", type=int, default=50)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--repeat", action="store_true", help="Send the same 8 questions over and over.")
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    fake_port, kefu_port, bare_port = free_port(), free_port(), free_port()
    with tempfile.TemporaryDirectory() as data:
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "KEFU_LLM": "openai",
            "KEFU_LLM_API_KEY": "bench",
            "KEFU_LLM_BASE_URL": f"http://127.0.0.1:{fake_port}/v1",
            "KEFU_DATA_DIR": data,
            "KEFU_RATE_LIMIT_WEB": "off",  # every conversation comes from 127.0.0.1: one client
        }
        procs = [
            start([str(bin_dir / "kefu"), "fake-llm", "--port", str(fake_port)], env, fake_port),
            start([str(bin_dir / "kefu"), "serve", "--port", str(kefu_port)], env, kefu_port),
            start(
                [
                    str(bin_dir / "uvicorn"),
                    "bare_asgi:app",
                    "--app-dir",
                    str(Path(__file__).parent),
                    "--port",
                    str(bare_port),
                    "--log-level",
                    "warning",
                ],
                env,
                bare_port,
            ),
        ]
        try:
            k_client, k_server, k_elapsed, kinds = asyncio.run(
                drive_kefu(f"http://127.0.0.1:{kefu_port}", args.conversations, args.turns, not args.repeat)
            )
            b_client, b_server, b_elapsed = asyncio.run(
                drive_bare(f"http://127.0.0.1:{bare_port}", args.conversations, args.turns)
            )
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=10)
    n = args.conversations * args.turns
    k_tps, b_tps = n / k_elapsed, n / b_elapsed
    print(
        f"{args.conversations} concurrent conversations × {args.turns} turns = {n} turns each; "
        f"kefu answers: {dict(kinds)}"
    )
    print(
        f"{'endpoint':<22}{'turns/s':>10}{'client p50':>12}{'client p99':>12}{'server p50':>12}{'server p99':>12}"
    )
    for name, tps, cl, sv in (
        ("kefu (fake-llm 0 ms)", k_tps, k_client, k_server),
        ("bare ASGI", b_tps, b_client, b_server),
    ):
        print(
            f"{name:<22}{tps:>10.1f}{pct(cl, 0.5):>10.1f}ms{pct(cl, 0.99):>10.1f}ms{pct(sv, 0.5):>10.1f}ms{pct(sv, 0.99):>10.1f}ms"
        )
    print(
        f"ratio kefu/bare: throughput {k_tps / b_tps:.3f}×, server p50 {pct(k_server, 0.5) / pct(b_server, 0.5):.1f}×, "
        f"server p99 {pct(k_server, 0.99) / pct(b_server, 0.99):.1f}×; mean server time kefu "
        f"{statistics.mean(k_server):.1f} ms vs bare {statistics.mean(b_server):.2f} ms"
    )


if __name__ == "__main__":
    main()
