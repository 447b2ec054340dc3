"""deploy/nginx in front of two real ``kefu serve`` processes (a stable and a canary release label) on
loopback, with the Debian nginx: TLS 1.3 only (a TLS 1.2 client is refused), HTTP/2, request size caps,
/metrics kept inside, the canary's share over 1,000 conversations, a conversation that never flips,
and removing the canary by a config reload sends everyone back without an error.

The shipped files are used as they are; only addresses are rewritten (listen ports, upstream servers).
Skipped with the reason when nginx is not installed and this is not CI (CI installs it:
scripts/install-ops-tools.sh)."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httpx
import pytest

from conftest import MINI_KB, free_port, stop_processes
from kefu.tls import write_dev_certificate

NGINX_DIR = Path(__file__).resolve().parents[1] / "deploy" / "nginx"
CANARY_SHARE = 0.10  # release-canary.conf.example
STARTUP_SECONDS = 120


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is missing in CI: scripts/install-ops-tools.sh should have installed it")
        pytest.skip("nginx not installed (Debian package nginx): run scripts/install-ops-tools.sh")
    return found


@dataclass
class Stack:
    base: str  # https://127.0.0.1:PORT
    http_base: str
    https_port: int
    cert: Path
    conf_dir: Path
    stable: str  # address of each kefu
    canary: str
    nginx: list[str]  # the command prefix that addresses this nginx (-p, -c)

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.base, verify=ssl_context(self.cert), timeout=20, **kwargs)  # type: ignore[arg-type]

    def use_release(self, name: str) -> None:
        """Install deploy/nginx/<name> as release.conf (addresses rewritten) and reload nginx."""
        write_conf(NGINX_DIR / name, self.conf_dir / "release.conf", self.stable, self.canary)
        subprocess.run([*self.nginx, "-s", "reload"], check=True, capture_output=True, timeout=30)


def ssl_context(cert: Path, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert))
    if maximum is not None:
        context.maximum_version = maximum
    return context


def write_conf(source: Path, target: Path, stable: str, canary: str) -> None:
    lines = []
    for line in source.read_text().splitlines():
        if "server kefu-2:8000" in line:
            continue  # one stable process here
        lines.append(line.replace("kefu-1:8000", stable).replace("kefu-canary:8000", canary))
    target.write_text("\n".join(lines) + "\n")


def start_kefu(
    label: str, port: int, data_dir: Path, database_url: str, log: BinaryIO
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_") or k.startswith("KEFU_TEST_")}
    env.update(
        HF_HUB_OFFLINE="1",
        KEFU_ENVIRONMENT="test",
        KEFU_DATA_DIR=str(data_dir),
        KEFU_DATABASE_URL=database_url,
        KEFU_KB_DIR=str(MINI_KB),
        KEFU_LLM="none",
        KEFU_SCOPE_GUARD="false",
        KEFU_VERSION_LABEL=label,
        KEFU_PORT=str(port),
        KEFU_RATE_LIMIT_WEB="off",
        KEFU_RATE_LIMIT_OPENAI="off",
        KEFU_RATE_LIMIT_CONVERSATION="off",
        KEFU_RATE_LIMIT_GLOBAL="off",
    )
    kefu = Path(sys.executable).with_name("kefu")
    return subprocess.Popen([str(kefu), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_for_line(text: str, process: subprocess.Popen[bytes], log: Path, deadline: float) -> None:
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            raise RuntimeError(f"kefu serve exited: {log.read_text()[-2000:]}")
        time.sleep(0.2)
    raise RuntimeError(f"kefu serve did not log {text!r} in time: {log.read_text()[-2000:]}")


def wait_healthy(address: str, process: subprocess.Popen[bytes], log: Path, deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"kefu serve on {address} exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://{address}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"kefu serve on {address} did not answer /healthz in time: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    nginx = nginx_binary()
    root = tmp_path_factory.mktemp("nginx-stack")
    started = time.monotonic()
    deadline = started + STARTUP_SECONDS
    database_url = f"sqlite:///{root / 'shared.db'}"  # one truth: both releases serve the same conversations
    processes: list[subprocess.Popen[bytes]] = []
    logs: list[BinaryIO] = []
    try:
        addresses = {}
        for label in ("stable", "canary"):
            port = free_port()
            (root / label).mkdir()
            logs.append((root / label / "serve.log").open("wb"))
            processes.append(start_kefu(label, port, root / label, database_url, logs[-1]))
            addresses[label] = f"127.0.0.1:{port}"
            if label == "stable":  # the canary starts once the shared database is migrated and synced
                wait_for_line("kefu ready", processes[0], root / label / "serve.log", deadline)
        for label, process in zip(("stable", "canary"), processes, strict=True):
            wait_healthy(addresses[label], process, root / label / "serve.log", deadline)
        conf = root / "nginx"
        (conf / "certs").mkdir(parents=True)
        write_dev_certificate(conf / "certs" / "server.crt", conf / "certs" / "server.key")
        https_port, http_port = free_port(), free_port()
        main = (NGINX_DIR / "nginx.conf").read_text()
        main = main.replace("listen 80;", f"listen 127.0.0.1:{http_port};")
        main = main.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;")
        (conf / "nginx.conf").write_text(main)
        write_conf(
            NGINX_DIR / "upstreams.conf", conf / "upstreams.conf", addresses["stable"], addresses["canary"]
        )
        write_conf(
            NGINX_DIR / "release-canary.conf.example",
            conf / "release.conf",
            addresses["stable"],
            addresses["canary"],
        )
        command = [nginx, "-p", str(conf), "-c", str(conf / "nginx.conf")]
        subprocess.run([*command, "-t"], check=True, capture_output=True, timeout=30)
        logs.append((conf / "error.log").open("wb"))
        processes.append(
            subprocess.Popen([*command, "-g", "daemon off;"], stdout=logs[-1], stderr=subprocess.STDOUT)
        )
        while True:
            try:
                socket.create_connection(("127.0.0.1", https_port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or processes[-1].poll() is not None:
                    raise RuntimeError(f"nginx did not start: {(conf / 'error.log').read_text()}") from None
                time.sleep(0.05)
        print(f"\nstack up in {time.monotonic() - started:.1f} s (two kefu serve + nginx)")
        yield Stack(
            base=f"https://127.0.0.1:{https_port}",
            http_base=f"http://127.0.0.1:{http_port}",
            https_port=https_port,
            cert=conf / "certs" / "server.crt",
            conf_dir=conf,
            stable=addresses["stable"],
            canary=addresses["canary"],
            nginx=command,
        )
    finally:
        stop_processes(processes)
        for log in logs:
            log.close()


def release_of(response: httpx.Response) -> str:
    version = response.headers["x-kefu-version"]
    return version.rsplit("+", 1)[1]


def test_tls_1_3_only_with_http2_and_http_redirects(stack: Stack) -> None:
    old_client = ssl_context(stack.cert, ssl.TLSVersion.TLSv1_2)
    with (
        socket.create_connection(("127.0.0.1", stack.https_port), timeout=5) as raw,
        pytest.raises(ssl.SSLError),
    ):
        old_client.wrap_socket(raw, server_hostname="localhost")  # a TLS 1.2 client: refused at the handshake
    context = ssl_context(stack.cert)
    context.set_alpn_protocols(["h2", "http/1.1"])
    with (
        socket.create_connection(("127.0.0.1", stack.https_port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        assert tls.version() == "TLSv1.3"
        assert tls.selected_alpn_protocol() == "h2"
    response = httpx.get(f"{stack.http_base}/v1/conversations", timeout=5)
    assert response.status_code == 301
    assert response.headers["location"].startswith("https://")


def test_size_caps_and_metrics_stay_inside(stack: Stack) -> None:
    with stack.client() as client:
        big = client.post("/v1/conversations/x/messages", content=b"{" + b" " * 2_000_000 + b"}")
        assert big.status_code == 413  # refused by nginx before kefu reads it
        assert client.get("/metrics").status_code == 404
        assert httpx.get(f"http://{stack.stable}/metrics", timeout=5).status_code == 200  # the replica's own


def test_the_canary_gets_its_share_of_1000_conversations(stack: Stack) -> None:
    releases: Counter[str] = Counter()
    with stack.client() as client:
        for n in range(1000):
            response = client.get(f"/v1/conversations/conv-{n:04d}")
            assert response.status_code == 404  # no such conversation: answered by kefu, not nginx
            releases[release_of(response)] += 1
    share = releases["canary"] / 1000
    print(f"\ncanary {releases['canary']} / stable {releases['stable']} of 1000 conversations ({share:.1%})")
    assert set(releases) == {"stable", "canary"}
    assert abs(share - CANARY_SHARE) <= 0.03  # ±3 points: a hash split over 1,000 ids


def test_a_conversation_never_flips(stack: Stack) -> None:
    seen: dict[str, set[str]] = {}
    with stack.client() as client:
        conversations = [
            client.post("/v1/conversations", json={"channel": "web"}).json()["id"] for _ in range(40)
        ]
        for _round in range(3):
            for conversation in conversations:
                for response in (
                    client.post(f"/v1/conversations/{conversation}/messages", json={"content": "多久发货"}),
                    client.get(f"/v1/conversations/{conversation}/messages"),
                ):
                    assert response.status_code == 200, response.text
                    seen.setdefault(conversation, set()).add(release_of(response))
        # the OpenAI-compatible channel keeps its conversation by the X-Kefu-Session header
        for n in range(40):
            for _ in range(3):
                response = client.get("/healthz", headers={"X-Kefu-Session": f"shopper-{n}"})
                seen.setdefault(f"session-{n}", set()).add(release_of(response))
        forced = {release_of(client.get("/healthz", headers={"X-Kefu-Release": "canary"})) for _ in range(10)}
    flipped = {key: found for key, found in seen.items() if len(found) > 1}
    assert not flipped
    assert {next(iter(found)) for found in seen.values()} == {"stable", "canary"}  # both had customers
    assert forced == {"canary"}  # a tester can ask for the canary


def test_removing_the_canary_sends_everyone_back_without_an_error(stack: Stack) -> None:
    with stack.client() as client:
        conversations = [
            client.post("/v1/conversations", json={"channel": "web"}).json()["id"] for _ in range(60)
        ]
        before = {c: release_of(client.get(f"/v1/conversations/{c}")) for c in conversations}
    assert "canary" in before.values()
    statuses: Counter[object] = Counter()
    after: dict[str, set[str]] = {}
    stop = threading.Event()

    def customers() -> None:
        with stack.client(transport=httpx.HTTPTransport(retries=1, verify=ssl_context(stack.cert))) as client:
            while not stop.is_set():
                for conversation in conversations:
                    try:
                        response = client.get(f"/v1/conversations/{conversation}/messages")
                    except httpx.HTTPError as exc:
                        statuses[type(exc).__name__] += 1
                        continue
                    statuses[response.status_code] += 1
                    if reloaded.is_set():
                        after.setdefault(conversation, set()).add(release_of(response))

    reloaded = threading.Event()
    thread = threading.Thread(target=customers)
    thread.start()
    try:
        time.sleep(0.5)
        stack.use_release("release.conf")  # the shipped file: no canary
        time.sleep(1.0)  # the old workers finish what they hold
        reloaded.set()
        time.sleep(1.5)
    finally:
        stop.set()
        thread.join(timeout=30)
        stack.use_release("release-canary.conf.example")  # back, for any later test
    print(f"\nduring and after the reload: {dict(statuses)}")
    assert set(statuses) == {200}, statuses  # no 5xx, no connection error
    assert after and all(found == {"stable"} for found in after.values())
