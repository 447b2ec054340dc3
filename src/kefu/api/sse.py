"""Server-sent events: the orchestrator's events as an SSE stream, errors mid-stream as an ``error`` event."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse

from kefu.errors import KefuError

log = logging.getLogger("kefu.api")

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse(event: str | None, data: Any) -> str:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, default=str)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n"


async def guarded(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """Pass lines through; an error after the stream started becomes a final ``error`` event."""
    try:
        async for line in lines:
            yield line
    except KefuError as exc:
        yield sse("error", exc.to_dict())
    except Exception:
        log.exception("stream failed")
        yield sse("error", {"error": {"code": "internal_error", "message": "the reply was interrupted"}})


def sse_response(lines: AsyncIterator[str], headers: dict[str, str] | None = None) -> StreamingResponse:
    return StreamingResponse(
        guarded(lines), media_type="text/event-stream", headers={**SSE_HEADERS, **(headers or {})}
    )
