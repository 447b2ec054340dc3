"""The baseline for benchmarks/chat_overhead.py: a bare ASGI endpoint that reads a JSON body and answers
JSON, behind the same ServerTiming middleware, served by the same uvicorn. Everything kefu adds on top
(validation, redaction, persistence, retrieval, the model call, sessions) is the measured overhead."""

from __future__ import annotations

import json

from starlette.types import Receive, Scope, Send

from kefu.api.timing import ServerTiming


async def _bare(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    content = json.loads(body or b"{}").get("content", "")
    payload = json.dumps({"message": {"role": "assistant", "content": content}}).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": payload})


app = ServerTiming(_bare)
