"""Circuit breakers around every external dependency: the model endpoints (``kefu.llm.breaker``), the
embeddings and rerank endpoints, the order system (ERP) and the credit API.

``CircuitBreaker`` is a small state machine:

    closed     calls go through; each outcome is kept for ``window`` seconds. When at least
               ``min_calls`` outcomes are in the window and ``failure_rate`` of them failed → open.
    open       calls fail at once (``BreakerOpen``, naming the dependency and when it is tried again)
               for ``cooldown`` seconds — no waiting for a timeout, so the caller's fallback (the
               next model, BM25 only, the fused order, "offer a human") answers at once.
    half-open  after the cool-down, ONE trial call goes through (others still fail at once):
               success → closed (the window starts empty), failure → open for another cool-down.

Every state change is one log line (``circuit breaker NAME: closed → open (why …)``). The clock is
injected (tests). ``guard(call)`` runs a synchronous call through the breaker; the async model
wrapper is ``kefu.llm.breaker.BreakerModel``.

Shared state (``RedisBreakerState``, with ``KEFU_REDIS_URL``): a replica that opens a breaker writes
``kefu:breaker:<name>@<url>`` with the reason and a PX expiry of the cool-down; the other replicas read it
(at most once a second per breaker) and open too, for what is left of it, so one replica's failures
keep every replica off the failing dependency. Failure counting stays per replica. Redis down → each
replica decides alone, with one warning line, and Redis is tried again every 30 s.

Why not a library: ``pybreaker``/``aiobreaker`` and ``circuitbreaker`` open after N *consecutive*
failures (not a failure rate over a window), wrap functions rather than async generators (a model
stream fails after its first piece, and only its end is a success), read the real clock, and
``aiobreaker``'s Redis storage is synchronous and keeps the whole state in Redis (every call a round
trip). The machine below is ~150 lines and the same object guards sync HTTP clients and async streams.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, overload

from kefu.errors import KefuError

if TYPE_CHECKING:
    from kefu.config import Settings

log = logging.getLogger("kefu.breakers")

State = Literal["closed", "open", "half-open"]
T = TypeVar("T")
B = TypeVar("B", bound="CircuitBreaker")
SYNC_SECONDS = 1.0  # how often a breaker reads the shared state (Redis)


class BreakerOpen(KefuError):
    """The call was refused at once: the dependency's breaker is open (or its trial call is running)."""

    code = "dependency_unavailable"
    status = 503


class SharedBreakerState(Protocol):
    """Where replicas tell each other that a breaker opened (``RedisBreakerState``)."""

    def publish_open(self, name: str, seconds: float, why: str) -> None: ...

    def open_for(self, name: str) -> tuple[float, str] | None:
        """(seconds left, why) when another replica holds ``name`` open, else None."""
        ...


class CircuitBreaker:
    kind = "service"  # the word before the name in a refusal ("model" for model endpoints)
    error: type[Exception] = BreakerOpen  # what ``acquire`` raises (the model breaker: a ModelError)
    logger = log

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
        shared: SharedBreakerState | None = None,
        shared_key: str = "",
        fallback: str = "",
    ) -> None:
        if not 0 < failure_rate <= 1:
            raise ValueError(f"failure_rate must be in (0, 1], got {failure_rate}")
        self.name = name
        self.failure_rate = failure_rate
        self.min_calls = max(1, min_calls)
        self.window = window
        self.cooldown = cooldown
        self.clock = clock
        self.shared = shared
        self.shared_key = shared_key or name  # the dependency's identity between replicas (name@url)
        self.fallback = fallback  # what the callers do meanwhile, for the log line ("BM25 only" …)
        self._wall_clock = wall_clock
        self._state: State = "closed"
        self._outcomes: deque[tuple[float, bool]] = deque()  # (time, failed)
        self._opened_at = 0.0
        self._open_for = cooldown  # this opening's length (another replica's may be shorter)
        self._trial_running = False
        self._last_error = ""
        self._next_sync = float("-inf")

    @property
    def state(self) -> State:
        if self._state == "open" and self.clock() - self._opened_at >= self._open_for:
            self._change("half-open", "cool-down over; the next call is a trial")
        return self._state

    def acquire(self) -> None:
        """Before a call: raise ``self.error`` when the call must not go through."""
        self._sync()
        state = self.state
        if state == "open":
            raise self.error(
                f"{self.kind} {self.name} is not called: its circuit breaker is {self.describe()} "
                f"after {self._last_error or 'repeated failures'}; it is tried again when the cool-down ends"
            )
        if state == "half-open":
            if self._trial_running:
                raise self.error(
                    f"{self.kind} {self.name} is not called: its breaker's trial call is running"
                )
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

    def guard(self, call: Callable[[], T], failed: Callable[[BaseException], str | None]) -> T:
        """``call()`` through the breaker. ``failed(exc)`` says whether an exception counts against the
        dependency (a reason) or not (None: e.g. a 404 — the dependency answered)."""
        self.acquire()
        try:
            result = call()
        except BaseException as exc:
            reason = failed(exc)
            if reason is None:
                self.success()
            else:
                self.failure(reason)
            raise
        self.success()
        return result

    def describe(self) -> str:
        """``closed`` / ``open until 20:31:05Z (another 12 s)`` / ``half-open`` (for /readyz)."""
        state = self.state
        if state != "open":
            return state
        left = max(0.0, self._open_for - (self.clock() - self._opened_at))
        until = datetime.fromtimestamp(self._wall_clock(), UTC) + timedelta(seconds=left)
        return f"open until {until:%H:%M:%S}Z (another {left:.0f} s)"

    def _record(self, failed: bool) -> None:
        now = self.clock()
        self._outcomes.append((now, failed))
        while self._outcomes and now - self._outcomes[0][0] > self.window:
            self._outcomes.popleft()

    def _open(self, why: str) -> None:
        self._opened_at, self._open_for = self.clock(), self.cooldown
        self._outcomes.clear()
        meanwhile = f"; meanwhile {self.fallback}" if self.fallback else ""
        self._change("open", f"{why}; calls fail at once for {self.cooldown:g} s{meanwhile}")
        if self.shared is not None:
            self.shared.publish_open(self.shared_key, self.cooldown, why)

    def _sync(self) -> None:
        """Open when another replica holds this breaker open (read at most every SYNC_SECONDS)."""
        if self.shared is None or self._state == "open" or self._trial_running:
            return
        now = self.clock()
        if now < self._next_sync:
            return
        self._next_sync = now + SYNC_SECONDS
        held = self.shared.open_for(self.shared_key)
        if held is None or held[0] <= 0:
            return
        left, why = held
        self._opened_at, self._open_for = now, left
        self._outcomes.clear()
        self._last_error = why
        self._change("open", f"opened by another replica: {why}; calls fail at once for {left:.0f} s")

    def _change(self, state: State, why: str) -> None:
        previous, self._state = self._state, state
        self.logger.log(
            logging.WARNING if state == "open" else logging.INFO,
            "circuit breaker %s: %s → %s (%s)",
            self.name,
            previous,
            state,
            why,
        )


class RedisBreakerState:
    """Open breakers shared through Redis: ``<prefix><name>`` = the reason, expiring with the cool-down.

    A Redis error (down, too slow: ``timeout``) makes every breaker decide locally: one warning line,
    another try after ``retry_seconds``, one line when it is back."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "kefu:breaker:",
        timeout: float = 0.2,
        retry_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        import redis

        self.prefix = prefix
        self.client: Any = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._errors = (redis.RedisError, OSError)
        self._retry_seconds = retry_seconds
        self._clock = clock
        self._down_until: float | None = None

    def publish_open(self, name: str, seconds: float, why: str) -> None:
        if self._usable():
            try:
                self.client.set(self.prefix + name, why[:500], px=max(1, int(seconds * 1000)))
            except self._errors as exc:
                self._down(exc)
            else:
                self._up()

    def open_for(self, name: str) -> tuple[float, str] | None:
        if not self._usable():
            return None
        try:
            with self.client.pipeline(transaction=False) as pipe:
                why, left_ms = pipe.get(self.prefix + name).pttl(self.prefix + name).execute()
        except self._errors as exc:
            self._down(exc)
            return None
        self._up()
        if why is None or left_ms is None or left_ms <= 0:
            return None
        text = why.decode(errors="replace") if isinstance(why, bytes) else str(why)
        return left_ms / 1000, text

    def close(self) -> None:
        self.client.close()

    def _usable(self) -> bool:
        return self._down_until is None or self._clock() >= self._down_until

    def _down(self, exc: BaseException) -> None:
        if self._down_until is None:
            log.warning(
                "circuit breakers: Redis at KEFU_REDIS_URL is unavailable (%s); each replica opens its "
                "breakers on its own failures until it is back (tried again every %.0f s)",
                exc,
                self._retry_seconds,
            )
        self._down_until = self._clock() + self._retry_seconds

    def _up(self) -> None:
        if self._down_until is not None:
            log.info("circuit breakers: Redis is back; open breakers are shared between replicas again")
            self._down_until = None


def find_breaker(obj: object) -> CircuitBreaker | None:
    """The breaker guarding a client: its ``breaker``, or that of what it wraps (``inner``)."""
    for _ in range(4):
        if obj is None:
            return None
        breaker = getattr(obj, "breaker", None)
        if isinstance(breaker, CircuitBreaker):
            return breaker
        obj = getattr(obj, "inner", None)
    return None


@functools.cache
def shared_state(redis_url: str) -> RedisBreakerState | None:
    """One shared-state client per process and Redis URL (nothing connects until a breaker asks)."""
    return RedisBreakerState(redis_url) if redis_url else None


@overload
def breaker_for(settings: Settings, name: str, url: str, *, fallback: str = "") -> CircuitBreaker: ...


@overload
def breaker_for(settings: Settings, name: str, url: str, *, fallback: str = "", kind: type[B]) -> B: ...


def breaker_for(
    settings: Settings, name: str, url: str, *, fallback: str = "", kind: type[B] | None = None
) -> Any:
    """A breaker (``kind``: this class or a subclass) for the dependency at ``url`` with the KEFU_BREAKER_*
    settings, shared through KEFU_REDIS_URL when it is set (as ``name@url``: two shops on one Redis, or
    two ERPs, never share an opening; "" when the name already says where, as a model's does)."""
    cls: Any = kind or CircuitBreaker
    return cls(
        name,
        failure_rate=settings.breaker_failure_rate,
        min_calls=settings.breaker_min_calls,
        window=settings.breaker_window_seconds,
        cooldown=settings.breaker_cooldown_seconds,
        shared=shared_state(settings.redis_url),
        shared_key=f"{name}@{url}" if url else name,
        fallback=fallback,
    )
