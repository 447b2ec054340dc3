"""Circuit breakers around the model seam, and the fallback chain of models.

The state machine is ``kefu.breakers.CircuitBreaker`` (closed / open / half-open over a failure-rate
window, injected clock, one log line per change, open state shared between replicas through Redis);
here its refusals are ``BreakerOpen``, a ``ModelError``, so every caller's model fallback applies.

``BreakerModel(model, breaker, timeout)`` wraps any ``ChatModel`` (an OpenAI-compatible endpoint, the
local worker): a per-call timeout (a stream: the whole stream), every failure — ``ModelError``, a
timeout, or any other exception of the backend such as a connection cut mid-stream — counts
against the breaker and reaches the caller as a ``ModelError``. A stream the caller stops early
counts as a success if a piece arrived, else as nothing.

``FallbackChain([primary, secondary, local …])`` tries the models in order (each normally a
``BreakerModel``); when all fail it raises ``ModelError`` and the orchestrator sends the knowledge
base's own sentences (FAQ, cited extract) or the polite fallback reply offering a human. A stream
switches to the next model only if the failing one had sent nothing yet.

``LazyLocalModel`` is the chain's last model step (KEFU_LLM_FALLBACK_LOCAL): the bundled local model,
started in the background the first time it is needed — that call fails at once (the customer gets
the knowledge base's reply, not a wait for a model load) and later calls use it once it is ready.

Why not a library: see ``kefu.breakers``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import TYPE_CHECKING

from kefu import breakers
from kefu.errors import ModelError
from kefu.llm.base import ChatModel, ChatRequest, Reply, StreamChunk

if TYPE_CHECKING:
    from kefu.llm.supervisor import LocalWorkerModel

log = logging.getLogger(__name__)

State = breakers.State


class BreakerOpen(ModelError, breakers.BreakerOpen):
    """The call was refused at once: the breaker is open (or its one trial call is in flight)."""


class CircuitBreaker(breakers.CircuitBreaker):
    """A model endpoint's breaker: its refusals are ``ModelError``s (the orchestrator falls back)."""

    kind = "model"
    error = BreakerOpen
    logger = log


class BreakerModel(ChatModel):
    """``model`` behind ``breaker``, each call bounded by ``timeout`` seconds."""

    def __init__(self, model: ChatModel, breaker: CircuitBreaker, timeout: float) -> None:
        self.model = model
        self.breaker = breaker
        self.timeout = timeout
        self.name = model.name
        self.supports_tools = model.supports_tools

    def describe(self) -> str:
        return self.model.describe()

    async def complete(self, request: ChatRequest) -> Reply:
        self.breaker.acquire()
        try:
            async with asyncio.timeout(self.timeout):
                reply = await self.model.complete(request)
        except asyncio.CancelledError:
            self.breaker.release()
            raise
        except Exception as exc:
            raise self._failed(exc) from exc
        self.breaker.success()
        return reply

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        self.breaker.acquire()
        deadline = asyncio.get_running_loop().time() + self.timeout
        pieces = self.model.stream(request)
        received = False
        try:
            while True:
                left = deadline - asyncio.get_running_loop().time()
                try:
                    chunk = await asyncio.wait_for(anext(pieces), timeout=max(left, 0.0))
                except StopAsyncIteration:
                    break
                except (asyncio.CancelledError, GeneratorExit):
                    raise
                except Exception as exc:
                    raise self._failed(exc) from exc
                received = True
                yield chunk
        except (asyncio.CancelledError, GeneratorExit):  # the caller stopped reading
            if received and self.breaker.state != "open":
                self.breaker.success()
            else:
                self.breaker.release()
            raise
        finally:
            if isinstance(pieces, AsyncGenerator):
                await pieces.aclose()
        self.breaker.success()

    def _failed(self, exc: BaseException) -> ModelError:
        if isinstance(exc, TimeoutError):
            error = f"no reply within {self.timeout:g} s (KEFU_LLM_TIMEOUT)"
        elif isinstance(exc, ModelError):
            error = str(exc)
        else:
            error = f"{type(exc).__name__}: {exc}"
        self.breaker.failure(error)
        if isinstance(exc, ModelError):
            return exc
        return ModelError(f"model call to {self.describe()} failed: {error}")

    async def check(self) -> None:
        check = getattr(self.model, "check", None)
        if check is not None:
            await check()

    def readiness(self) -> tuple[bool, str]:
        readiness = getattr(self.model, "readiness", None)
        return readiness() if readiness is not None else (True, self.describe())

    def breakers(self) -> list[CircuitBreaker]:
        return [self.breaker]

    async def aclose(self) -> None:
        await self.model.aclose()


class FallbackChain(ChatModel):
    """The models in order: the first that answers wins; ``ModelError`` when every one failed."""

    def __init__(self, models: list[ChatModel]) -> None:
        if not models:
            raise ValueError("a fallback chain needs at least one model")
        self.models = models
        self.name = models[0].name
        self.supports_tools = models[0].supports_tools  # a request with tools skips models without

    def describe(self) -> str:
        return self.models[0].describe()

    async def complete(self, request: ChatRequest) -> Reply:
        errors: list[str] = []
        for model in self._models_for(request):
            try:
                return await model.complete(request)
            except ModelError as exc:
                errors.append(str(exc))
                self._next(model, exc)
        raise ModelError(_all_failed(errors))

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        errors: list[str] = []
        for model in self._models_for(request):
            sent = False
            try:
                async for chunk in model.stream(request):
                    sent = True
                    yield chunk
                return
            except ModelError as exc:
                if sent:  # part of this model's reply is out: another model cannot continue it
                    raise
                errors.append(str(exc))
                self._next(model, exc)
        raise ModelError(_all_failed(errors))

    def _models_for(self, request: ChatRequest) -> list[ChatModel]:
        """Every model; for a function-calling request only those that can call functions."""
        if not request.tools:
            return self.models
        return [m for m in self.models if m.supports_tools] or self.models[:1]

    def _next(self, model: ChatModel, exc: ModelError) -> None:
        if model is not self.models[-1]:  # an open breaker logged itself once when it opened
            level = logging.DEBUG if isinstance(exc, BreakerOpen) else logging.WARNING
            log.log(
                level, "model %s failed, trying the next in the fallback chain: %s", model.describe(), exc
            )

    async def check(self) -> None:
        check = getattr(self.models[0], "check", None)
        if check is not None:
            await check()

    def readiness(self) -> tuple[bool, str]:
        readiness = getattr(self.models[0], "readiness", None)
        ready, detail = readiness() if readiness is not None else (True, self.models[0].describe())
        return ready, f"{detail} (fallback: {', '.join(m.describe() for m in self.models[1:])})"

    def breakers(self) -> list[CircuitBreaker]:
        return [b for m in self.models for b in breakers_of(m)]

    async def aclose(self) -> None:
        for model in self.models:
            await model.aclose()


class LazyLocalModel(ChatModel):
    """The local model as the chain's last step: started in a background thread the first time it is
    needed (it costs ~0.6 GB of RAM and the CPU while loading), so that call fails at once and the
    customer gets the knowledge base's reply; later calls use it once its worker answered its probe.
    A start that fails is logged and tried again on a need ``retry_after`` seconds later."""

    supports_tools = False

    def __init__(self, start: Callable[[], LocalWorkerModel], *, retry_after: float = 60.0) -> None:
        self._start_model = start
        self._retry_after = retry_after
        self._model: LocalWorkerModel | None = None
        self._thread: threading.Thread | None = None
        self._failed_at: float | None = None
        self._error = ""
        self._closed = False
        self.name = "local-fallback"

    def describe(self) -> str:
        if self._model is not None:
            return self._model.describe()
        if self._thread is not None:
            return "the local model (starting)"
        if self._error:
            return f"the local model (start failed: {self._error})"
        return "the local model (started when first needed)"

    async def complete(self, request: ChatRequest) -> Reply:
        return await self._ready().complete(request)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        async for chunk in self._ready().stream(request):
            yield chunk

    def _ready(self) -> LocalWorkerModel:
        model = self._model
        if model is not None:
            return model  # a worker restarting after a crash fails fast in LocalWorkerModel itself
        if self._thread is None and not self._closed and self._may_retry():
            log.info("starting the local fallback model in the background (first needed now)")
            self._thread = threading.Thread(target=self._load, name="kefu-local-fallback", daemon=True)
            self._thread.start()
        why = f"its start failed: {self._error}" if self._error and self._thread is None else "it is starting"
        raise ModelError(
            f"the local fallback model is not ready yet ({why}); answered from the knowledge base"
        )

    def _may_retry(self) -> bool:
        return self._failed_at is None or time.monotonic() - self._failed_at >= self._retry_after

    def _load(self) -> None:
        try:
            model = self._start_model()
            model.supervisor.start()  # blocking: joins/verifies the weights, loads, answers a probe
        except Exception as exc:
            self._error, self._failed_at = str(exc), time.monotonic()
            log.warning("the local fallback model could not start: %s; tried again when next needed", exc)
            self._thread = None
            return
        if self._closed:
            model.supervisor.stop()
        else:
            self._model, self._error = model, ""
        self._thread = None

    async def aclose(self) -> None:
        self._closed = True
        thread = self._thread
        if thread is not None:
            await asyncio.to_thread(thread.join, 130)
        if self._model is not None:
            await self._model.aclose()
            self._model = None


def breakers_of(model: ChatModel | None) -> list[CircuitBreaker]:
    """The circuit breakers inside ``model`` (a ``BreakerModel``, a ``FallbackChain`` or anything with a
    ``breakers()`` method, such as a routed model), in order."""
    if isinstance(model, BreakerModel | FallbackChain):
        return model.breakers()
    found = getattr(model, "breakers", None)
    return list(found()) if callable(found) else []


def _all_failed(errors: list[str]) -> str:
    if len(errors) == 1:
        return errors[0]
    return f"all {len(errors)} models of the fallback chain failed: " + " | ".join(errors)
