"""API fuzzing (issue #11 §6): Schemathesis against ``/openapi.json`` of a running kefu (every operation,
the admin and agent APIs with valid tokens): no 5xx, and every 4xx in kefu's error shape.

    .venv/bin/python scripts/api_fuzz.py [--max-examples 10] [--seed 1]

The server is the real app (SQLite in a temporary folder, the scripted model, the mini knowledge pack of
the tests, rate limits off) on a free loopback port; the run's figures and every failure are printed,
and the exit status is Schemathesis' own.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parents[1]
ADMIN_TOKEN = "fuzz-admin-token-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--max-examples", type=int, default=10, help="cases per operation and phase")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from kefu.api.app import create_app
    from kefu.config import load_settings

    data = Path(tempfile.mkdtemp(prefix="kefu-fuzz-"))
    settings = load_settings(
        environment="test",
        llm="scripted",
        data_dir=data,
        kb_dir=ROOT / "tests" / "data" / "mini_kb",
        admin_token=ADMIN_TOKEN,
        scope_guard=False,
        rate_limit_web="off",
        rate_limit_openai="off",
        rate_limit_agent="off",
        rate_limit_admin="off",
        rate_limit_conversation="off",
        rate_limit_global="off",
    )
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            print("the server did not start", file=sys.stderr)
            return 2
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    store = app.state.runtime.handoffs.store
    store.ensure_agent("fuzz", "Fuzz", "fuzz-password-1")
    store.set_active("fuzz", True)
    login = httpx.post(f"{base}/v1/agent/login", json={"username": "fuzz", "password": "fuzz-password-1"})
    login.raise_for_status()
    env = {
        **os.environ,
        "KEFU_FUZZ_ADMIN_TOKEN": ADMIN_TOKEN,
        "KEFU_FUZZ_AGENT_TOKEN": login.json()["token"],
        "SCHEMATHESIS_HOOKS": "api_fuzz_hooks",
        "PYTHONPATH": f"{ROOT / 'scripts'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{base}/openapi.json",
        "--checks",
        "not_a_server_error,kefu_error_shape,kefu_token_accepted",
        "--max-examples",
        str(args.max_examples),
        "--seed",
        str(args.seed),
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--phases",
        "examples,coverage,fuzzing",
        "--exclude-path-regex",
        "/events$",  # live event streams never end: a request would only time out
    ]
    started = time.monotonic()
    result = subprocess.run(command, env=env, cwd=ROOT)
    print(f"\nschemathesis finished in {time.monotonic() - started:.0f} s (exit {result.returncode})")
    server.should_exit = True
    thread.join(timeout=30)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
