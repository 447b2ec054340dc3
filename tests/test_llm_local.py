"""The bundled GGUF model, really loaded (joined from its packages and sha256-verified) and run in its
supervised worker process, spoken to over real HTTP; crashes are real signals to the worker's pid."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from kefu.api.app import create_app
from kefu.config import Settings
from kefu.errors import ModelError, ModelUnavailable
from kefu.llm import build_chat_model, ensure_ready, model_readiness
from kefu.llm.base import ChatRequest, Message, StreamChunk
from kefu.llm.local import require_llama_cpp
from kefu.llm.supervisor import LocalWorkerModel, WorkerConfig
from kefu.llm.weights import BUNDLED_FILENAME, BUNDLED_SIZE, bundled_model_path

try:
    require_llama_cpp()
except ModelUnavailable as missing:  # CI installs kefu[local], so these run there
    pytest.skip(missing.message, allow_module_level=True)

pytestmark = pytest.mark.local_model

# The developer's cache (not a temp dir), so the 491 MB file is joined once per machine.
CACHE_DIR = Settings(environment="test").cache_dir
MINI_KB = Path(__file__).parent / "data" / "mini_kb"
CJK = re.compile(r"[\u4e00-\u9fff]")
SYSTEM = "你是「小铺优选」的在线客服。只根据【资料】回答，简洁，使用中文。\n\n【资料】\n[1] 配送\n订单满99元包邮，不满99元收取运费8元。"
RESTART_WAIT = 120.0  # a generous bound on a loaded machine; the test fails if it is ever reached


def ask(question: str, max_tokens: int = 40) -> ChatRequest:
    return ChatRequest(
        [Message("system", SYSTEM), Message("user", question)], max_tokens=max_tokens, temperature=0
    )


@pytest.fixture
async def model() -> AsyncIterator[LocalWorkerModel]:
    started = LocalWorkerModel(WorkerConfig(None, CACHE_DIR))
    await ensure_ready(started)
    yield started
    await started.aclose()


async def collect(model: LocalWorkerModel, request: ChatRequest) -> list[StreamChunk]:
    return [chunk async for chunk in model.stream(request)]


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + RESTART_WAIT
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {RESTART_WAIT:g} s"
        time.sleep(0.1)


def gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (a zombie waiting for a non-reaping init counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z"


async def test_the_worker_answers_a_multi_token_prompt_in_its_own_niced_process(
    model: LocalWorkerModel,
) -> None:
    cached = CACHE_DIR / "models" / BUNDLED_FILENAME
    assert cached.stat().st_size == BUNDLED_SIZE and Path(f"{cached}.verified").is_file()
    pid = model.supervisor.pid
    assert pid is not None and pid != os.getpid()
    assert os.getpriority(os.PRIO_PROCESS, pid) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10)
    assert model_readiness(model) == (True, f"{model.name} (worker pid {pid})")
    reply = await model.complete(ask("运费多少钱？"))
    assert CJK.search(reply.text), reply.text
    assert reply.model == "local:qwen2.5-coder-0.5b-instruct-q4_k_m"
    assert reply.usage.prompt_tokens > 20 and 0 < reply.usage.completion_tokens <= 40
    assert reply.finish_reason in {"stop", "length"}
    async with httpx.AsyncClient() as client:  # the worker's port answers only with the token
        refused = await client.get(f"{model.supervisor.base_url}/models")
    assert refused.status_code == 401


async def test_stream_yields_pieces_and_usage_last(model: LocalWorkerModel) -> None:
    chunks = await collect(model, ask("满多少钱包邮？"))
    text = "".join(c.text for c in chunks)
    assert CJK.search(text), text
    assert len(chunks) > 2 and all(c.usage is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.usage is not None and last.usage.prompt_tokens > 20 and last.usage.completion_tokens > 0
    assert last.finish_reason in {"stop", "length"}


async def test_concurrent_requests_queue_and_an_abandoned_stream_blocks_nothing(
    model: LocalWorkerModel,
) -> None:
    first, second, third = await asyncio.gather(
        model.complete(ask("运费多少？", 16)),
        collect(model, ask("包邮吗？", 16)),
        model.complete(ask("不满99元怎么收费？", 16)),
    )
    assert first.text and third.text
    assert second[-1].finish_reason in {"stop", "length"}
    async for chunk in model.stream(ask("请详细介绍一下配送政策。", 200)):
        if chunk.text:
            break
    reply = await model.complete(ask("运费多少？", 8))
    assert reply.usage.completion_tokens > 0


@pytest.mark.parametrize("sig", [signal.SIGSEGV, signal.SIGKILL])
async def test_a_worker_crash_mid_stream_is_a_model_error_and_the_worker_comes_back(
    model: LocalWorkerModel, sig: signal.Signals
) -> None:
    pid = model.supervisor.pid
    assert pid is not None
    with pytest.raises(ModelError, match=f"stopped during the request.*{sig.name}"):
        async for chunk in model.stream(ask("请详细介绍一下配送政策和运费。", 300)):
            if chunk.text:
                os.kill(pid, sig)
    ready, detail = model.readiness()
    assert not ready and f"pid {pid}" in detail and sig.name in detail
    with pytest.raises(ModelError, match="not available"):  # while it restarts: at once, no waiting
        await model.complete(ask("运费多少？", 8))
    await asyncio.to_thread(wait_until, lambda: model.readiness()[0], "the restart")
    assert model.supervisor.pid not in {None, pid}
    reply = await model.complete(ask("运费多少？", 8))
    assert reply.usage.completion_tokens > 0


def test_readyz_is_not_ready_while_the_worker_restarts(make_settings: Callable[..., Settings]) -> None:
    bundled = bundled_model_path(CACHE_DIR)  # the developer's copy; the app's caches in a temp dir
    settings = make_settings(kb_dir=MINI_KB, llm="local", local_model_path=bundled)
    # The restart waits 5 s, so "not ready" is seen even on a loaded machine.
    model = LocalWorkerModel(replace(WorkerConfig.from_settings(settings), restart_delay=5.0))
    with TestClient(create_app(settings, model=model)) as client:
        model.supervisor.start()
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["model"].startswith("local:")
        pid = model.supervisor.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        # /proc shows the leader as a zombie while the worker's other threads still exit; the worker is
        # dead (and /readyz says so) a moment later, well within the 5 s before the restart
        wait_until(lambda: client.get("/readyz").status_code == 503, "/readyz saying not ready")
        down = client.get("/readyz")
        assert down.status_code == 503, down.text
        assert gone(pid)
        assert down.json()["status"] == "not ready"
        assert re.match(rf"not ready: .*pid {pid}.*SIGKILL", down.json()["checks"]["model"])
        wait_until(lambda: client.get("/readyz").status_code == 200, "ready again")
        restarted = model.supervisor.pid
        assert restarted is not None and restarted != pid
    assert gone(restarted)  # the app's shutdown stopped the worker


async def test_a_prompt_over_the_context_is_a_model_error_from_a_user_gguf(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KEFU_SECRET_KEY", "not-for-the-worker")
    own = LocalWorkerModel(WorkerConfig(CACHE_DIR / "models" / BUNDLED_FILENAME, CACHE_DIR, n_ctx=512))
    assert own.describe() == f"local:{BUNDLED_FILENAME}"
    await ensure_ready(own)
    try:
        environ = Path(f"/proc/{own.supervisor.pid}/environ").read_bytes()
        assert b"KEFU_WORKER_TOKEN=" in environ and b"not-for-the-worker" not in environ
        assert (await own.complete(ask("运费？", 8))).text
        with pytest.raises(ModelError, match="KEFU_LOCAL_N_CTX"):
            await own.complete(ask("请问" + "运费和配送时间是多少" * 120))
        assert own.readiness()[0]  # a refused request leaves the worker up
    finally:
        await own.aclose()


async def test_a_missing_user_gguf_is_refused_before_any_worker_starts(tmp_path: Path) -> None:
    settings = Settings(environment="test", llm="local", local_model_path=tmp_path / "nope.gguf")
    missing = build_chat_model(settings)
    assert isinstance(missing, LocalWorkerModel)
    with pytest.raises(ModelUnavailable, match=r"KEFU_LOCAL_MODEL_PATH=.*does not exist"):
        await ensure_ready(missing)
    assert missing.supervisor.pid is None and not missing.readiness()[0]


async def test_the_worker_stops_with_its_model_and_with_a_killed_parent(model: LocalWorkerModel) -> None:
    pid = model.supervisor.pid
    assert pid is not None
    await model.aclose()
    assert gone(pid)
    parent = subprocess.run(  # a web process that starts a worker, prints its pid and is killed
        [
            sys.executable,
            "-c",
            "import os, signal; from pathlib import Path; from kefu.llm.supervisor import *\n"
            f"s = WorkerSupervisor(WorkerConfig(None, Path({str(CACHE_DIR)!r})))\n"
            "s.start(); print(s.pid, flush=True); os.kill(os.getpid(), signal.SIGKILL)",
        ],
        capture_output=True,
        text=True,
        timeout=RESTART_WAIT,
    )
    assert parent.returncode == -signal.SIGKILL, parent.stderr
    orphan = int(parent.stdout.split()[0])
    await asyncio.to_thread(wait_until, lambda: gone(orphan), "the orphaned worker's exit")
