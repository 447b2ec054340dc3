"""A request's buckets (client, conversation, global) are taken all or none — one Redis round trip —
and the OpenAI-compatible endpoint's conversations have their own bucket (X-Kefu-Session)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from conftest import MINI_KB
from kefu.api.app import create_app
from kefu.api.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter, conversation_of
from kefu.config import Settings
from kefu.llm.testing import ScriptedModel

REDIS_URL = os.environ.get("KEFU_TEST_REDIS_URL")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def make_limiter(request: pytest.FixtureRequest) -> Iterator[Callable[[], RateLimiter]]:
    if request.param == "memory":
        yield MemoryRateLimiter
        return
    if not REDIS_URL:
        pytest.skip("KEFU_TEST_REDIS_URL not set: Redis rate-limit tests skipped")
    prefix = f"kefu-test:{uuid.uuid4().hex}:"
    yield lambda: RedisRateLimiter(REDIS_URL, prefix=prefix)


def test_contract_a_refusal_takes_no_token_from_the_other_buckets(
    make_limiter: Callable[[], RateLimiter],
) -> None:
    slow = 0.001  # tokens per second: none comes back during the test

    async def scenario() -> list[tuple[int, bool]]:
        limiter = make_limiter()
        try:
            seen = []
            for client in ("a", "b", "c"):  # three clients on one conversation allowed 2 turns
                refused, decision = await limiter.acquire_all(
                    [(f"client:{client}", slow, 1), ("conversation:x", slow, 2), ("global", slow, 100)]
                )
                seen.append((refused, decision.allowed))
            # client c was refused by the conversation: its own bucket still has its token
            refused, decision = await limiter.acquire_all([("client:c", slow, 1), ("global", slow, 100)])
            seen.append((refused, decision.allowed))
            refused, decision = await limiter.acquire_all([("client:c", slow, 1), ("global", slow, 100)])
            seen.append((refused, decision.allowed))
            return seen
        finally:
            await limiter.aclose()

    seen = asyncio.run(scenario())
    assert seen == [(-1, True), (-1, True), (1, False), (-1, True), (0, False)]


def test_contract_the_first_empty_bucket_in_order_is_named_with_its_retry(
    make_limiter: Callable[[], RateLimiter],
) -> None:
    async def scenario() -> list[tuple[int, float]]:
        limiter = make_limiter()
        try:
            await limiter.acquire_all([("one", 0.5, 1), ("two", 0.25, 1)])
            refused, decision = await limiter.acquire_all([("one", 0.5, 1), ("two", 0.25, 1)])
            later, decision_two = await limiter.acquire_all([("fresh", 0.5, 1), ("two", 0.25, 1)])
            return [(refused, decision.retry_after), (later, decision_two.retry_after)]
        finally:
            await limiter.aclose()

    (first, retry_one), (second, retry_two) = asyncio.run(scenario())
    assert first == 0 and 0 < retry_one <= 2.0  # "one" comes first and is empty: 1 token per 2 s
    assert second == 1 and 2.0 < retry_two <= 4.0  # "fresh" is full, "two" is empty: 1 token per 4 s


def test_the_openai_endpoint_session_header_is_a_conversation_bucket() -> None:
    def scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, object]:
        return {"path": path, "headers": headers}

    session = conversation_of(scope("/v1/chat/completions", [(b"x-kefu-session", b"shop-user-42")]))
    assert session is not None and session.startswith("session:") and "shop-user-42" not in session
    assert conversation_of(scope("/v1/chat/completions", [])) is None  # no session: client and global
    assert conversation_of(scope("/v1/conversations/abc/messages", [])) == "abc"
    assert conversation_of(scope("/v1/models", [(b"x-kefu-session", b"s")])) is None


def test_one_session_on_the_openai_endpoint_is_limited_like_a_conversation(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(kb_dir=MINI_KB, rate_limit_openai="off", rate_limit_conversation="0.001/2")
    body = {"model": "kefu", "messages": [{"role": "user", "content": "你们发什么快递？"}]}
    app = create_app(settings, model=ScriptedModel(), rate_limiter=MemoryRateLimiter(clock=Clock()))
    with TestClient(app) as client:
        codes = [
            client.post("/v1/chat/completions", json=body, headers={"X-Kefu-Session": "u1"}).status_code
            for _ in range(3)
        ]
        other = client.post("/v1/chat/completions", json=body, headers={"X-Kefu-Session": "u2"})
        refused = client.post("/v1/chat/completions", json=body, headers={"X-Kefu-Session": "u1"})
    assert codes == [200, 200, 429]
    assert other.status_code == 200  # another session has its own bucket
    assert "this conversation is over the rate limit" in refused.json()["error"]["message"]
