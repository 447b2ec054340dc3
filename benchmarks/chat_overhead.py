"""Server overhead of a chat turn, against a bare ASGI endpoint measured in the same run.

Starts three real servers on loopback — `kefu fake-llm` (0 ms latency, unlimited tokens/s), `kefu serve`
(KEFU_LLM=openai pointed at the fake, the demo shop, a fresh SQLite database) and the bare endpoint of
bare_asgi.py — then drives N concurrent conversations of T turns each against kefu and the same number
of requests against the bare endpoint. Prints turns/s and p50/p99 of client-side latency and of
server-side time (the Server-Timing header), and the kefu/bare ratios. Figures, not pass/fail.

    python benchmarks/chat_overhead.py [--conversations 50,100,200] [--turns 4] [--batch-ms 0,3]

Each KEFU_EMBED_BATCH_MS value (--batch-ms) gets a kefu server of its own, all started first and driven
in turn at each level (then the bare endpoint), so "before" (0: no batching) and "after" are measured
in the same run, close in time, against the same bare endpoint.
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


def start(
    cmd: list[str], env: dict[str, str], port: int, timeout: float = 180, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` and wait until it listens on ``port``; its stderr goes to ``log`` (read on failure)."""
    err = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - the process holds it
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{cmd[:3]} exited: {tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{cmd[:3]} did not listen on {port} within {timeout}s: {tail(log)}")


def tail(log: Path | None) -> str:
    return log.read_text(errors="replace")[-2000:] if log and log.exists() else ""


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
        base_url=base, timeout=300, limits=httpx.Limits(max_connections=conversations, keepalive_expiry=2)
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
        base_url=base, timeout=300, limits=httpx.Limits(max_connections=conversations, keepalive_expiry=2)
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


def serve_kefu(
    bin_dir: Path, env: dict[str, str], batch_ms: str, log: Path
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = start(
        [str(bin_dir / "kefu"), "serve", "--port", str(port)],
        {**env, "KEFU_EMBED_BATCH_MS": batch_ms},
        port,
        log=log,
    )
    return proc, f"http://127.0.0.1:{port}"


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def row(name: str, n: int, elapsed: float, client: list[float], server: list[float]) -> float:
    tps = n / elapsed
    print(
        f"{name:<34}{tps:>9.1f}{pct(client, 0.5):>10.1f}ms{pct(client, 0.99):>10.1f}ms"
        f"{pct(server, 0.5):>10.1f}ms{pct(server, 0.99):>10.1f}ms"
    )
    return tps


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--conversations",
        default="50",
        help="concurrent conversations; a comma-separated list runs each level (e.g. 50,100,200)",
    )
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--repeat", action="store_true", help="Send the same 8 questions over and over.")
    parser.add_argument(
        "--batch-ms",
        default="0,3",
        help="KEFU_EMBED_BATCH_MS values, each a kefu server of its own in the same run (0 = no batching)",
    )
    args = parser.parse_args()
    levels = [int(c) for c in str(args.conversations).split(",")]
    batch_values = [b.strip() for b in args.batch_ms.split(",")]
    bin_dir = Path(sys.executable).parent
    fake_port, bare_port = free_port(), free_port()
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    results: dict[tuple[int, int], tuple[list[float], list[float], float, Counter[str]]] = {}
    bare: dict[int, tuple[list[float], list[float], float]] = {}
    with tempfile.TemporaryDirectory() as data:
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "KEFU_LLM": "openai",
            "KEFU_LLM_API_KEY": "bench",
            "KEFU_LLM_BASE_URL": f"http://127.0.0.1:{fake_port}/v1",
            "KEFU_RATE_LIMIT_WEB": "off",  # every conversation comes from 127.0.0.1: one client
            "KEFU_RATE_LIMIT_CONVERSATION": "off",
            "KEFU_RATE_LIMIT_GLOBAL": "off",
        }
        fake = start([str(bin_dir / "kefu"), "fake-llm", "--port", str(fake_port)], env, fake_port)
        bare_proc = start(
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
        )
        servers: list[tuple[subprocess.Popen[bytes], str, Path]] = []
        try:
            for run, batch_ms in enumerate(batch_values):  # a server and database per setting, all up
                kefu_env = {**env, "KEFU_DATA_DIR": str(Path(data) / f"run-{run}")}
                log = Path(data) / f"kefu-run-{run}.log"
                servers.append((*serve_kefu(bin_dir, kefu_env, batch_ms, log), log))
            for level in levels:  # settings alternate at each level, so a change of load hits all
                for run, batch_ms in enumerate(batch_values):
                    _, base, log = servers[run]
                    print(f"… kefu, batch {batch_ms} ms, {level} conversations", file=sys.stderr)
                    try:
                        results[(run, level)] = asyncio.run(
                            drive_kefu(base, level, args.turns, not args.repeat)
                        )
                    except httpx.HTTPError as exc:
                        raise SystemExit(
                            f"kefu failed at {level} conversations ({exc!r}): {tail(log)}"
                        ) from exc
                bare[level] = asyncio.run(drive_bare(f"http://127.0.0.1:{bare_port}", level, args.turns))
        finally:
            for proc, _, _ in servers:
                stop(proc)
            stop(fake)
            stop(bare_proc)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"{args.turns} turns per conversation; fake-llm 0 ms; questions {'repeated' if args.repeat else 'unique'}"
    )
    print(
        f"{'endpoint':<34}{'turns/s':>9}{'client p50':>12}{'client p99':>12}{'server p50':>12}{'server p99':>12}"
    )
    for level in levels:
        n = level * args.turns
        b_client, b_server, b_elapsed = bare[level]
        b_tps = row(f"{level} conv: bare ASGI", n, b_elapsed, b_client, b_server)
        for run, batch_ms in enumerate(batch_values):
            k_client, k_server, k_elapsed, kinds = results[(run, level)]
            k_tps = row(f"{level} conv: kefu, batch {batch_ms} ms", n, k_elapsed, k_client, k_server)
            print(
                f"{'':<6}ratio to bare {k_tps / b_tps:.3f}×; mean server time {statistics.mean(k_server):.1f} ms "
                f"(bare {statistics.mean(b_server):.2f} ms); answers {dict(kinds)}"
            )


if __name__ == "__main__":
    main()
