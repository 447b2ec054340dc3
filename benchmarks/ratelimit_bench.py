"""The cost of a rate-limit check: one ``acquire`` on the in-process limiter and on Redis (one Lua script
round trip), three ``acquire`` calls in turn (how the middleware took its three buckets before: three
round trips), one ``acquire_all`` of the three buckets (one round trip, all or none), and one request
through the ``RateLimits`` middleware (client, conversation, global) against the same bare ASGI endpoint
without it. Figures, not asserts.

    .venv/bin/python benchmarks/ratelimit_bench.py                      # in-process only
    .venv/bin/python benchmarks/ratelimit_bench.py --redis-url redis://127.0.0.1:6379/0
    (or KEFU_TEST_REDIS_URL / KEFU_REDIS_URL set)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

from starlette.types import Receive, Scope, Send

from kefu.api.ratelimit import (
    Limit,
    MemoryRateLimiter,
    RateLimiter,
    RateLimitPolicy,
    RateLimits,
    RedisRateLimiter,
)

OPEN = Limit(rate=1e9, burst=10**9)  # never refuses: every call pays the full check


async def _timed(call: Callable[[], Awaitable[object]], n: int) -> list[float]:
    for _ in range(min(n, 200)):  # warm-up (connections, script load)
        await call()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def _report(name: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(f"{name:<50} p50 {statistics.median(ordered):8.1f} µs   p99 {p99:8.1f} µs   (n={len(ordered)})")


async def _bare(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def _request_call(app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/conversations/3f2a/messages",
        "headers": [(b"content-type", b"application/json")],
        "client": ("203.0.113.7", 50000),
    }

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: object) -> None:
        return None

    return lambda: app(scope, receive, send)


async def _measure(name: str, limiter: RateLimiter, n: int) -> None:
    key = f"bench:{uuid.uuid4().hex}"
    _report(f"{name}: acquire", await _timed(lambda: limiter.acquire(key, OPEN.rate, OPEN.burst), n))
    three = [(f"{key}:{what}", OPEN.rate, OPEN.burst) for what in ("client", "conversation", "global")]

    async def one_by_one() -> None:
        for bucket in three:
            await limiter.acquire(*bucket)

    _report(f"{name}: 3 buckets, acquire each (before)", await _timed(one_by_one, n))
    _report(f"{name}: 3 buckets, acquire_all", await _timed(lambda: limiter.acquire_all(three), n))
    policy = RateLimitPolicy(channels={"web": OPEN}, conversation=OPEN, global_=OPEN)
    limited = RateLimits(_bare, policy=policy, limiter=limiter)
    _report(f"{name}: request through middleware", await _timed(_request_call(limited), n))


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=20_000, help="checks per figure (Redis: a tenth)")
    parser.add_argument(
        "--redis-url", default=os.environ.get("KEFU_TEST_REDIS_URL") or os.environ.get("KEFU_REDIS_URL", "")
    )
    args = parser.parse_args()
    _report("bare endpoint (no limits)", await _timed(_request_call(_bare), args.n))
    memory = MemoryRateLimiter()
    await _measure("in-process", memory, args.n)
    if not args.redis_url:
        print("Redis: skipped (give --redis-url or set KEFU_TEST_REDIS_URL)")
        return
    redis_limiter = RedisRateLimiter(args.redis_url, prefix=f"kefu-bench:{uuid.uuid4().hex}:")
    try:
        await _measure("redis", redis_limiter, max(1, args.n // 10))
    finally:
        await redis_limiter.aclose()


if __name__ == "__main__":
    asyncio.run(main())
