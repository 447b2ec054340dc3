"""Soak with faults: two kefu replicas on one PostgreSQL and one Redis, many conversations, and a count
of lost messages read back from the database.

Starts on loopback: `kefu fake-llm`, a Redis of its own (append-only file, so a restart keeps its data,
as a production Redis would), and two `kefu serve` replicas sharing a fresh PostgreSQL schema and that
Redis (sessions, live events, conversation locks, rate limits, answer cache). With ``--nginx`` the
shipped deploy/nginx configuration (TLS 1.3, both replicas upstream, next upstream on a refused
connection) runs in front on loopback and every request goes through it; without, the client does
that itself: a conversation sticks to one replica (by hash) and moves to the other when its replica
does not answer.

During the run (times are shares of ``--seconds``):
  20 %  replica A is killed (SIGKILL), restarted at 30 %
  45 %  the Redis is stopped and started again (SIGTERM, same port and data)
  60 %  the model fails every call for 30 s (``/_fake/config`` error_rate 1), then recovers

Each customer message carries a unique mark 「第c-t问」 and a client_message_id. A request that fails
(connection refused or cut, 5xx) is sent again with the same id, to its replica or the other, as the
chat page does; the server stores the message once and answers a retry with the reply it stored. A
message the server acknowledged (2xx) must be stored exactly once; one never acknowledged after all
retries is "in doubt" (stored once or not at all); no message is stored twice; every stored bot reply
follows the customer message it answers. Read back through kefu's own stores (encrypted at rest).

    python benchmarks/soak.py [--conversations 200] [--seconds 600] [--nginx]

Needs KEFU_TEST_POSTGRES_URL (or --postgres) and redis-server on PATH. Figures, not pass/fail; the exit
status is 1 when a message was lost or stored twice.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import re
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from chat_overhead import QUESTIONS, free_port, pct, start, stop, tail

MARK = re.compile(r"第(\d+)-(\d+)问")


@dataclass
class Ledger:
    acked: set[str] = field(default_factory=set)  # marks whose reply the client received
    in_doubt: set[str] = field(default_factory=set)  # marks whose request failed after being sent
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    timeline: list[str] = field(default_factory=list)


class Replica:
    def __init__(self, name: str, bin_dir: Path, env: dict[str, str], log: Path) -> None:
        self.name, self.bin_dir, self.env, self.log = name, bin_dir, env, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [str(self.bin_dir / "kefu"), "serve", "--port", str(self.port)]
        self.proc = start(cmd, {**self.env, "KEFU_VERSION_LABEL": self.name}, self.port, log=self.log)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)


class Nginx:
    """deploy/nginx on loopback in front of the two replicas (kefu-1 → A, kefu-2 → B, no canary)."""

    def __init__(self, root: Path, replicas: list[Replica]) -> None:
        from kefu.tls import write_dev_certificate

        self.root, self.port = root, free_port()
        deploy = Path(__file__).resolve().parent.parent / "deploy" / "nginx"
        (root / "certs").mkdir(parents=True)
        self.cert = root / "certs" / "server.crt"
        write_dev_certificate(self.cert, root / "certs" / "server.key")
        a, b = (f"127.0.0.1:{r.port}" for r in replicas)
        for name in ("nginx.conf", "upstreams.conf", "release.conf"):
            text = (deploy / name).read_text().replace("kefu-1:8000", a).replace("kefu-2:8000", b)
            text = text.replace("listen 80;", f"listen 127.0.0.1:{free_port()};")
            text = text.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{self.port} ssl http2;")
            (root / name).write_text(text)
        self.url = f"https://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = ["nginx", "-p", str(self.root), "-c", str(self.root / "nginx.conf"), "-g", "daemon off;"]
        self.proc = start(cmd, dict(os.environ), self.port, log=self.root / "nginx.log")


class RedisServer:
    def __init__(self, data: Path) -> None:
        self.port = free_port()
        self.data = data
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data)]
        cmd += ["--appendonly", "yes", "--save", "", "--protected-mode", "no"]
        self.proc = start(cmd, dict(os.environ), self.port, log=self.data / "redis.log")

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)


async def customer(
    n: int, replicas: list[str], front: str | None, deadline: float, ledger: Ledger, http: httpx.AsyncClient
) -> str | None:
    """One customer: a conversation on its replica, a question every 1–4 s until the deadline."""
    rng = random.Random(n)
    order = [replicas[zlib.crc32(str(n).encode()) % 2], replicas[1 - zlib.crc32(str(n).encode()) % 2]]
    bases = [front] if front else order
    cid: str | None = None
    while cid is None and time.monotonic() < deadline:
        for base in bases:
            try:
                response = await http.post(f"{base}/v1/conversations", json={"channel": "api"})
                response.raise_for_status()
                cid = str(response.json()["id"])
                break
            except httpx.HTTPError as exc:
                ledger.errors[f"create: {type(exc).__name__}"] += 1
        else:
            await asyncio.sleep(1)
    t = 0
    while cid is not None and time.monotonic() < deadline:
        await asyncio.sleep(rng.uniform(1, 4))
        t += 1
        mark = f"第{n}-{t}问"
        body = {
            "content": f"{QUESTIONS[(n + t) % len(QUESTIONS)]}（{mark}）",
            "client_message_id": f"c{n}-{t}",
        }
        for attempt in range(6):  # its replica, then the other, … the same client_message_id each time
            base = bases[attempt % len(bases)]
            ledger.requests += 1
            began = time.perf_counter()
            try:
                response = await http.post(f"{base}/v1/conversations/{cid}/messages", json=body)
            except httpx.HTTPError as exc:
                ledger.errors[f"message: {type(exc).__name__}"] += 1
                ledger.in_doubt.add(mark)
                await asyncio.sleep(0.5 * attempt)
                continue
            if response.status_code >= 300:
                ledger.errors[f"message: HTTP {response.status_code}"] += 1
                ledger.in_doubt.add(mark)
                wait = float(response.headers.get("retry-after", 0.5 * attempt))
                await asyncio.sleep(wait)
                continue
            ledger.latencies.append((time.perf_counter() - began) * 1000)
            ledger.acked.add(mark)
            ledger.in_doubt.discard(mark)
            reply = response.json()
            ledger.kinds[str(reply.get("answer_kind"))] += 1
            if reply.get("replayed"):
                ledger.errors["retries answered with the stored reply"] += 1
            break
    return cid


async def faults(
    seconds: float, replica: Replica, redis: RedisServer, fake_url: str, ledger: Ledger, began: float
) -> None:
    def note(what: str) -> None:
        ledger.timeline.append(f"{time.monotonic() - began:7.1f} s  {what}")
        print(ledger.timeline[-1], file=sys.stderr)

    async def at(share: float) -> None:
        await asyncio.sleep(max(0.0, began + share * seconds - time.monotonic()))

    await at(0.20)
    replica.kill()
    note(f"replica {replica.name} killed (SIGKILL)")
    await at(0.30)
    await asyncio.to_thread(replica.start)
    note(f"replica {replica.name} restarted")
    await at(0.45)
    await asyncio.to_thread(redis.stop)
    note("Redis stopped")
    await asyncio.sleep(3)
    await asyncio.to_thread(redis.start)
    note("Redis started again")
    await at(0.60)
    async with httpx.AsyncClient() as http:
        await http.post(f"{fake_url}/_fake/config", json={"error_rate": 1})
        note("model failing every call")
        await asyncio.sleep(30)
        await http.post(f"{fake_url}/_fake/config", json={"error_rate": 0})
        note("model recovered")


async def drive(
    conversations: int,
    seconds: float,
    replicas: list[Replica],
    front: str | None,
    redis: RedisServer,
    fake_url: str,
    ledger: Ledger,
    verify: ssl.SSLContext | bool = True,
) -> list[str]:
    began = time.monotonic()
    deadline = began + seconds
    limits = httpx.Limits(max_connections=conversations * 2)
    async with httpx.AsyncClient(timeout=60, limits=limits, verify=verify) as http:
        injector = asyncio.create_task(faults(seconds, replicas[0], redis, fake_url, ledger, began))
        urls = [r.url for r in replicas]
        found = await asyncio.gather(
            *(customer(n, urls, front, deadline, ledger, http) for n in range(conversations))
        )
        await injector
    return [cid for cid in found if cid is not None]


def check(env: dict[str, str], conversation_ids: list[str], ledger: Ledger) -> dict[str, int]:
    """Read every conversation back through kefu's stores and compare with the client's ledger."""
    os.environ.update({k: v for k, v in env.items() if k.startswith("KEFU_")})
    from kefu.config import load_settings
    from kefu.storage.factory import build_stores

    stores = build_stores(load_settings())
    stored: Counter[str] = Counter()
    orphan_replies = 0
    unanswered = 0
    try:
        for cid in conversation_ids:
            messages = stores.conversations.list_messages(cid)
            previous = None
            for message in messages:
                if message.role == "user":
                    match = MARK.search(message.content)
                    if match:
                        stored[match.group(0)] += 1
                    if previous is not None and previous.role == "user":
                        unanswered += 1  # a customer message with no reply before the next one
                elif message.role == "assistant" and (previous is None or previous.role != "user"):
                    orphan_replies += 1
                previous = message
    finally:
        stores.close()
    acked = ledger.acked
    return {
        "acknowledged": len(acked),
        "lost (acknowledged, not stored)": sum(1 for m in acked if stored[m] == 0),
        "stored twice or more": sum(1 for m, c in stored.items() if c > 1),
        "stored but never sent": sum(1 for m in stored if m not in acked and m not in ledger.in_doubt),
        "in doubt": len(ledger.in_doubt),
        "in doubt, stored once": sum(1 for m in ledger.in_doubt if stored[m] == 1),
        "in doubt, not stored": sum(1 for m in ledger.in_doubt if stored[m] == 0),
        "replies without a customer message before them": orphan_replies,
        "customer messages followed by another without a reply": unanswered,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--nginx", action="store_true", help="deploy/nginx in front of both replicas")
    parser.add_argument("--postgres", default=os.environ.get("KEFU_TEST_POSTGRES_URL", ""))
    args = parser.parse_args()
    if not args.postgres:
        raise SystemExit("set KEFU_TEST_POSTGRES_URL (or --postgres postgresql://…): the replicas share it")
    from kefu.storage.testing import temporary_postgres_schema

    bin_dir = Path(sys.executable).parent
    ledger = Ledger()
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    with tempfile.TemporaryDirectory() as tmp, temporary_postgres_schema(args.postgres) as database_url:
        data = Path(tmp)
        redis = RedisServer(data / "redis")
        redis.start()
        fake_port = free_port()
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "KEFU_DATABASE_URL": database_url,
            "KEFU_REDIS_URL": redis.url,
            "KEFU_AUDIT_KEYS": "k1:" + base64.b64encode(os.urandom(32)).decode(),
            "KEFU_SECRET_KEY": base64.b64encode(os.urandom(24)).decode(),
            "KEFU_LLM": "openai",
            "KEFU_LLM_API_KEY": "soak",
            "KEFU_LLM_BASE_URL": f"http://127.0.0.1:{fake_port}/v1",
            "KEFU_RATE_LIMIT_WEB": "off",  # every customer comes from 127.0.0.1: one client
            "KEFU_RATE_LIMIT_GLOBAL": "off",
        }
        fake = start([str(bin_dir / "kefu"), "fake-llm", "--port", str(fake_port)], env, fake_port)
        replicas = [
            Replica(name, bin_dir, {**env, "KEFU_DATA_DIR": str(data / name)}, data / f"{name}.log")
            for name in ("A", "B")
        ]
        nginx = Nginx(data / "nginx", replicas) if args.nginx else None
        try:
            for replica in replicas:
                replica.start()
            if nginx is not None:
                nginx.start()
            print(f"{args.conversations} conversations for {args.seconds:.0f} s …", file=sys.stderr)
            began = time.perf_counter()
            ids = asyncio.run(
                drive(
                    args.conversations,
                    args.seconds,
                    replicas,
                    nginx.url if nginx else None,
                    redis,
                    f"http://127.0.0.1:{fake_port}",
                    ledger,
                    ssl.create_default_context(cafile=str(nginx.cert)) if nginx else True,
                )
            )
            elapsed = time.perf_counter() - began
            result = check(env, ids, ledger)
        except BaseException:
            for replica in replicas:
                print(f"--- replica {replica.name} log ---\n{tail(replica.log)}", file=sys.stderr)
            raise
        finally:
            for replica in replicas:
                if replica.proc is not None and replica.proc.poll() is None:
                    stop(replica.proc)
            if nginx is not None and nginx.proc is not None:
                stop(nginx.proc)
            stop(fake)
            redis.stop()
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"front: {'deploy/nginx (TLS 1.3) → replicas A, B' if args.nginx else 'the client picks A or B'}")
    print("faults:")
    for line in ledger.timeline:
        print(f"  {line}")
    ok = len(ledger.latencies)
    print(f"conversations {len(ids)}, requests {ledger.requests}, replies {ok} in {elapsed:.0f} s")
    if ok:
        print(
            f"latency p50 {pct(ledger.latencies, 0.5):.0f} ms, p99 {pct(ledger.latencies, 0.99):.0f} ms, "
            f"mean {statistics.mean(ledger.latencies):.0f} ms"
        )
    print("errors by kind: " + (", ".join(f"{k} {v}" for k, v in ledger.errors.most_common()) or "none"))
    print("answer kinds: " + ", ".join(f"{k} {v}" for k, v in ledger.kinds.most_common()))
    for name, value in result.items():
        print(f"{name:<58}{value:>8}")
    lost = result["lost (acknowledged, not stored)"] + result["stored twice or more"]
    print(f"lost {result['lost (acknowledged, not stored)']}, duplicated {result['stored twice or more']}")
    raise SystemExit(1 if lost else 0)


if __name__ == "__main__":
    main()
