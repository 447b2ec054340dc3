"""The local model in a supervised worker process (``KEFU_LLM=local``): a crash never takes the web
server down.

    web process                                        worker process (python -m kefu.llm.worker)
    LocalWorkerModel ── OpenAI chat API, bearer ──►    GGUF on llama.cpp, nice +10, cores − 1 threads
    WorkerSupervisor: start · wait for a real generation · watch · restart with backoff · stop

* The supervisor binds a listening socket on a free 127.0.0.1 port once and hands it to every worker
  it starts, so the URL never changes; each start gets a random bearer token.
* A worker is *ready* only after it answered a real short generation from a multi-token prompt; the
  readiness (and, while down, the reason) is what ``/readyz`` reports.
* When the worker dies (segfault, OOM kill …) the request in flight fails with ``ModelError`` — the
  orchestrator's polite fallback — and requests fail fast while it restarts (1 s, 2 s, 4 s … 30 s
  backoff, reset after a minute of good health), with one log line naming the exit code or signal.
* The worker lowers its own priority (``KEFU_LOCAL_NICE``, default 10) and uses
  ``KEFU_LOCAL_THREADS`` threads (0 → cores − 1), so query embeddings and the web process win the CPU.
* ``aclose()`` and interpreter exit stop it; the worker also exits when its stdin (a pipe from this
  process) closes, so even a killed web server leaves no orphan.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import importlib.util
import logging
import os
import secrets
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai

from kefu.config import Settings
from kefu.errors import ModelError, ModelUnavailable
from kefu.llm.base import ChatModel, ChatRequest, Reply, StreamChunk
from kefu.llm.local import default_threads
from kefu.llm.openai_compat import OpenAICompatModel
from kefu.llm.weights import INSTALL_HINT, bundled_model_path, check_user_gguf

log = logging.getLogger("kefu.llm")

BUNDLED_LABEL = "qwen2.5-coder-0.5b-instruct-q4_k_m"
PORTABLE_CMAKE_ARGS = "-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF"
REBUILD_HINT = (
    "llama-cpp-python was probably built for another CPU; rebuild it portable with "
    "`rm -rf ~/.cache/kefu/wheels && make install` (scripts/install-local-model.sh builds with "
    f"CMAKE_ARGS='{PORTABLE_CMAKE_ARGS}' on x86-64), or use a model server instead (KEFU_LLM=openai)"
)
PROBE = {  # a real multi-token generation: a build for the wrong CPU crashes here, not on a customer
    "messages": [
        {"role": "system", "content": "你是在线客服，回答简洁。"},
        {"role": "user", "content": "你好，请问今天可以发货吗？"},
    ],
    "max_tokens": 8,
    "temperature": 0,
}
_CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGILL, signal.SIGBUS, signal.SIGFPE, signal.SIGABRT}
_BACKOFF_MAX, _HEALTHY_AFTER = 30.0, 60.0
_LIVE: weakref.WeakSet[WorkerSupervisor] = weakref.WeakSet()


def describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by signal {signal.Signals(-code).name}"
        return f"was killed by signal {-code}"
    return f"exited with code {code}"


@dataclass(frozen=True)
class WorkerConfig:
    model_path: Path | None  # None → the bundled model (joined and verified in this process first)
    cache_dir: Path
    n_ctx: int = 4096
    threads: int = 0  # 0 → default_threads()
    nice: int = 10
    start_timeout: float = 120.0  # load + the first generation
    restart_delay: float = 1.0  # the first restart's wait; doubled per failure up to 30 s

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerConfig:
        return cls(
            settings.local_model_path,
            settings.cache_dir,
            n_ctx=settings.local_n_ctx,
            threads=settings.local_threads,
            nice=settings.local_nice,
        )

    @property
    def label(self) -> str:
        return self.model_path.name if self.model_path else BUNDLED_LABEL


class WorkerSupervisor:
    """Starts, watches and restarts the worker process. Thread-based: works under any event loop."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.name = f"local:{config.label}"
        self.token = ""
        self.generation = 0  # +1 for every worker that became ready
        self._path: Path | None = None
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._state, self._detail = "stopped", "not started"
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._sock is None:
            raise ModelError("the local model worker is not started")
        host, port = self._sock.getsockname()[:2]
        return f"http://{host}:{port}/v1"

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and _exit_code(proc) is None else None

    def readiness(self) -> tuple[bool, str]:
        """(ready, detail): ready only while a worker that passed its generation probe is alive."""
        with self._lock:
            proc, state, detail = self._proc, self._state, self._detail
        code = _exit_code(proc) if state == "ready" and proc is not None else None
        if proc is not None and code is not None:  # dead, and the watcher has not noticed yet
            return False, f"the worker (pid {proc.pid}) {describe_exit(code)}; restarting it"
        return state == "ready", detail

    def start(self) -> None:
        """Join/verify the weights, start the worker and wait for a real generation (blocking).

        Raises ``ModelUnavailable`` naming the fix when the worker cannot load or crashes."""
        if self._watcher is not None:
            return
        if self._stopping.is_set():
            raise ModelUnavailable("this local model worker was stopped; start a new LocalWorkerModel")
        self._path = self._resolve_model()
        self._sock = socket.create_server(("127.0.0.1", 0), backlog=64)
        self._set("starting", "loading the model")
        try:
            self._start_worker()
        except BaseException:
            self.stop()
            raise
        _watch_at_exit(self)
        self._watcher = threading.Thread(target=self._watch, name="kefu-llm-supervisor", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        self._stopping.set()
        self._set("stopped", "stopped")
        with self._lock:
            proc = self._proc
        if proc is not None:
            _terminate(proc)
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout=10)
        with self._lock:
            proc = self._proc  # one the watcher started while we were stopping
        if proc is not None:
            _terminate(proc)
        if self._sock is not None:
            self._sock.close()
        _LIVE.discard(self)

    def _resolve_model(self) -> Path:
        if self.config.model_path is not None:
            return check_user_gguf(self.config.model_path)
        return bundled_model_path(self.config.cache_dir)

    def _set(self, state: str, detail: str) -> None:
        with self._lock:
            self._state, self._detail = state, detail

    def _start_worker(self) -> None:
        """One worker process, ready or refused (``ModelUnavailable``) within ``start_timeout``."""
        assert self._sock is not None and self._path is not None
        started = time.monotonic()
        token = secrets.token_urlsafe(32)
        read_end, write_end = os.pipe()
        threads = self.config.threads or default_threads()
        command = [
            sys.executable, "-m", "kefu.llm.worker", "--fd", str(self._sock.fileno()),
            "--status-fd", str(write_end), "--model", str(self._path), "--name", self.name,
            "--n-ctx", str(self.config.n_ctx), "--threads", str(threads), "--nice", str(self.config.nice),
        ]  # fmt: skip
        try:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                pass_fds=(self._sock.fileno(), write_end),
                env=_worker_environment(token),
                start_new_session=True,  # a Ctrl-C in the terminal goes to the server, which stops us
            )
        finally:
            os.close(write_end)
        with self._lock:
            self._proc = proc
        if self._stopping.is_set():
            os.close(read_end)
            _terminate(proc)
            raise ModelUnavailable("the local model worker is being stopped")
        try:
            status = _read_status(read_end, started + self.config.start_timeout)
            if status == "ready":
                self._probe(token, started + self.config.start_timeout)
        except BaseException as exc:
            _terminate(proc)
            raise _startup_error(exc, proc, self.config.start_timeout) from None
        finally:
            os.close(read_end)
        if status != "ready":
            _terminate(proc)
            raise _startup_error(status, proc, self.config.start_timeout)
        with self._lock:
            self.token, self.generation = token, self.generation + 1
            self._state, self._detail = "ready", f"{self.name} (worker pid {proc.pid})"
        log.info(
            "local model worker ready: pid %d, %d threads, nice %d, %s (%.1f s)",
            proc.pid, threads, self.config.nice, self._path.name, time.monotonic() - started,
        )  # fmt: skip

    def _probe(self, token: str, deadline: float) -> None:
        response = httpx.post(
            f"{self.base_url}/chat/completions",
            json={"model": self.name, **PROBE},
            headers={"Authorization": f"Bearer {token}"},
            timeout=max(1.0, deadline - time.monotonic()),
        )
        response.raise_for_status()
        if response.json()["usage"]["completion_tokens"] < 1:
            raise RuntimeError("the probe generation produced no tokens")

    def _watch(self) -> None:
        """Wait for the worker to exit; restart it with backoff until ``stop``."""
        delay = self.config.restart_delay
        while not self._stopping.is_set():
            with self._lock:
                proc = self._proc
            assert proc is not None
            began = time.monotonic()
            code = proc.wait()
            if proc.stdin is not None:
                proc.stdin.close()
            if self._stopping.is_set():
                return
            if time.monotonic() - began > _HEALTHY_AFTER:
                delay = self.config.restart_delay
            reason = f"the worker (pid {proc.pid}) {describe_exit(code)}"
            hint = f" ({REBUILD_HINT})" if -code in _CRASH_SIGNALS else ""
            log.warning("local model: %s; restarting it in %.0f s%s", reason, delay, hint)
            self._set("restarting", f"{reason}; restarting it")
            delay = self._restart(delay)

    def _restart(self, delay: float) -> float:
        """Start a new worker after ``delay`` s, retrying with a doubled delay; returns the next delay."""
        while not self._stopping.wait(delay):
            try:
                self._start_worker()
                return min(delay * 2, _BACKOFF_MAX)
            except ModelUnavailable as exc:
                delay = min(delay * 2, _BACKOFF_MAX)
                self._set("restarting", f"restart failed: {exc.message}; next try in {delay:.0f} s")
                log.warning("local model worker restart failed: %s; next try in %.0f s", exc.message, delay)
        return delay


def _worker_environment(token: str) -> dict[str, str]:
    """This process's environment without kefu's settings (secrets, database URLs: the worker needs
    none of them; it is told everything on its command line), plus its bearer token."""
    inherited = {name: value for name, value in os.environ.items() if not name.startswith("KEFU_")}
    return {**inherited, "KEFU_WORKER_TOKEN": token}


def _exit_code(proc: subprocess.Popen[bytes]) -> int | None:
    """The exit code (−signal) of a worker that has exited, without reaping it (the watcher waits on it)."""
    if proc.returncode is not None:
        return proc.returncode
    try:
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:  # reaped a moment ago: the watcher sets the code
        return proc.wait()
    if info is None:
        return None
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


def _read_status(fd: int, deadline: float) -> str:
    """The worker's first status line ("ready" or "error …"), "" at end of file, "timeout" at the deadline."""
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            return "timeout"
        block = os.read(fd, 4096)
        if not block:
            return data.decode(errors="replace").strip()
        data += block
    return data.split(b"\n", 1)[0].decode(errors="replace").strip()


def _startup_error(
    cause: BaseException | str, proc: subprocess.Popen[bytes], timeout: float
) -> ModelUnavailable:
    code = proc.poll()
    if isinstance(cause, str) and cause.startswith("error "):
        return ModelUnavailable(cause.removeprefix("error "))
    if code is not None and -code in _CRASH_SIGNALS:
        return ModelUnavailable(
            f"the local model worker crashed while loading or generating (it {describe_exit(code)}); {REBUILD_HINT}"
        )
    if cause == "timeout":
        return ModelUnavailable(
            f"the local model worker was not ready within {timeout:g} s; the machine may be overloaded — "
            "retry, lower KEFU_LOCAL_N_CTX, or use a model server (KEFU_LLM=openai)"
        )
    if code is not None:
        return ModelUnavailable(
            f"the local model worker stopped during start-up (it {describe_exit(code)}; its error is in the "
            "log above); check KEFU_LOCAL_MODEL_PATH and KEFU_LOCAL_N_CTX, or reinstall with `make install`"
        )
    return ModelUnavailable(f"the local model worker failed its first generation: {cause}")


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdin is not None:
        proc.stdin.close()


def _watch_at_exit(supervisor: WorkerSupervisor) -> None:
    if not _LIVE:
        atexit.unregister(_stop_all)
        atexit.register(_stop_all)
    _LIVE.add(supervisor)


def _stop_all() -> None:
    for supervisor in list(_LIVE):
        supervisor.stop()


class _WorkerClient(OpenAICompatModel):
    """The OpenAI-compatible client, with errors worded for the local worker."""

    def _model_error(self, exc: openai.OpenAIError) -> ModelError:
        if isinstance(exc, openai.APITimeoutError):
            return ModelError(
                f"the local model gave no reply within {self.timeout:g} s; raise KEFU_LLM_TIMEOUT, lower "
                "KEFU_LLM_MAX_TOKENS, or use a faster model server (KEFU_LLM=openai)"
            )
        if isinstance(exc, openai.APIStatusError):
            error = exc.body.get("error") if isinstance(exc.body, dict) else None
            detail = error.get("message") if isinstance(error, dict) else None
            return ModelError(f"the local model failed: {detail or exc.message}")
        return ModelError(f"the local model worker is not answering ({type(exc).__name__}: {exc})")


class LocalWorkerModel(ChatModel):
    """The bundled (or ``KEFU_LOCAL_MODEL_PATH``) GGUF in a supervised worker process.

    Construction is cheap and checks only that llama-cpp-python is installed; ``check()`` starts the
    worker and returns once it answered a real generation (``ModelUnavailable`` otherwise)."""

    def __init__(self, config: WorkerConfig, *, timeout: float = 20.0) -> None:
        if importlib.util.find_spec("llama_cpp") is None:
            raise ModelUnavailable(
                f"the local model needs llama-cpp-python, which is not installed; {INSTALL_HINT}"
            )
        self.supervisor = WorkerSupervisor(config)
        self.name = self.supervisor.name
        self.timeout = timeout
        self._client: _WorkerClient | None = None
        self._client_key: tuple[int, int] = (0, 0)  # (worker generation, event loop id)

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalWorkerModel:
        return cls(WorkerConfig.from_settings(settings), timeout=settings.llm_timeout)

    def readiness(self) -> tuple[bool, str]:
        return self.supervisor.readiness()

    async def check(self) -> None:
        await asyncio.to_thread(self.supervisor.start)

    async def complete(self, request: ChatRequest) -> Reply:
        client = await self._current_client()
        try:
            reply = await client.complete(request)
        except ModelError as exc:
            raise await self._failure(exc) from exc
        reply.model = self.name
        return reply

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        client = await self._current_client()
        try:
            async for chunk in client.stream(request):
                yield chunk
        except (ModelError, httpx.HTTPError) as exc:
            raise await self._failure(exc) from exc

    async def aclose(self) -> None:
        if self._client is not None:
            with contextlib.suppress(RuntimeError):  # made under another event loop
                await self._client.aclose()
            self._client = None
        await asyncio.to_thread(self.supervisor.stop)

    async def _current_client(self) -> _WorkerClient:
        """The client for the worker now running; ``ModelError`` at once while it is down."""
        ready, detail = self.supervisor.readiness()
        if not ready:
            raise ModelError(f"the local model is not available: {detail}")
        key = (self.supervisor.generation, id(asyncio.get_running_loop()))
        if self._client is None or key != self._client_key:
            if self._client is not None and key[1] == self._client_key[1]:
                await self._client.aclose()
            self._client = _WorkerClient(
                self.supervisor.base_url,
                self.supervisor.token,
                self.name,
                timeout=self.timeout,
                max_retries=0,
            )
            self._client_key = key
        return self._client

    async def _failure(self, exc: BaseException) -> ModelError:
        """The error to raise; a broken connection waits up to 1 s to learn whether the worker died."""
        ready, detail = self.supervisor.readiness()
        broken = not isinstance(exc, ModelError) or "not answering" in exc.message
        for _ in range(20 if broken else 0):
            if not ready:
                break
            await asyncio.sleep(0.05)
            ready, detail = self.supervisor.readiness()
        if not ready:
            return ModelError(f"the local model stopped during the request: {detail}")
        if isinstance(exc, ModelError):
            return exc
        return ModelError(f"the local model worker broke the connection ({type(exc).__name__}: {exc})")
