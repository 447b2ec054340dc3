"""Token-bucket rate limits in front of the HTTP API.

One seam: ``RateLimiter.acquire_all(buckets) -> (refused, Decision)`` takes one token from every bucket
or from none (``acquire(key, rate, burst)`` is the one-bucket case). ``MemoryRateLimiter`` keeps the
buckets in this process; ``RedisRateLimiter`` keeps them in Redis — all of a request's buckets checked
and taken by one atomic Lua script, one round trip, on Redis's clock — so several replicas enforce one
limit, and falls back to the in-process buckets — with one warning line — while Redis cannot be reached.
``RateLimits`` is the pure ASGI middleware: each request takes a token from its client's bucket (per
channel), its conversation's (the native API's path, or the OpenAI endpoint's ``X-Kefu-Session``) and
the global one; the first bucket in that order that is empty answers 429 with ``Retry-After``, and then
no bucket gives a token. Health checks, static files and the HTML pages are not limited.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from kefu.config import Settings

log = logging.getLogger("kefu.ratelimit")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: float = 0.0  # seconds until one token is back (0 when allowed)


@dataclass(frozen=True)
class Limit:
    rate: float  # tokens added per second
    burst: int  # bucket size


Bucket = tuple[str, float, int]  # key, rate (tokens per second), burst (bucket size)
ALLOWED = (-1, Decision(True))


class RateLimiter(Protocol):
    async def acquire(self, key: str, rate: float, burst: int) -> Decision: ...

    async def acquire_all(self, buckets: Sequence[Bucket]) -> tuple[int, Decision]:
        """One token from each bucket, or none at all: ``(-1, allowed)``, or the index of the first
        bucket that is empty and its refusal (with the seconds until it has a token again)."""
        ...

    async def aclose(self) -> None: ...


class MemoryRateLimiter:
    """Buckets in a dict (LRU-bounded, so a flood of distinct clients cannot grow it without end)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key → (tokens, at)

    def take(self, key: str, rate: float, burst: int) -> Decision:
        return self.take_all([(key, rate, burst)])[1]

    def take_all(self, buckets: Sequence[Bucket]) -> tuple[int, Decision]:
        now = self._clock()
        levels = []
        for index, (key, rate, burst) in enumerate(buckets):
            tokens, at = self._buckets.get(key, (float(burst), now))
            tokens = min(float(burst), tokens + max(0.0, now - at) * rate)
            if tokens < 1.0:  # refused: no bucket gives a token
                return index, Decision(False, (1.0 - tokens) / rate)
            levels.append(tokens)
        for (key, _, _), tokens in zip(buckets, levels, strict=True):
            self._buckets.pop(key, None)
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        return ALLOWED

    async def acquire(self, key: str, rate: float, burst: int) -> Decision:
        return self.take(key, rate, burst)

    async def acquire_all(self, buckets: Sequence[Bucket]) -> tuple[int, Decision]:
        return self.take_all(buckets)

    async def aclose(self) -> None:
        return None


# KEYS = the buckets; ARGV = rate, burst of each in turn. Redis's own clock, so replicas with skewed
# clocks agree. Every bucket is checked before any is taken from: all or nothing, atomically. Returns
# {index of the first empty bucket (1-based; 0 = allowed), retry_after as a string} (Lua numbers become
# integers on the way out). The keys are several: one Redis (or keys in one Cluster slot), as elsewhere.
TOKEN_BUCKETS_LUA = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local levels = {}
for i = 1, #KEYS do
  local rate = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local state = redis.call('HMGET', KEYS[i], 'tokens', 'at')
  local tokens = tonumber(state[1])
  local at = tonumber(state[2])
  if tokens == nil or at == nil then tokens = burst; at = now end
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
  if tokens < 1 then return {i, tostring((1 - tokens) / rate)} end
  levels[i] = tokens
end
for i = 1, #KEYS do
  local rate = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  redis.call('HSET', KEYS[i], 'tokens', tostring(levels[i] - 1), 'at', tostring(now))
  redis.call('PEXPIRE', KEYS[i], math.ceil(burst / rate * 1000) + 1000)
end
return {0, '0'}
"""


class RedisRateLimiter:
    """Buckets in Redis under ``<prefix><key>``. While Redis is unreachable, too slow (0.5 s) or failing,
    the in-process buckets decide; Redis is tried again every ``retry_seconds``."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "kefu:ratelimit:",
        timeout: float = 0.5,
        retry_seconds: float = 5.0,
        fallback: MemoryRateLimiter | None = None,
    ) -> None:
        import redis.asyncio as redis

        self.prefix = prefix
        self.client: Any = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._script = self.client.register_script(TOKEN_BUCKETS_LUA)
        self._errors = (redis.RedisError, OSError)  # unreachable, too slow, out of memory, read-only …
        self.fallback = fallback or MemoryRateLimiter()
        self._retry_seconds = retry_seconds
        self._down_until: float | None = None  # monotonic time of the next try while Redis is down

    async def acquire(self, key: str, rate: float, burst: int) -> Decision:
        return (await self.acquire_all([(key, rate, burst)]))[1]

    async def acquire_all(self, buckets: Sequence[Bucket]) -> tuple[int, Decision]:
        if self._down_until is not None and time.monotonic() < self._down_until:
            return self.fallback.take_all(buckets)
        args: list[float] = []
        for _, rate, burst in buckets:
            args += [rate, burst]
        try:
            refused, retry = await self._script(keys=[self.prefix + key for key, _, _ in buckets], args=args)
        except self._errors as exc:
            if self._down_until is None:
                log.warning(
                    "rate limits: Redis at KEFU_REDIS_URL is unavailable (%s); limiting in this process "
                    "until it is back (each replica counts on its own meanwhile)",
                    exc,
                )
            self._down_until = time.monotonic() + self._retry_seconds
            return self.fallback.take_all(buckets)
        if self._down_until is not None:
            log.info("rate limits: Redis is back; limits are shared between replicas again")
            self._down_until = None
        return ALLOWED if int(refused) == 0 else (int(refused) - 1, Decision(False, float(retry)))

    async def aclose(self) -> None:
        await self.client.aclose()


def build_rate_limiter(redis_url: str) -> RateLimiter:
    """Redis when ``KEFU_REDIS_URL`` is set (nothing connects until the first request), else in-process."""
    return RedisRateLimiter(redis_url) if redis_url else MemoryRateLimiter()


# ---------- which buckets a request takes from ----------

UNLIMITED_PATHS = {"/healthz", "/readyz", "/", "/agent", "/favicon.ico"}
_CONVERSATION = re.compile(r"^/v1/(?:agent/)?conversations/([^/]+)")


def channel_of(path: str) -> str | None:
    """The channel whose limits apply to ``path``; None → not limited."""
    if path in UNLIMITED_PATHS or path.startswith("/static/"):
        return None
    if path.startswith(("/v1/agent", "/v1/stats")):
        return "agent"
    if path.startswith("/v1/kb"):
        return "admin"
    if path.startswith("/v1/chat/completions") or path.startswith("/v1/models"):
        return "openai"
    return "web"


def _key(secret: bytes) -> str:
    return "key:" + hashlib.sha256(secret).hexdigest()[:24]  # hashed: no secret is ever a Redis key


def client_of(scope: Scope) -> str:
    """The bearer token or API key (the agent console's event stream: its ``?token=``), else the client IP."""
    for name, value in scope.get("headers", []):
        if name == b"authorization" and value[:7].lower() == b"bearer " and value[7:].strip():
            return _key(value[7:].strip())
        if name == b"x-api-key" and value.strip():
            return _key(value.strip())
    if scope.get("path") == "/v1/agent/events":
        token = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
        if token and token[0]:
            return _key(token[0].encode())
    client = scope.get("client")
    return "ip:" + (client[0] if client else "unknown")


def conversation_of(scope: Scope) -> str | None:
    """The conversation a request belongs to: the native API's path, or the OpenAI-compatible endpoint's
    ``X-Kefu-Session`` header (hashed; a session given only in the body's ``user`` field is not seen here —
    the middleware does not read bodies)."""
    match = _CONVERSATION.match(scope.get("path", ""))
    if match:
        return match.group(1)
    if scope.get("path", "").startswith("/v1/chat/completions"):
        for name, value in scope.get("headers", []):
            if name == b"x-kefu-session" and value.strip():
                return "session:" + hashlib.sha256(value.strip()).hexdigest()[:24]
    return None


@dataclass(frozen=True)
class RateLimitPolicy:
    channels: dict[str, Limit | None]  # per client, by channel
    conversation: Limit | None
    global_: Limit | None

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimitPolicy:
        from kefu.config import parse_rate_limit

        def limit(value: str) -> Limit | None:
            parsed = parse_rate_limit(value)
            return Limit(*parsed) if parsed else None

        return cls(
            channels={
                "web": limit(settings.rate_limit_web),
                "openai": limit(settings.rate_limit_openai),
                "agent": limit(settings.rate_limit_agent),
                "admin": limit(settings.rate_limit_admin),
            },
            conversation=limit(settings.rate_limit_conversation),
            global_=limit(settings.rate_limit_global),
        )

    def buckets(self, scope: Scope) -> list[tuple[str, Limit, str]]:
        """(key, limit, what) for each bucket the request takes from, in order: client, conversation,
        global — a flooding client is stopped at its own bucket and costs the others nothing."""
        channel = channel_of(scope.get("path", ""))
        if channel is None:
            return []
        found: list[tuple[str, Limit | None, str]] = [
            (f"{channel}:{client_of(scope)}", self.channels.get(channel), "client"),
        ]
        conversation = conversation_of(scope)
        if conversation:
            found.append((f"conversation:{conversation}", self.conversation, "conversation"))
        found.append(("global", self.global_, "global"))
        return [(key, limit, what) for key, limit, what in found if limit is not None]


def too_many_body(retry_after: int, what: str) -> bytes:
    who = {"client": "you are", "conversation": "this conversation is", "global": "the service is"}[what]
    message = f"too many requests: {who} over the rate limit; retry in {retry_after} s"
    return json.dumps({"error": {"code": "rate_limited", "message": message}}).encode()


class RateLimits:
    """Pure ASGI middleware (streams pass through untouched); the app's lifespan closes ``limiter``."""

    def __init__(self, app: ASGIApp, *, policy: RateLimitPolicy, limiter: RateLimiter) -> None:
        self.app = app
        self.policy = policy
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        buckets = self.policy.buckets(scope)
        if buckets:
            refused, decision = await self.limiter.acquire_all(
                [(k, lim.rate, lim.burst) for k, lim, _ in buckets]
            )
            if refused >= 0:
                await self._refuse(send, math.ceil(decision.retry_after), buckets[refused][2])
                return
        await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(send: Send, retry_after: int, what: str) -> None:
        retry_after = max(1, retry_after)
        body = too_many_body(retry_after, what)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(retry_after).encode()),
        ]
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": body})
