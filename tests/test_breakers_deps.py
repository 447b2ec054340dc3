"""Circuit breakers around the non-model dependencies (issue #10 §4): the embeddings and rerank endpoints,
the order system (ERP) and the credit API — each against a real HTTP server whose faults the test
switches — and the open state shared between replicas through Redis.

Each breaker opens after failures, fails fast while open (the server sees no more requests), half-opens
after the cool-down (injected clock) and closes on a successful trial; the chat keeps answering and
``/readyz`` lists every breaker."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from conftest import MINI_KB, ask, free_port, live_server, new_conversation
from kefu.api.app import create_app
from kefu.breakers import BreakerOpen, CircuitBreaker, RedisBreakerState
from kefu.config import Settings
from kefu.dialog import prompts
from kefu.errors import ModelUnavailable
from kefu.kb.embeddings import OpenAIEmbedder
from kefu.kb.rerank import HttpReranker
from kefu.llm.testing import ScriptedModel
from kefu.tools import HttpCreditCheck, HttpOrderSystem, ToolUnavailable
from kefu.tools.demo_erp import create_demo_erp_app

REDIS_URL = os.environ.get("KEFU_TEST_REDIS_URL")
ERP_TOKEN = "test-erp-token"
VALID_ID = "11010519491231002X"  # a checksum-valid resident ID number (the demo credit decision's input)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker(name: str, clock: Clock, **options: Any) -> CircuitBreaker:
    values: dict[str, Any] = {"failure_rate": 0.5, "min_calls": 2, "window": 60, "cooldown": 30}
    values.update(options)
    return CircuitBreaker(name, clock=clock, **values)


class Faults:
    """What the test servers do: answer normally, or with ``status`` (e.g. 503)."""

    def __init__(self) -> None:
        self.status = 200
        self.requests: list[str] = []


def dependency_app(faults: Faults, dim: int = 8) -> FastAPI:
    """A tiny OpenAI-style embeddings + rerank server with a switchable fault."""
    app = FastAPI()

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> JSONResponse:
        body = await request.json()
        faults.requests.append("embeddings")
        if faults.status != 200:
            return JSONResponse({"error": {"message": "overloaded"}}, status_code=faults.status)
        data = []
        for i, text in enumerate(body["input"]):
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
            data.append({"index": i, "embedding": np.random.default_rng(seed).normal(size=dim).tolist()})
        return JSONResponse({"object": "list", "data": data, "model": body["model"]})

    @app.post("/v1/rerank")
    async def rerank(request: Request) -> JSONResponse:
        body = await request.json()
        faults.requests.append("rerank")
        if faults.status != 200:
            return JSONResponse({"error": {"message": "overloaded"}}, status_code=faults.status)
        count = len(body["documents"])
        results = [{"index": i, "relevance_score": float(i)} for i in range(count)]  # the last one first
        return JSONResponse({"results": results})

    return app


class FaultyErp:
    """The real demo ERP app behind a switch that answers ``faults.status`` instead (a failing ERP)."""

    def __init__(self, inner: Any, faults: Faults) -> None:
        self.inner, self.faults = inner, faults

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.faults.requests.append(scope["path"])
            if self.faults.status != 200:
                response = JSONResponse({"error": "maintenance"}, status_code=self.faults.status)
                await response(scope, receive, send)
                return
        await self.inner(scope, receive, send)


@pytest.fixture
def faults() -> Faults:
    return Faults()


@pytest.fixture
def dependency_url(faults: Faults) -> Iterator[str]:
    with live_server(dependency_app(faults)) as url:
        yield f"{url}/v1"


@pytest.fixture
def erp_url(faults: Faults, tmp_path: Path) -> Iterator[str]:
    app = create_demo_erp_app(
        tmp_path / "erp.db", ERP_TOKEN, clock=lambda: datetime(2026, 11, 24, tzinfo=UTC)
    )
    with live_server(FaultyErp(app, faults)) as url:
        yield url


# --- each dependency: opens, fails fast, half-opens, closes ---------------------------------------


def test_embeddings_breaker_opens_fails_fast_and_closes_after_a_good_trial(
    dependency_url: str, faults: Faults, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    embedder = OpenAIEmbedder(dependency_url, "m", dim=8, breaker=breaker("embeddings", clock))
    try:
        faults.status = 503
        with caplog.at_level(logging.INFO, logger="kefu.breakers"):
            for _ in range(2):
                with pytest.raises(ModelUnavailable, match="answered 503"):
                    embedder.embed_queries(["运费"])
        assert embedder.breaker is not None and embedder.breaker.state == "open"
        assert [r.getMessage() for r in caplog.records] == [
            "circuit breaker embeddings: closed → open (2 of 2 calls failed in 60 s; last: HTTP 503; "
            "calls fail at once for 30 s)"
        ]
        with pytest.raises(ModelUnavailable, match=r"service embeddings is not called: .*open until .*30 s"):
            embedder.embed_queries(["运费"])
        assert faults.requests == ["embeddings"] * 2  # the third never left

        faults.status = 200
        clock.now += 30
        assert embedder.breaker.state == "half-open"
        assert embedder.embed_queries(["运费"]).shape == (1, 8)  # the trial
        assert embedder.breaker.state == "closed" and len(faults.requests) == 3
    finally:
        embedder.close()


def test_a_client_error_of_the_embeddings_endpoint_does_not_open_it(dependency_url: str) -> None:
    clock = Clock()
    embedder = OpenAIEmbedder(f"{dependency_url}/nope", "m", dim=8, breaker=breaker("embeddings", clock))
    try:
        for _ in range(3):
            with pytest.raises(ModelUnavailable, match="answered 404"):
                embedder.embed_queries(["运费"])
        assert embedder.breaker is not None and embedder.breaker.state == "closed"  # our fault, not theirs
    finally:
        embedder.close()


def test_an_unreachable_embeddings_endpoint_opens_its_breaker() -> None:
    clock = Clock()
    embedder = OpenAIEmbedder(f"http://127.0.0.1:{free_port()}/v1", "m", dim=8, breaker=breaker("e", clock))
    try:
        for _ in range(2):
            with pytest.raises(ModelUnavailable, match="unreachable"):
                embedder.embed_passages(["a"])
        with pytest.raises(ModelUnavailable, match="is not called"):
            embedder.embed_passages(["a"])
    finally:
        embedder.close()


def test_rerank_breaker_serves_the_fused_order_without_calling_while_open(
    dependency_url: str, faults: Faults
) -> None:
    clock = Clock()
    reranker = HttpReranker(dependency_url, "bge-reranker", breaker=breaker("rerank", clock))
    try:
        assert reranker.rerank("q", ["a", "b", "c"]) == [2, 1, 0]
        faults.status = 500
        assert reranker.rerank("q", ["a", "b"]) is None
        assert reranker.breaker is not None and reranker.breaker.state == "open"  # 1 of 2: the 50 % rate
        assert reranker.rerank("q", ["a", "b"]) is None
        assert faults.requests == ["rerank"] * 2  # the call while open never left
        faults.status = 200
        clock.now += 30
        assert reranker.rerank("q", ["a", "b"]) == [1, 0]
        assert reranker.breaker.state == "closed"
    finally:
        reranker.close()


def test_erp_breaker_fails_fast_with_tool_unavailable_and_recovers(
    erp_url: str, faults: Faults, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    erp = HttpOrderSystem(erp_url, ERP_TOKEN, retries=1, backoff=0.01, breaker=breaker("erp", clock))
    try:
        assert erp.get_order("XP1001").order_id == "XP1001"
        faults.status = 503
        for _ in range(2):
            with pytest.raises(ToolUnavailable):
                erp.get_order("XP1001")
        assert erp.breaker is not None and erp.breaker.state == "open"  # 2 of 3 calls failed
        seen = len(faults.requests)
        with pytest.raises(ToolUnavailable, match=r"service erp is not called: .*open until .*human agent"):
            erp.get_order("XP1001")
        assert len(faults.requests) == seen  # no request, no retries, no timeout
        clock.now += 30  # stuck open: the trial fails too, so it opens for another cool-down
        with caplog.at_level(logging.INFO, logger="kefu.breakers"), pytest.raises(ToolUnavailable):
            erp.get_order("XP1001")
        assert erp.breaker.state == "open"
        assert (
            caplog.records[-1]
            .getMessage()
            .startswith(
                "circuit breaker erp: half-open → open (the trial call failed: the service at http://127.0.0.1:"
            )
        )
        faults.status = 200
        clock.now += 30
        assert erp.get_order("XP1001").order_id == "XP1001"
        assert erp.breaker.state == "closed"
    finally:
        erp.close()


def test_a_not_found_order_is_the_erp_working_not_failing(erp_url: str) -> None:
    from kefu.errors import NotFound

    erp = HttpOrderSystem(erp_url, ERP_TOKEN, breaker=breaker("erp", Clock(), min_calls=1))
    try:
        for _ in range(3):
            with pytest.raises(NotFound):
                erp.get_order("XP9999")
        assert erp.breaker is not None and erp.breaker.state == "closed"
    finally:
        erp.close()


def test_credit_breaker_opens_and_fails_fast(erp_url: str, faults: Faults) -> None:
    clock = Clock()
    credit = HttpCreditCheck(erp_url, ERP_TOKEN, retries=0, breaker=breaker("credit", clock))
    try:
        assert credit.check(VALID_ID, "张三").score >= 500
        faults.status = 502
        for _ in range(2):
            with pytest.raises(ToolUnavailable):
                credit.check(VALID_ID, "张三")
        seen = len(faults.requests)
        with pytest.raises(ToolUnavailable, match="service credit is not called"):
            credit.check(VALID_ID, "张三")
        assert len(faults.requests) == seen
        faults.status = 200
        clock.now += 30
        assert credit.check(VALID_ID, "张三").score >= 500 and credit.breaker is not None
        assert credit.breaker.state == "closed"
    finally:
        credit.close()


# --- through the chat API -------------------------------------------------------------------------


def test_an_open_erp_breaker_gives_the_flows_human_offer_at_once(
    make_settings: Callable[..., Settings], erp_url: str, faults: Faults
) -> None:
    settings = make_settings(
        kb_dir=MINI_KB,
        erp_url=erp_url,
        erp_token=ERP_TOKEN,
        breaker_min_calls=2,
        breaker_cooldown_seconds=300,
    )
    with TestClient(create_app(settings, model=ScriptedModel())) as client:
        faults.status = 503
        for _ in range(3):
            conversation = new_conversation(client)
            ask(client, conversation, "我的订单到哪了")
            reply = ask(client, conversation, "XP1001")
            assert "订单系统暂时无法响应" in reply["content"] and "人工客服" in reply["content"]
        seen = len(faults.requests)
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"]["breakers"]["erp"].startswith("open until ")
        last = new_conversation(client)  # while open: the same human offer, and the ERP is not called
        ask(client, last, "我的订单到哪了")
        assert "订单系统暂时无法响应" in ask(client, last, "XP1001")["content"]
        assert len(faults.requests) == seen


def test_embeddings_down_the_search_ranks_by_bm25_and_the_chat_cites_related_articles_and_a_human(
    make_settings: Callable[..., Settings], dependency_url: str, faults: Faults
) -> None:
    settings = make_settings(
        kb_dir=MINI_KB,
        embedder="openai",
        embedding_url=dependency_url,
        embedding_model="m",
        rerank_url=dependency_url,
        rerank_model="r",
        breaker_min_calls=2,
        scope_guard=False,
    )
    with TestClient(create_app(settings, model=ScriptedModel())) as client:
        assert client.get("/readyz").json()["checks"]["breakers"] == {
            "embeddings": "closed",
            "rerank": "closed",
        }
        faults.status = 503
        conversations = [new_conversation(client) for _ in range(3)]  # (two "no" in one → a handoff)
        replies = [ask(client, c, "你们发什么快递") for c in conversations]
        for reply in replies:  # the articles BM25 ranks best, and a human offered
            assert reply["answer_kind"] == "no_answer" and reply["content"] == prompts.RELATED_ONLY["zh"]
            assert reply["citations"] and "快递" in reply["citations"][0]["snippet"]
        for conversation in conversations:  # each message was stored before the search
            stored = client.get(f"/v1/conversations/{conversation}/messages").json()["data"]
            assert [m["content"] for m in stored if m["role"] == "user"] == ["你们发什么快递"]
        breakers = client.get("/readyz").json()["checks"]["breakers"]
        assert breakers["embeddings"].startswith("open until ")
        seen = faults.requests.count("embeddings")
        found = client.app.state.runtime.kb.search("快递", 2)  # type: ignore[attr-defined]
        assert found.decision == "none" and found.keywords_only and found.hits[0].sparse > 0  # BM25's best
        assert "快递" in found.hits[0].chunk.text
        assert faults.requests.count("embeddings") == seen  # while open: not called


# --- shared between replicas through Redis ---------------------------------------------------------


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    if not REDIS_URL:
        pytest.skip("KEFU_TEST_REDIS_URL not set: shared breaker state tests skipped")
    import redis

    prefix = f"kefu-test:breaker:{os.getpid()}:{free_port()}:"
    yield prefix
    with redis.Redis.from_url(REDIS_URL) as client:
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)


@pytest.mark.redis
def test_a_breaker_opened_on_one_replica_is_open_on_the_other(
    redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert REDIS_URL
    import redis

    one_clock, two_clock = Clock(), Clock()
    one_state, two_state = (RedisBreakerState(REDIS_URL, prefix=redis_prefix) for _ in range(2))
    one = breaker("erp", one_clock, shared=one_state)
    two = breaker("erp", two_clock, shared=two_state)
    try:
        two.acquire()
        two.success()  # replica two has seen only successes
        for _ in range(2):
            one.acquire()
            one.failure("HTTP 503")
        assert one.state == "open"
        with redis.Redis.from_url(REDIS_URL) as client:
            assert 0 < client.pttl(f"{redis_prefix}erp") <= 30_000  # expires with the cool-down
        two_clock.now += 1.0  # the next read of the shared state
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="kefu.breakers"), pytest.raises(BreakerOpen):
            two.acquire()
        assert two.state == "open" and two.describe().startswith("open until ")
        assert (
            caplog.records[-1]
            .getMessage()
            .startswith("circuit breaker erp: closed → open (opened by another replica: 2 of 2 calls failed")
        )
        two_clock.now += 30  # its cool-down ends like the other's: one trial, then closed
        two.acquire()
        two.success()
        assert two.state == "closed"
    finally:
        one_state.close()
        two_state.close()


def test_redis_down_keeps_breakers_local_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    state = RedisBreakerState(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    clock = Clock()
    b = breaker("erp", clock, shared=state)
    try:
        with caplog.at_level(logging.WARNING, logger="kefu.breakers"):
            for _ in range(2):
                clock.now += 2
                b.acquire()
                b.failure("HTTP 503")
        assert b.state == "open"  # decided locally
        warnings = [r.getMessage() for r in caplog.records if "Redis" in r.getMessage()]
        assert len(warnings) == 1 and "each replica opens its breakers on its own failures" in warnings[0]
    finally:
        state.close()


@pytest.mark.redis
def test_the_same_name_at_another_url_is_another_dependency(redis_prefix: str) -> None:
    assert REDIS_URL
    state = RedisBreakerState(REDIS_URL, prefix=redis_prefix)
    clock = Clock()
    ours = breaker("erp", clock, shared=state, shared_key="erp@http://erp-a.internal")
    theirs = breaker("erp", Clock(), shared=state, shared_key="erp@http://erp-b.internal")
    try:
        for _ in range(2):
            ours.acquire()
            ours.failure("HTTP 503")
        assert ours.state == "open"
        theirs.acquire()  # another shop's ERP on the same Redis: not opened by ours
        theirs.success()
        assert theirs.state == "closed"
    finally:
        state.close()
