"""Circuit breakers around the model seam, and the fallback chain of models.

``CircuitBreaker`` is a small state machine:

    closed     calls go through; each outcome is kept for ``window`` seconds. When at least
               ``min_calls`` outcomes are in the window and ``failure_rate`` of them failed → open.
    open       calls fail at once (``BreakerOpen``, a ``ModelError``) for ``cooldown`` seconds — no
               waiting for a timeout, so the orchestrator's fallback answers at once.
    half-open  after the cool-down, ONE trial call goes through (others still fail at once):
               success → closed (the window starts empty), failure → open for another cool-down.

Every state change is logged in one line (``kefu.llm.breaker``). The clock is injected (tests).

``BreakerModel(model, breaker, timeout)`` wraps any ``ChatModel`` (an OpenAI-compatible endpoint, the
local worker): a per-call timeout (a stream: the whole stream), every failure — ``ModelError``, a
timeout, or any other exception of the backend such as a connection cut mid-stream — counts
against the breaker and reaches the caller as a ``ModelError``. A stream the caller stops early
counts as a success if a piece arrived, else as nothing.

``FallbackChain([primary, secondary, …])`` tries the models in order (each normally a
``BreakerModel``); when all fail it raises ``ModelError`` and the orchestrator sends the knowledge
base's own sentences or the polite fallback reply. A stream switches to the next model only if the
failing one had sent nothing yet.

Why not a library: ``pybreaker``/``aiobreaker`` and ``circuitbreaker`` open after N *consecutive*
failures (not a failure rate over a window), wrap functions rather than async generators (a stream
fails after its first piece, and only the end of it is a success), read the real clock, and
``aiobreaker``'s shared (Redis) state is not async. The machine is ~100 lines, its state is one
object that could be moved to Redis later (several replicas sharing one breaker) without changing
its callers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Literal

from kefu.errors import ModelError
from kefu.llm.base import ChatModel, ChatRequest, Reply, StreamChunk

log = logging.getLogger(__name__)

State = Literal["closed", "open", "half-open"]


class BreakerOpen(ModelError):
    """The call was refused at once: the breaker is open (or its one trial call is in flight)."""


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failure_rate: float = 0.5,
        min_calls: int = 4,
        window: float = 60.0,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 < failure_rate <= 1:
            raise ValueError(f"failure_rate must be in (0, 1], got {failure_rate}")
        self.name = name
        self.failure_rate = failure_rate
        self.min_calls = max(1, min_calls)
        self.window = window
        self.cooldown = cooldown
        self.clock = clock
        self._wall_clock = wall_clock
        self._state: State = "closed"
        self._outcomes: deque[tuple[float, bool]] = deque()  # (time, failed)
        self._opened_at = 0.0
        self._trial_running = False
        self._last_error = ""

    @property
    def state(self) -> State:
        if self._state == "open" and self.clock() - self._opened_at >= self.cooldown:
            self._change("half-open", "cool-down over; the next call is a trial")
        return self._state

    def acquire(self) -> None:
        """Before a call: raise ``BreakerOpen`` when the call must not go through."""
        state = self.state
        if state == "open":
            raise BreakerOpen(
                f"model {self.name} is not called: its circuit breaker is {self.describe()} "
                f"after {self._last_error or 'repeated failures'}"
            )
        if state == "half-open":
            if self._trial_running:
                raise BreakerOpen(f"model {self.name} is not called: its breaker's trial call is running")
            self._trial_running = True

    def success(self) -> None:
        if self._state == "half-open":
            self._trial_running = False
            self._outcomes.clear()
            self._change("closed", "the trial call succeeded")
        elif self._state == "closed":
            self._record(False)

    def failure(self, error: str) -> None:
        self._last_error = error
        if self._state == "half-open":
            self._trial_running = False
            self._open(f"the trial call failed: {error}")
            return
        if self._state == "open":
            return
        self._record(True)
        calls = len(self._outcomes)
        failed = sum(1 for _, bad in self._outcomes if bad)
        if calls >= self.min_calls and failed / calls >= self.failure_rate:
            self._open(f"{failed} of {calls} calls failed in {self.window:g} s; last: {error}")

    def release(self) -> None:
        """The call ended with no verdict (cancelled before any answer): free the trial slot."""
        self._trial_running = False

    def describe(self) -> str:
        """``closed`` / ``open until 20:31:05Z (another 12 s)`` / ``half-open`` (for /readyz)."""
        state = self.state
        if state != "open":
            return state
        left = max(0.0, self.cooldown - (self.clock() - self._opened_at))
        until = datetime.fromtimestamp(self._wall_clock(), UTC) + timedelta(seconds=left)
        return f"open until {until:%H:%M:%S}Z (another {left:.0f} s)"

    def _record(self, failed: bool) -> None:
        now = self.clock()
        self._outcomes.append((now, failed))
        while self._outcomes and now - self._outcomes[0][0] > self.window:
            self._outcomes.popleft()

    def _open(self, why: str) -> None:
        self._opened_at = self.clock()
        self._outcomes.clear()
        self._change("open", f"{why}; calls fail at once for {self.cooldown:g} s")

    def _change(self, state: State, why: str) -> None:
        previous, self._state = self._state, state
        log.log(
            logging.WARNING if state == "open" else logging.INFO,
            "circuit breaker %s: %s → %s (%s)",
            self.name,
            previous,
            state,
            why,
        )


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
        self.supports_tools = all(m.supports_tools for m in models)

    def describe(self) -> str:
        return self.models[0].describe()

    async def complete(self, request: ChatRequest) -> Reply:
        errors: list[str] = []
        for model in self.models:
            try:
                return await model.complete(request)
            except ModelError as exc:
                errors.append(str(exc))
                self._next(model, exc)
        raise ModelError(_all_failed(errors))

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        errors: list[str] = []
        for model in self.models:
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

    def _next(self, model: ChatModel, exc: ModelError) -> None:
        if model is not self.models[-1]:
            log.warning("model %s failed, trying the next in the fallback chain: %s", model.describe(), exc)

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


def breakers_of(model: ChatModel | None) -> list[CircuitBreaker]:
    """The circuit breakers inside ``model`` (a ``BreakerModel`` or a ``FallbackChain``), in order."""
    if isinstance(model, BreakerModel | FallbackChain):
        return model.breakers()
    return []


def _all_failed(errors: list[str]) -> str:
    if len(errors) == 1:
        return errors[0]
    return f"all {len(errors)} models of the fallback chain failed: " + " | ".join(errors)
