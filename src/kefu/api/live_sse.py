"""Long-lived server-sent event streams over ``kefu.dialog.live``: a ``: connected`` comment once the
subscription is in place (a client that waits for it misses nothing), then the events, with a
``: ping`` comment after every ``ping_seconds`` of silence. A client that disconnects ends the stream
(Starlette cancels it) and its subscription."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import uvicorn

from kefu.api.sse import sse
from kefu.dialog.live import LiveEvent, LiveHub

CONNECTED = ": connected\n\n"
PING = ": ping\n\n"


async def live_lines(
    hub: LiveHub,
    channel: str,
    *,
    ping_seconds: float,
    keep: Callable[[LiveEvent], dict[str, Any] | None] = lambda event: event.data,
    on_ping: Callable[[], Awaitable[None]] | None = None,
) -> AsyncIterator[str]:
    """SSE lines for ``channel``; ``keep`` maps an event to the data sent, or None to skip it."""
    async with hub.subscribe(channel) as events:
        yield CONNECTED
        while True:
            event = await events.next(ping_seconds)
            if event is None and events.closed:
                return  # the server is shutting down
            if event is None:
                if on_ping is not None:
                    await on_ping()
                yield PING
                continue
            data = keep(event)
            if data is not None:
                yield sse(event.name, data)


class LiveServer(uvicorn.Server):
    """uvicorn that ends the live event streams before it waits for open responses to finish on
    shutdown: they never finish by themselves, so Ctrl+C would otherwise wait forever."""

    async def shutdown(self, sockets: Any = None) -> None:
        runtime = getattr(getattr(self.config.app, "state", None), "runtime", None)
        if runtime is not None:
            await runtime.live.aclose()
        await super().shutdown(sockets)
