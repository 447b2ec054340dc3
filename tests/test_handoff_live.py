"""Live events over a real server: the customer's stream receives the agent's reply and the handoff's
status; the console's stream receives the queue and the customer's messages it may see; heartbeats;
and Redis pub/sub carrying events between two hubs as between two replicas."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from conftest import MINI_KB, live_server
from kefu.api.app import create_app
from kefu.config import Settings
from kefu.dialog.live import LiveEvent, LocalHub, RedisHub
from kefu.llm.testing import ScriptedModel

REDIS_URL = os.environ.get("KEFU_TEST_REDIS_URL")
MAX_LINES = 400  # the streams send pings: a missing event fails the test instead of hanging it


class Stream:
    """Reads one server-sent event stream line by line."""

    def __init__(self, lines: Iterator[str]) -> None:
        self.lines = (line for line in lines if line)  # blank lines only end an event
        self.comments: list[str] = []

    def connected(self) -> None:
        assert next(self.lines) == ": connected"

    def until(self, wanted: str) -> list[tuple[str, dict[str, Any]]]:
        """Events up to and including the first one named ``wanted``."""
        events, name = [], "message"
        for _ in range(MAX_LINES):
            line = next(self.lines)
            if line.startswith(":"):
                self.comments.append(line)
            elif line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.append((name, json.loads(line.split(":", 1)[1])))
                if name == wanted:
                    return events
        raise AssertionError(f"no {wanted!r} event in {MAX_LINES} lines; got {events}")


@pytest.fixture(params=["in-process", pytest.param("redis", marks=pytest.mark.redis)])
def server(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings]
) -> Iterator[tuple[str, Any]]:
    """A real server; its live events in process, or through Redis pub/sub (as replicas would share them)."""
    redis_url = ""
    if request.param == "redis":
        if not REDIS_URL:
            pytest.skip("KEFU_TEST_REDIS_URL not set: Redis tests skipped")
        redis_url = REDIS_URL
    settings = make_settings(kb_dir=MINI_KB, sse_ping_seconds=0.2, redis_url=redis_url)
    app = create_app(settings, model=ScriptedModel())
    with live_server(app) as base_url:
        yield base_url, app


def sign_in(http: httpx.Client, app: Any, username: str, name: str) -> str:
    app.state.runtime.handoffs.store.ensure_agent(username, name, "password-1")
    response = http.post("/v1/agent/login", json={"username": username, "password": "password-1"})
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def test_the_customer_stream_receives_the_agents_reply_and_the_handoff_status(
    server: tuple[str, Any],
) -> None:
    base_url, app = server
    with httpx.Client(base_url=base_url, timeout=10) as http:
        conversation = http.post("/v1/conversations", json={"channel": "web"}).json()["id"]
        handoff = http.post(f"/v1/conversations/{conversation}/messages", json={"content": "转人工"}).json()[
            "handoff"
        ]
        token = sign_in(http, app, "ann", "安娜")
        headers = {"Authorization": f"Bearer {token}"}
        with http.stream("GET", f"/v1/conversations/{conversation}/events") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            customer = Stream(response.iter_lines())
            customer.connected()
            assert http.post(f"/v1/agent/handoffs/{handoff['id']}/take", headers=headers).status_code == 200
            status = customer.until("handoff")[-1][1]
            assert (status["id"], status["status"], status["agent"]) == (handoff["id"], "active", "安娜")
            sent = http.post(
                f"/v1/agent/conversations/{conversation}/messages",
                json={"text": "您好，我是安娜"},
                headers=headers,
            ).json()["message"]
            _, message = customer.until("agent_message")[-1]
            assert message == sent and (message["role"], message["content"]) == ("agent", "您好，我是安娜")
            http.post(f"/v1/agent/handoffs/{handoff['id']}/close", headers=headers)
            assert customer.until("handoff")[-1][1]["status"] == "closed"
        # silence gets a heartbeat comment (every KEFU_SSE_PING_SECONDS, 0.2 s here)
        with http.stream("GET", f"/v1/conversations/{conversation}/events") as response:
            quiet = Stream(response.iter_lines())
            assert [next(quiet.lines), next(quiet.lines)] == [": connected", ": ping"]
        assert http.get("/v1/conversations/nope/events").status_code == 404


def test_the_console_stream_gets_the_queue_and_only_the_customer_messages_it_may_see(
    server: tuple[str, Any],
) -> None:
    base_url, app = server
    with httpx.Client(base_url=base_url, timeout=10) as http:
        ann, bob = sign_in(http, app, "ann", "Ann"), sign_in(http, app, "bob", "Bob")
        assert http.get("/v1/agent/events").status_code == 401
        assert http.get("/v1/agent/events", params={"token": "forged.token"}).status_code == 401
        conversation = http.post("/v1/conversations", json={"channel": "web"}).json()["id"]
        with (
            http.stream("GET", "/v1/agent/events", params={"token": ann}) as ann_response,
            http.stream(
                "GET", "/v1/agent/events", headers={"Authorization": f"Bearer {bob}"}
            ) as bob_response,
        ):
            ann_events, bob_events = Stream(ann_response.iter_lines()), Stream(bob_response.iter_lines())
            ann_events.connected()
            bob_events.connected()
            say = f"/v1/conversations/{conversation}/messages"
            handoff = http.post(say, json={"content": "转人工"}).json()["handoff"]
            [queued] = ann_events.until("queue")[-1][1]["handoffs"]
            assert (queued["id"], queued["status"], queued["position"]) == (handoff["id"], "queued", 1)
            http.post(say, json={"content": "我的耳机左边没声音"})  # queued: every agent sees it
            for events in (ann_events, bob_events):
                message = events.until("customer_message")[-1][1]
                assert (
                    message["conversation_id"] == conversation and message["content"] == "我的耳机左边没声音"
                )
                assert not any(key.startswith("_") for key in message)

            http.post(f"/v1/agent/handoffs/{handoff['id']}/take", headers={"Authorization": f"Bearer {ann}"})
            http.post(say, json={"content": "还在吗"})  # now Ann's: only Ann sees it
            http.post(
                f"/v1/agent/handoffs/{handoff['id']}/release", headers={"Authorization": f"Bearer {ann}"}
            )
            ann_seen = ann_events.until("customer_message")
            assert ann_seen[-1][1]["content"] == "还在吗"
            bob_seen = bob_events.until("queue")  # the take
            bob_seen += bob_events.until("queue")  # the release, published after the customer's message
            assert [name for name, _ in bob_seen] == ["queue", "queue"]
            assert bob_seen[-1][1]["handoffs"] == []


def test_a_local_hub_delivers_in_order_and_forgets_closed_subscriptions() -> None:
    async def scenario() -> None:
        hub = LocalHub()
        async with hub.subscribe("c1") as first, hub.subscribe("c1") as second, hub.subscribe("c2") as other:
            for n in range(3):
                await hub.publish("c1", "agent_message", {"n": n})
            for subscription in (first, second):
                assert [await subscription.next(1) for _ in range(3)] == [
                    LiveEvent("agent_message", {"n": n}) for n in range(3)
                ]
            assert await other.next(0.05) is None
        assert hub.subscriber_count("c1") == 0

    asyncio.run(scenario())


@pytest.mark.redis
def test_redis_carries_events_between_two_hubs_like_between_two_replicas() -> None:
    if not REDIS_URL:
        pytest.skip("KEFU_TEST_REDIS_URL not set: Redis tests skipped")

    async def scenario() -> None:
        publisher, subscriber = RedisHub(REDIS_URL), RedisHub(REDIS_URL)
        await publisher.start()
        await subscriber.start()
        try:
            async with subscriber.subscribe("conversation:c1") as events:
                await publisher.publish("conversation:c1", "agent_message", {"content": "您好", "n": 1})
                await publisher.publish("conversation:c2", "agent_message", {"content": "not for c1"})
                await publisher.publish("conversation:c1", "handoff", {"status": "closed"})
                received = [await events.next(5), await events.next(5)]
            assert received == [
                LiveEvent("agent_message", {"content": "您好", "n": 1}),
                LiveEvent("handoff", {"status": "closed"}),
            ]
        finally:
            await publisher.aclose()
            await subscriber.aclose()

    asyncio.run(scenario())


def test_shutting_the_server_down_ends_the_open_event_streams(make_settings: Callable[..., Settings]) -> None:
    import threading

    import uvicorn

    from conftest import free_port
    from kefu.api.live_sse import LiveServer

    app = create_app(make_settings(kb_dir=MINI_KB), model=ScriptedModel())
    port = free_port()
    server = LiveServer(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        for _ in range(500):
            if server.started:
                break
            threading.Event().wait(0.02)
        conversation = http.post("/v1/conversations", json={"channel": "web"}).json()["id"]
        with http.stream("GET", f"/v1/conversations/{conversation}/events") as response:
            lines = response.iter_lines()
            assert next(lines) == ": connected"
            server.should_exit = True
            rest = list(lines)  # ends when the server closes the stream (a read timeout would fail)
    assert all(line in ("", ": ping") for line in rest)
    thread.join(timeout=10)
    assert not thread.is_alive()
