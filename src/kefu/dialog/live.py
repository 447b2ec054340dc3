"""Live events for the two server-sent event streams: a customer's conversation and the agent console.

``LocalHub`` fans events out inside one process. ``RedisHub`` (when ``KEFU_REDIS_URL`` is set) publishes
through Redis pub/sub, and one listener per process delivers what any replica published to the local
subscribers, so a customer connected to one replica sees the reply of an agent connected to another.

    async with hub.subscribe(conversation_channel(cid)) as events:
        event = await events.next(timeout=15)     # None after 15 s of silence: send a heartbeat
    await hub.publish(conversation_channel(cid), "agent_message", {...})
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from kefu.errors import StoreUnavailable

log = logging.getLogger("kefu.live")

AGENTS_CHANNEL = "agents"
QUEUE_SIZE = 500  # events a slow subscriber may fall behind before new ones are dropped for it


def conversation_channel(conversation_id: str) -> str:
    return f"conversation:{conversation_id}"


@dataclass(frozen=True)
class LiveEvent:
    name: str  # the SSE event name: "agent_message", "handoff", "queue", "customer_message"
    data: dict[str, Any]


class Subscription:
    """Events of one channel for one listener, in the order they were published."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[LiveEvent | None] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self.closed = False

    async def next(self, timeout: float) -> LiveEvent | None:
        """The next event, or None when none came within ``timeout`` seconds or the hub was closed."""
        if self.closed:
            return None
        try:
            event = await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None
        if event is None:
            self.closed = True
        return event

    def close(self) -> None:
        """End the subscription: a waiting ``next`` returns None at once, and ``closed`` is True."""
        self.closed = True
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)

    def deliver(self, event: LiveEvent) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            log.warning("a live-event subscriber fell %d events behind; dropped %s", QUEUE_SIZE, event.name)


class LiveHub(Protocol):
    async def publish(self, channel: str, name: str, data: dict[str, Any]) -> None: ...

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[Subscription]: ...

    async def aclose(self) -> None:
        """Stop; every subscription ends (idempotent)."""
        ...


class LocalHub:
    """In-process fan-out. Use from the event loop (publish and subscribe are not thread-safe)."""

    def __init__(self) -> None:
        self._subscribers: defaultdict[str, set[Subscription]] = defaultdict(set)

    async def publish(self, channel: str, name: str, data: dict[str, Any]) -> None:
        self.deliver(channel, LiveEvent(name, data))

    def deliver(self, channel: str, event: LiveEvent) -> None:
        for subscription in list(self._subscribers.get(channel, ())):
            subscription.deliver(event)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[Subscription]:
        subscription = Subscription()
        self._subscribers[channel].add(subscription)
        try:
            yield subscription
        finally:
            listeners = self._subscribers.get(channel)
            if listeners is not None:
                listeners.discard(subscription)
                if not listeners:
                    del self._subscribers[channel]

    def subscriber_count(self, channel: str) -> int:
        return len(self._subscribers.get(channel, ()))

    async def aclose(self) -> None:
        """End every subscription (the event streams close), e.g. when the server shuts down."""
        for listeners in list(self._subscribers.values()):
            for subscription in list(listeners):
                subscription.close()


class RedisHub:
    """Redis pub/sub between replicas; a single pattern subscription per process feeds a ``LocalHub``."""

    def __init__(self, url: str, prefix: str = "kefu:live:") -> None:
        import redis.asyncio as redis

        self.prefix = prefix
        self._client = redis.Redis.from_url(url)
        self._local = LocalHub()
        self._listener: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        """Start listening (``build_runtime`` does); returns once the subscription is in place."""
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="kefu-live-redis")
        await self._ready.wait()

    async def publish(self, channel: str, name: str, data: dict[str, Any]) -> None:
        payload = json.dumps({"name": name, "data": data}, ensure_ascii=False, default=str)
        await self._client.publish(self.prefix + channel, payload)

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[Subscription]:
        return self._local.subscribe(channel)

    async def _listen(self) -> None:
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(self.prefix + "*")
                self._ready.set()
                async for message in pubsub.listen():
                    self._deliver(message)
            except asyncio.CancelledError:
                raise
            except (
                Exception
            ) as exc:  # Redis restarted or unreachable: keep trying, events in between are lost
                log.warning("live events: Redis subscription lost (%s); reconnecting in 1 s", exc)
                await asyncio.sleep(1)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _deliver(self, message: dict[str, Any]) -> None:
        if message.get("type") != "pmessage":
            return
        channel = message["channel"]
        channel = channel.decode() if isinstance(channel, bytes) else str(channel)
        try:
            body = json.loads(message["data"])
            event = LiveEvent(str(body["name"]), dict(body["data"]))
        except (ValueError, KeyError, TypeError):
            log.warning("live events: ignored a malformed message on %s", channel)
            return
        self._local.deliver(channel.removeprefix(self.prefix), event)

    async def aclose(self) -> None:
        await self._local.aclose()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        await self._client.aclose()


async def build_hub(redis_url: str) -> LiveHub:
    """Redis pub/sub when ``redis_url`` is set (replicas share events), else in-process."""
    if not redis_url:
        return LocalHub()
    hub = RedisHub(redis_url)
    try:
        await asyncio.wait_for(hub.start(), timeout=10)
    except TimeoutError:
        await hub.aclose()
        raise StoreUnavailable(
            "cannot subscribe to live events at KEFU_REDIS_URL within 10 s; check that Redis is running"
        ) from None
    except BaseException:
        await hub.aclose()
        raise
    return hub
