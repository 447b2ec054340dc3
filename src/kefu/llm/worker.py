"""The local model's own process: a GGUF served over the OpenAI chat API on a socket the parent made.

    python -m kefu.llm.worker --fd N --status-fd M --model PATH --name NAME [--n-ctx 4096]
                              [--threads T] [--nice 10]          (bearer token in KEFU_WORKER_TOKEN)

Started and watched by ``kefu.llm.supervisor``; never run by hand. Why a worker of our own rather than
``python -m llama_cpp.server``: it needs no extra dependencies (Starlette and uvicorn are kefu's own),
it serves on the listening socket the parent keeps open across restarts (one stable URL), it lowers
its own scheduling priority before loading, and it generates exactly as the in-process ``LocalModel``
did (chat template, repeat penalty, token counts, context-window errors that name the setting).

* ``GET /v1/models`` and ``POST /v1/chat/completions`` (``stream`` true or false; ``include_usage``
  honoured), both behind ``Authorization: Bearer <token>``.
* Generation is ``kefu.llm.local.LocalModel``: one thread, requests queued in arrival order, a
  stream stops at the next token when the client goes away.
* Writes ``ready\\n`` to the status pipe once the model is loaded and the server accepts requests.
* Exits when its stdin reaches end of file (the parent is gone: no orphans, even after a SIGKILL).
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TextIO

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from kefu.errors import ModelError
from kefu.llm.base import ChatRequest, Message, Usage
from kefu.llm.local import LocalModel

TOKEN_ENV = "KEFU_WORKER_TOKEN"
_ROLES = {"system", "user", "assistant"}


def build_app(model: LocalModel, token: str) -> Starlette:
    """The worker's HTTP API over ``model``; every request must carry ``token``."""

    async def models(request: Request) -> Response:
        return _authorised(request, token) or JSONResponse(
            {"object": "list", "data": [{"id": model.name, "object": "model", "owned_by": "kefu"}]}
        )

    async def chat(request: Request) -> Response:
        if denied := _authorised(request, token):
            return denied
        try:
            body = await request.json()
            chat_request = parse_request(body)
        except (ValueError, TypeError, KeyError) as exc:
            return _error(400, f"invalid chat request: {exc}")
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(_sse(model, chat_request, include_usage), media_type="text/event-stream")
        try:
            reply = await model.complete(chat_request)
        except ModelError as exc:
            return _error(400 if "KEFU_LOCAL_N_CTX" in exc.message else 500, exc.message)
        return JSONResponse(
            {
                **_envelope(model.name, "chat.completion"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply.text},
                        "finish_reason": reply.finish_reason,
                    }
                ],
                "usage": _usage(reply.usage),
            }
        )

    return Starlette(
        routes=[Route("/v1/models", models), Route("/v1/chat/completions", chat, methods=["POST"])]
    )


def parse_request(body: dict[str, Any]) -> ChatRequest:
    """An OpenAI chat request body as a ``ChatRequest`` (tools are not offered by the local model)."""
    messages = []
    for item in body["messages"]:
        role, content = item["role"], item.get("content") or ""
        if role not in _ROLES or not isinstance(content, str):
            raise ValueError(f"unsupported message (role {role!r}, text content only)")
        messages.append(Message(role, content))
    if not messages:
        raise ValueError("no messages")
    stop = body.get("stop") or []
    return ChatRequest(
        messages,
        max_tokens=int(body.get("max_tokens") or 400),
        temperature=float(body.get("temperature", 0.2)),
        stop=[stop] if isinstance(stop, str) else list(stop),
    )


async def _sse(model: LocalModel, request: ChatRequest, include_usage: bool) -> AsyncIterator[str]:
    envelope = _envelope(model.name, "chat.completion.chunk")
    try:
        async for chunk in model.stream(request):
            if chunk.text:
                yield _event({**envelope, "choices": [_delta({"content": chunk.text}, None)]})
            if chunk.finish_reason is not None:
                yield _event({**envelope, "choices": [_delta({}, chunk.finish_reason)]})
                if include_usage and chunk.usage is not None:
                    yield _event({**envelope, "choices": [], "usage": _usage(chunk.usage)})
    except ModelError as exc:  # headers are sent: the SDK raises on an error event
        yield _event({"error": {"message": exc.message, "type": "model_error"}})
        return
    yield "data: [DONE]\n\n"


def _delta(delta: dict[str, str], finish: str | None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "finish_reason": finish}


def _event(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def _envelope(name: str, kind: str) -> dict[str, Any]:
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": kind, "created": int(time.time()), "model": name}


def _usage(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def _authorised(request: Request, token: str) -> Response | None:
    given = request.headers.get("authorization", "")
    if hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return None
    return _error(401, "missing or wrong bearer token for the kefu model worker")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error"}}, status_code=status)


def _exit_when_parent_goes() -> None:
    """The parent holds our stdin open; end of file means it is gone (even killed): exit at once."""

    def watch() -> None:
        while sys.stdin.buffer.read(1):
            pass
        os._exit(0)

    threading.Thread(target=watch, name="kefu-worker-parent", daemon=True).start()


async def serve(args: argparse.Namespace, status: TextIO) -> None:
    path = Path(args.model)
    model = LocalModel(path, cache_dir=path.parent, n_ctx=args.n_ctx, n_threads=args.threads)
    model.name = args.name
    try:
        await model.check()
    except ModelError as exc:
        status.write(f"error {exc.message}\n")
        raise SystemExit(3) from None
    config = uvicorn.Config(
        build_app(model, os.environ[TOKEN_ENV]),
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[socket.socket(fileno=args.fd)]))
    while not server.started and not serving.done():
        await asyncio.sleep(0.01)
    if server.started:
        status.write("ready\n")
        status.close()
    await serving


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kefu.llm.worker", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--fd", type=int, required=True, help="the listening socket inherited from the parent"
    )
    parser.add_argument("--status-fd", type=int, required=True, help="a pipe: 'ready' is written to it")
    parser.add_argument("--model", required=True, help="a verified GGUF file")
    parser.add_argument("--name", required=True)
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--nice", type=int, default=0)
    args = parser.parse_args(argv)
    _exit_when_parent_goes()
    if args.nice > 0:
        os.nice(args.nice)
    with os.fdopen(args.status_fd, "w", buffering=1) as status:
        asyncio.run(serve(args, status))


if __name__ == "__main__":
    main()
