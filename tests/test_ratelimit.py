"""Rate limits: the token-bucket math on an injected clock, the same promises kept by the in-process and
the Redis limiter, the real app answering 429 with Retry-After, and Redis down → in-process with a warning."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from conftest import MINI_KB
from kefu.api.app import create_app
from kefu.api.ratelimit import (
    Decision,
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    channel_of,
    client_of,
)
from kefu.config import Settings
from kefu.errors import ConfigError
from kefu.llm.testing import ScriptedModel

REDIS_URL = os.environ.get("KEFU_TEST_REDIS_URL")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


# ---------- the bucket math (injected clock, no sleeps) ----------


def test_a_full_bucket_lets_the_burst_through_then_refuses_with_the_time_to_the_next_token() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock=clock)
    assert all(limiter.take("a", 10, 50).allowed for _ in range(50))
    refused = limiter.take("a", 10, 50)
    assert refused == Decision(False, pytest.approx(0.1))
    clock.now += 0.05
    assert limiter.take("a", 10, 50).retry_after == pytest.approx(0.05)


def test_tokens_come_back_at_the_rate_and_never_above_the_burst() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock=clock)
    for _ in range(5):
        limiter.take("a", 2, 5)
    assert not limiter.take("a", 2, 5).allowed
    clock.now += 1.0  # two tokens back
    assert [limiter.take("a", 2, 5).allowed for _ in range(3)] == [True, True, False]
    clock.now += 3600  # a long pause refills to the burst, not beyond
    assert sum(limiter.take("a", 2, 5).allowed for _ in range(10)) == 5


def test_buckets_are_per_key_and_the_oldest_are_forgotten_past_the_cap() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock=clock, max_keys=2)
    limiter.take("a", 1, 1)
    assert not limiter.take("a", 1, 1).allowed
    assert limiter.take("b", 1, 1).allowed
    limiter.take("c", 1, 1)  # "a" is the least recently used: dropped (a fresh, full bucket next time)
    assert limiter.take("a", 1, 1).allowed


# ---------- one contract, two limiters ----------


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def make_limiter(request: pytest.FixtureRequest) -> Iterator[Callable[[], RateLimiter]]:
    if request.param == "memory":
        yield MemoryRateLimiter
        return
    if not REDIS_URL:
        pytest.skip("KEFU_TEST_REDIS_URL not set: Redis rate-limit tests skipped")
    prefix = f"kefu-test:{uuid.uuid4().hex}:"
    yield lambda: RedisRateLimiter(REDIS_URL, prefix=prefix)


def test_contract_burst_then_refusal_per_key(make_limiter: Callable[[], RateLimiter]) -> None:
    async def scenario() -> tuple[list[Decision], Decision]:
        limiter = make_limiter()
        try:
            decisions = [await limiter.acquire("client", 0.5, 5) for _ in range(7)]
            other = await limiter.acquire("other", 0.5, 5)
        finally:
            await limiter.aclose()
        return decisions, other

    decisions, other = run(scenario())
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 2
    assert all(d.retry_after == 0 for d in decisions[:5])
    assert 0 < decisions[5].retry_after <= 2.0  # one token every 2 s
    assert other.allowed


def test_contract_replicas_share_redis_buckets() -> None:
    """Two limiters on one Redis are two replicas: they draw from one bucket."""
    if not REDIS_URL:
        pytest.skip("KEFU_TEST_REDIS_URL not set: Redis rate-limit tests skipped")
    prefix = f"kefu-test:{uuid.uuid4().hex}:"

    async def scenario() -> list[bool]:
        one, two = RedisRateLimiter(REDIS_URL, prefix=prefix), RedisRateLimiter(REDIS_URL, prefix=prefix)
        try:
            return [(await (one if i % 2 else two).acquire("c", 0.5, 4)).allowed for i in range(6)]
        finally:
            await one.aclose()
            await two.aclose()

    assert run(scenario()) == [True] * 4 + [False] * 2


def test_redis_down_falls_back_to_in_process_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    from conftest import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there

    async def scenario() -> list[Decision]:
        limiter = RedisRateLimiter(url, retry_seconds=0)  # tries Redis again on every call
        try:
            return [await limiter.acquire("c", 0.5, 3) for _ in range(5)]
        finally:
            await limiter.aclose()

    with caplog.at_level(logging.WARNING, logger="kefu.ratelimit"):
        decisions = run(scenario())
    assert [d.allowed for d in decisions] == [True] * 3 + [False] * 2  # still limited, never an outage
    warnings = [r for r in caplog.records if r.name == "kefu.ratelimit"]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "KEFU_REDIS_URL" in warnings[0].getMessage()


def test_a_failing_redis_falls_back_then_recovers(caplog: pytest.LogCaptureFixture) -> None:
    """Redis answering errors (here WRONGTYPE on a bucket someone overwrote) is no outage either, and
    the shared buckets are used again once Redis answers."""
    if not REDIS_URL:
        pytest.skip("KEFU_TEST_REDIS_URL not set: Redis rate-limit tests skipped")
    import redis

    prefix = f"kefu-test:{uuid.uuid4().hex}:"
    with redis.Redis.from_url(REDIS_URL) as client:
        client.set(prefix + "c", "not a bucket")

    async def scenario() -> list[Decision]:
        limiter = RedisRateLimiter(REDIS_URL, prefix=prefix, retry_seconds=0)
        try:
            first = await limiter.acquire("c", 0.5, 2)
            with redis.Redis.from_url(REDIS_URL) as client:
                client.delete(prefix + "c")
            return [first] + [await limiter.acquire("c", 0.5, 2) for _ in range(3)]
        finally:
            await limiter.aclose()

    with caplog.at_level(logging.INFO, logger="kefu.ratelimit"):
        decisions = run(scenario())
    # the fallback bucket took one token; then Redis's fresh bucket lets 2 through
    assert [d.allowed for d in decisions] == [True, True, True, False]
    messages = [r.getMessage() for r in caplog.records if r.name == "kefu.ratelimit"]
    assert len(messages) == 2 and "WRONGTYPE" in messages[0] and "back" in messages[1], messages


# ---------- the real app ----------


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def burst_app(request: pytest.FixtureRequest, make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    """The app with the default limits (10/s, bursts of 50) on a frozen clock — or on Redis (its own
    clock) with a refill slow enough that no token comes back during the burst."""
    if request.param == "memory":
        app = create_app(
            make_settings(kb_dir=MINI_KB),
            model=ScriptedModel(),
            rate_limiter=MemoryRateLimiter(clock=Clock()),
        )
    else:
        if not REDIS_URL:
            pytest.skip("KEFU_TEST_REDIS_URL not set: Redis rate-limit tests skipped")
        import redis

        with redis.Redis.from_url(REDIS_URL) as client:  # buckets left by an earlier run would count
            for key in client.scan_iter("kefu:ratelimit:*"):
                client.delete(key)
        settings = make_settings(kb_dir=MINI_KB, redis_url=REDIS_URL, rate_limit_web="0.001/50")
        app = create_app(settings, model=ScriptedModel())
    with TestClient(app) as client:
        yield client


def test_a_burst_of_60_gets_50_through_then_429_with_retry_after(burst_app: TestClient) -> None:
    client = burst_app
    codes, refused = [], None
    for _ in range(60):
        response = client.get("/v1/conversations/nope")
        codes.append(response.status_code)
        if response.status_code == 429 and refused is None:
            refused = response
    assert codes[:50] == [404] * 50
    assert codes[50:] == [429] * 10
    assert refused is not None
    retry_after = int(refused.headers["Retry-After"])
    assert retry_after >= 1
    error = refused.json()["error"]
    assert error["code"] == "rate_limited"
    assert f"retry in {retry_after} s" in error["message"]

    # another client (its own API key) is unaffected; health and static files are never limited
    other = client.get("/v1/conversations/another", headers={"Authorization": "Bearer other-client"})
    assert other.status_code == 404
    assert client.get("/healthz").status_code == 200
    assert client.get("/static/chat.js").status_code == 200


def test_each_channel_and_conversation_has_its_own_limits(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        kb_dir=MINI_KB, rate_limit_web="0.01/2", rate_limit_agent="0.01/2", rate_limit_conversation="0.01/1"
    )
    with TestClient(create_app(settings, model=ScriptedModel())) as client:
        assert [client.get("/v1/agent/me").status_code for _ in range(3)] == [401, 401, 429]
        # the web channel has its own bucket: the agent API's flood did not touch it
        conversation = client.post("/v1/conversations", json={"channel": "web"}).json()["id"]
        other_key = {"Authorization": "Bearer someone-else"}
        path = f"/v1/conversations/{conversation}"
        assert client.get(path).status_code == 200
        response = client.get(path, headers=other_key)  # a fresh client, but the conversation is spent
        assert response.status_code == 429
        assert "this conversation" in response.json()["error"]["message"]
        response = client.get("/v1/conversations/other")
        assert response.status_code == 429  # the web client's 2 are spent
        assert "you are over the rate limit" in response.json()["error"]["message"]


def test_off_disables_a_limit_and_a_bad_value_names_the_variable(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(kb_dir=MINI_KB, rate_limit_web="off", rate_limit_conversation="off")
    with TestClient(create_app(settings, model=ScriptedModel())) as client:
        assert {client.get("/v1/conversations/nope").status_code for _ in range(80)} == {404}
    with pytest.raises(ConfigError, match=r"KEFU_RATE_LIMIT_WEB.*RATE/BURST"):
        make_settings(rate_limit_web="10 per second")


def test_clients_are_their_keys_or_their_ip() -> None:
    def scope(path: str, headers: list[tuple[bytes, bytes]] = [], query: bytes = b"") -> dict[str, object]:  # noqa: B006
        return {"path": path, "headers": headers, "query_string": query, "client": ("203.0.113.7", 1)}

    bearer = client_of(scope("/v1/chat/completions", [(b"authorization", b"Bearer sk-abc")]))
    assert bearer.startswith("key:") and "sk-abc" not in bearer
    assert client_of(scope("/v1/kb", [(b"x-api-key", b"sk-abc")])) == bearer
    assert client_of(scope("/v1/agent/events", query=b"token=sk-abc")) == bearer  # EventSource: no headers
    assert client_of(scope("/v1/conversations", query=b"token=sk-abc")) == "ip:203.0.113.7"


def test_channels() -> None:
    assert channel_of("/healthz") is None and channel_of("/static/chat.js") is None
    assert channel_of("/") is None  # the chat page itself
    assert channel_of("/v1/chat/completions") == "openai"
    assert channel_of("/v1/agent/queue") == "agent" and channel_of("/v1/stats/operations") == "agent"
    assert channel_of("/v1/kb/documents") == "admin"
    assert channel_of("/v1/conversations/x/messages") == "web"


@pytest.mark.browser
def test_the_chat_page_shows_a_friendly_line_when_rate_limited(
    make_settings: Callable[..., Settings],
) -> None:
    """Headless Chromium (Debian's) on the real server: this client's bucket is spent before it sends."""
    from pathlib import Path

    import httpx
    from playwright.sync_api import expect, sync_playwright

    from conftest import live_server

    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("needs Debian's /usr/bin/chromium — run scripts/install-browser.sh")
    app = create_app(make_settings(kb_dir=MINI_KB, rate_limit_web="0.1/1"), model=ScriptedModel())
    with live_server(app) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium), args=["--headless", "--no-sandbox"]
        )
        try:
            page = browser.new_context(locale="zh-CN").new_page()
            page.set_default_timeout(60_000)  # an upper bound for waiting, never a speed assertion
            page.goto(url)
            page.wait_for_selector("body[data-ready=true]")
            assert httpx.get(f"{url}/v1/conversations/spent").status_code == 404  # the one token
            page.get_by_test_id("message-input").fill("你们发什么快递？")
            page.get_by_test_id("message-input").press("Enter")
            error = page.locator("[data-testid=message][data-role=error]")
            expect(error).to_contain_text("消息发送太频繁，请")
            expect(error).to_contain_text("秒后再试")
            page.screenshot(path="/tmp/kefu-e2e-rate-limited.png")
        finally:
            browser.close()
