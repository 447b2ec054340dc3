"""A GGUF file run by llama.cpp (``llama-cpp-python``) in this process: the generating part of the
local model's worker process (``kefu.llm.worker``; the web server talks to it through
``kefu.llm.supervisor``, so a llama.cpp crash never takes the server down).

By default the bundled Qwen2.5-Coder-0.5B-Instruct Q4_K_M (joined and verified by
``kefu.llm.weights``); ``KEFU_LOCAL_MODEL_PATH`` loads any other GGUF. The prompt is built by the
GGUF's own chat template.

* Each file is loaded once per process (``_LOADED``, keyed by path, context size and threads).
* All generation runs on one worker thread (``_WORKER``), never on the event loop. Concurrent
  requests queue there in arrival order instead of sharing the (non-thread-safe) llama context.
* ``stream`` runs the llama stream iterator on that thread and hands pieces to the event loop through
  an ``asyncio.Queue``; if the consumer stops early (client gone, timeout) generation stops at the
  next token.
* Usage: ``complete`` reports llama's own counts; ``stream`` (llama.cpp sends none while streaming)
  counts the generated text with the model's tokenizer and the prompt as the context length minus
  that, which can be off by one token when ``max_tokens`` cut the reply.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import os
import sys
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from kefu.config import Settings
from kefu.errors import ModelError, ModelUnavailable
from kefu.llm.base import ChatModel, ChatRequest, Reply, StreamChunk, Usage
from kefu.llm.weights import INSTALL_HINT, bundled_model_path, check_user_gguf

_WORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kefu-llama")
_LOADED: dict[tuple[Path, int, int], Any] = {}
_LOAD_LOCK = threading.Lock()


@functools.cache
def require_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError:
        raise ModelUnavailable(
            f"the local model needs llama-cpp-python, which is not installed; {INSTALL_HINT}"
        ) from None
    _close_devnull_at_exit()
    return llama_cpp


def _close_devnull_at_exit() -> None:
    """llama_cpp opens two /dev/null files at import and never closes them (a ResourceWarning at exit)."""
    utils = sys.modules.get("llama_cpp._utils")
    for name in ("outnull_file", "errnull_file"):
        handle = getattr(utils, name, None)
        if handle is not None:
            atexit.register(handle.close)


def default_threads() -> int:
    """Cores available to this process minus one (for embeddings and the web process), at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


@dataclass(frozen=True)
class LocalModelConfig:
    model_path: Path | None  # None → the bundled model
    cache_dir: Path
    n_ctx: int = 4096
    n_threads: int = 0  # 0 → default_threads()


class LocalModel(ChatModel):
    """A GGUF model in this process. Construction is cheap; ``check()`` (or the first call) loads it.

    Raises ``ModelUnavailable`` at once when llama-cpp-python is not installed."""

    def __init__(
        self, model_path: Path | None = None, *, cache_dir: Path, n_ctx: int = 4096, n_threads: int = 0
    ) -> None:
        require_llama_cpp()
        self.config = config = LocalModelConfig(model_path, cache_dir, n_ctx, n_threads)
        label = config.model_path.name if config.model_path else "qwen2.5-coder-0.5b-instruct-q4_k_m"
        self.name = f"local:{label}"
        self._llama: Any = None

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalModel:
        return cls(
            settings.local_model_path,
            cache_dir=settings.cache_dir,
            n_ctx=settings.local_n_ctx,
            n_threads=settings.local_threads,
        )

    async def check(self) -> None:
        """Join/verify the weights and load them (start-up); raises ``ModelUnavailable``."""
        await self._loaded()

    async def complete(self, request: ChatRequest) -> Reply:
        llama = await self._loaded()
        response = await _run(partial(llama.create_chat_completion, **self._params(request)), self.config)
        choice = response["choices"][0]
        usage = response.get("usage") or {}
        return Reply(
            text=choice["message"].get("content") or "",
            model=self.name,
            usage=Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)),
            finish_reason=choice.get("finish_reason") or "stop",
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        llama = await self._loaded()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()

        def emit(item: tuple[str, Any]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody is listening
                loop.call_soon_threadsafe(queue.put_nowait, item)

        job = partial(_stream_job, llama, self._params(request), emit, stop)
        future = loop.run_in_executor(_WORKER, job)
        try:
            while True:
                kind, value = await queue.get()
                if kind == "text":
                    yield StreamChunk(text=value)
                elif kind == "error":
                    raise _model_error(value, self.config) from value
                else:
                    yield StreamChunk(text="", usage=value[0], finish_reason=value[1])
                    break
        finally:
            stop.set()
            if not future.done():
                future.cancel()  # still queued behind another request: never runs

    async def _loaded(self) -> Any:
        if self._llama is None:
            self._llama = await asyncio.get_running_loop().run_in_executor(_WORKER, load_llama, self.config)
        return self._llama

    def _params(self, request: ChatRequest) -> dict[str, Any]:
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        return {
            "messages": messages,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "stop": list(request.stop),
            # Small models loop on a phrase without it (seen: the same sentence ten times over).
            "repeat_penalty": 1.15,
        }


def load_llama(config: LocalModelConfig) -> Any:
    """The loaded ``llama_cpp.Llama`` for ``config``, loading (and verifying) it once per process."""
    llama_cpp = require_llama_cpp()
    if config.model_path is not None:
        path = check_user_gguf(config.model_path)
    else:
        path = bundled_model_path(config.cache_dir)
    threads = config.n_threads or default_threads()
    key = (path.resolve(), config.n_ctx, threads)
    with _LOAD_LOCK:
        if key not in _LOADED:
            if not _LOADED:
                atexit.register(_close_all)
            _LOADED[key] = _open(llama_cpp, path, config.n_ctx, threads)
        return _LOADED[key]


def _close_all() -> None:
    """Free the models before interpreter shutdown (``Llama.__del__`` fails once llama_cpp is torn down)."""
    with _LOAD_LOCK:
        for llama in _LOADED.values():
            llama.close()
        _LOADED.clear()


def _open(llama_cpp: Any, path: Path, n_ctx: int, threads: int) -> Any:
    try:
        return llama_cpp.Llama(
            model_path=str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, verbose=False
        )
    except (ValueError, RuntimeError, OSError) as exc:
        raise ModelUnavailable(
            f"llama.cpp could not load {path} ({exc}); check that it is a complete GGUF model "
            "(KEFU_LOCAL_MODEL_PATH) and that KEFU_LOCAL_N_CTX fits in memory"
        ) from exc


async def _run(job: Callable[[], Any], config: LocalModelConfig) -> Any:
    try:
        return await asyncio.get_running_loop().run_in_executor(_WORKER, job)
    except Exception as exc:
        raise _model_error(exc, config) from exc


def _stream_job(
    llama: Any, params: dict[str, Any], emit: Callable[[tuple[str, Any]], None], stop: threading.Event
) -> None:
    """Runs on the worker thread: generate, emitting ("text", piece)… then ("end", (usage, finish))."""
    if stop.is_set():
        return
    try:
        chunks = llama.create_chat_completion(**params, stream=True)
        text, finish = "", "stop"
        for chunk in chunks:
            if stop.is_set():
                chunks.close()
                return
            choice = chunk["choices"][0]
            piece = choice["delta"].get("content")
            if piece:
                text += piece
                emit(("text", piece))
            finish = choice.get("finish_reason") or finish
        emit(("end", (_stream_usage(llama, text), finish)))
    except Exception as exc:
        emit(("error", exc))


def _stream_usage(llama: Any, text: str) -> Usage:
    completion = len(llama.tokenize(text.encode("utf-8"), add_bos=False, special=False)) if text else 0
    return Usage(prompt_tokens=max(0, llama.n_tokens - completion), completion_tokens=completion)


def _model_error(exc: BaseException, config: LocalModelConfig) -> ModelError:
    if isinstance(exc, ModelError):
        return exc
    message = str(exc)
    if "exceed context window" in message:
        return ModelError(
            f"the prompt does not fit the local model's context ({message}); raise KEFU_LOCAL_N_CTX "
            f"(now {config.n_ctx}) or lower KEFU_SESSION_WINDOW_TURNS / KEFU_RETRIEVAL_TOP_K"
        )
    return ModelError(f"the local model failed: {type(exc).__name__}: {message}")
