"""A fake OpenAI-compatible chat server for tests, demos and benchmarks.

It speaks the OpenAI wire format closely enough for the official ``openai`` client:

* ``POST /v1/chat/completions`` — non-streaming, or SSE streaming in the OpenAI chunk format
  (a role chunk, one chunk per token-sized piece, a chunk with ``finish_reason``, a final chunk
  with ``choices: []`` and ``usage`` when ``stream_options.include_usage``, then ``[DONE]``).
  Replies come from the ``replies`` queue, else ``kefu.llm.text.scripted_reply``; ``max_tokens``
  truncates (``finish_reason: "length"``) and ``stop`` strings cut the reply.
  A request with ``tools`` (and ``tool_choice`` other than "none") is answered with a tool call
  instead (``finish_reason: "tool_calls"``, streamed as OpenAI tool-call deltas): the next queued one
  (``POST /_fake/tool_calls``), else ``scripted_tool_call`` — deterministic arguments read from the
  last user message by each property's ``pattern`` (searched as a whole word) or ``enum`` (the value
  written out). Tool requests never take a queued text reply.
* ``GET /v1/models`` — one model, ``fake-model``.
* ``latency_ms`` delays the first token; ``tokens_per_second`` (0 = unlimited) paces the rest.
* ``api_key`` (optional) makes every ``/v1`` call without ``Authorization: Bearer <api_key>`` a 401.

Control endpoints (no auth):

* ``POST /_fake/fail {"status": 500, "times": 2}`` — the next N chat calls fail with that status.
* ``POST /_fake/replies {"replies": ["…"]}`` — enqueue replies.
* ``POST /_fake/tool_calls {"tool_calls": [{"name": "…", "arguments": {…} or "raw JSON text"}]}`` —
  enqueue tool calls, one per tool request (``name`` defaults to the tool the request forces).
* ``POST /_fake/config {"latency_ms": 0, "tokens_per_second": 0, "send_usage": true}`` — change
  pacing; ``send_usage: false`` imitates servers that never report usage; the fault modes below.
* ``GET /_fake/requests`` — ``{"requests": [<every chat request body>]}`` (messages, tools,
  tool_choice — what the model received); ``POST /_fake/reset`` (faults back to their start values).

Fault modes, for every failure path (set at start — ``FakeServer(error_rate=…)``, ``kefu fake-llm
--error-rate …`` — or at run time with ``POST /_fake/config``; they apply to ``/v1/chat/completions``
only, so a client's start-up check that lists ``/v1/models`` still passes):

* ``error_rate`` (0..1) — that share of chat calls fail with ``error_status`` (default 500), drawn from a
  ``random.Random(seed)`` (``seed`` default 0: the same calls fail on every run; setting ``seed``
  restarts the draw). ``error_rate: 1`` fails every call.
* ``hang: true`` — accept the request, read it, and never answer (until the client goes away or hang
  is switched off); a client sees its timeout.
* ``tokens_per_second`` — slow tokens (above).
* ``drop_after: N`` — close the connection after N chunks of a streamed reply (the role chunk counts
  as the first), without ``[DONE]``; a non-streamed reply is cut after half its body.
  ``drop_after: null`` (or a negative number) switches it off.

Every chat request is recorded in ``/_fake/requests`` before any fault applies, so a test can count
the calls that reached the server.

``FakeServer`` runs the app with uvicorn in a background thread on a free port (tests,
benchmarks); ``run_fake_server`` runs it in the foreground (``kefu fake-llm``).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from kefu.llm.base import Message, Tool, ToolCall
from kefu.llm.text import estimate_prompt_tokens, pieces, scripted_reply

FAKE_MODEL = "fake-model"


@dataclass
class FakeState:
    latency_ms: float = 0
    tokens_per_second: float = 0
    api_key: str | None = None
    send_usage: bool = True
    replies: deque[str] = field(default_factory=deque)
    tool_calls: deque[dict[str, Any]] = field(default_factory=deque)
    failures: deque[int] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    initial: tuple[float, float] = (0, 0)  # (latency_ms, tokens_per_second) restored by reset
    error_rate: float = 0.0
    error_status: int = 500
    seed: int = 0
    hang: bool = False
    drop_after: int | None = None
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    initial_faults: dict[str, Any] = field(default_factory=dict)  # restored by reset

    def set_faults(self, values: dict[str, Any]) -> None:
        """Apply the fault settings in ``values`` (others unchanged); ``ValueError`` names a bad one."""
        if "error_rate" in values:
            rate = float(values["error_rate"])
            if not 0 <= rate <= 1:
                raise ValueError(f"error_rate must be between 0 and 1, got {rate}")
            self.error_rate = rate
        if "error_status" in values:
            status = int(values["error_status"])
            if not 400 <= status <= 599:
                raise ValueError(f"error_status must be an HTTP error status (400..599), got {status}")
            self.error_status = status
        if "seed" in values:
            self.seed = int(values["seed"])
            self.rng = random.Random(self.seed)
        if "hang" in values:
            self.hang = bool(values["hang"])
        if "drop_after" in values:
            drop = values["drop_after"]
            self.drop_after = None if drop is None or int(drop) < 0 else int(drop)

    def faults(self) -> dict[str, Any]:
        return {
            "error_rate": self.error_rate,
            "error_status": self.error_status,
            "seed": self.seed,
            "hang": self.hang,
            "drop_after": self.drop_after,
        }


def create_fake_openai_app(
    latency_ms: float = 0,
    tokens_per_second: float = 0,
    replies: list[str] | None = None,
    api_key: str | None = None,
    *,
    error_rate: float = 0.0,
    error_status: int = 500,
    seed: int = 0,
    hang: bool = False,
    drop_after: int | None = None,
) -> Starlette:
    """Build the fake server; its ``FakeState`` is ``app.state.fake``."""
    state = FakeState(latency_ms, tokens_per_second, api_key, replies=deque(replies or []))
    state.initial = (latency_ms, tokens_per_second)
    state.set_faults(
        {
            "error_rate": error_rate,
            "error_status": error_status,
            "seed": seed,
            "hang": hang,
            "drop_after": drop_after,
        }
    )
    state.initial_faults = state.faults()
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", _chat, methods=["POST"]),
            Route("/v1/models", _models, methods=["GET"]),
            Route("/_fake/fail", _fail, methods=["POST"]),
            Route("/_fake/replies", _enqueue, methods=["POST"]),
            Route("/_fake/tool_calls", _enqueue_tool_calls, methods=["POST"]),
            Route("/_fake/config", _configure, methods=["POST"]),
            Route("/_fake/requests", _requests, methods=["GET"]),
            Route("/_fake/reset", _reset, methods=["POST"]),
        ]
    )
    app.state.fake = state
    return app


def run_fake_server(
    host: str = "127.0.0.1",
    port: int = 8001,
    latency_ms: float = 0,
    tokens_per_second: float = 0,
    **faults: Any,
) -> None:
    """Serve the fake app until interrupted (the ``kefu fake-llm`` command); ``faults``: error_rate,
    error_status, seed, hang, drop_after."""
    app = create_fake_openai_app(latency_ms=latency_ms, tokens_per_second=tokens_per_second, **faults)
    uvicorn.run(app, host=host, port=port, log_level="info")


class FakeServer:
    """The fake app served by uvicorn in a daemon thread on a free port.

    with FakeServer(replies=["好的"]) as server:
        model = OpenAICompatModel(server.base_url, "k", "fake-model")
    """

    def __init__(self, host: str = "127.0.0.1", **app_options: Any) -> None:
        self.app = create_fake_openai_app(**app_options)
        self.state: FakeState = self.app.state.fake
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, 0))
        self.host, self.port = self._socket.getsockname()[:2]
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="none",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def start(self) -> FakeServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake OpenAI server did not start within 10 s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.state.hang = False  # release hung requests so the server can stop at once
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._socket.close()

    def reset(self) -> None:
        _reset_state(self.state)

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- /v1 -------------------------------------------------------------------------------------


async def _chat(request: Request) -> Response:
    state: FakeState = request.app.state.fake
    denied = _check_key(request, state)
    if denied:
        return denied
    body = await request.json()
    state.requests.append(body)
    if state.failures:
        return _error(state.failures.popleft(), "fake failure (POST /_fake/fail)", "server_error")
    if state.error_rate and state.rng.random() < state.error_rate:
        message = f"fake failure (error_rate {state.error_rate:g})"
        return _error(state.error_status, message, "server_error")
    if state.hang:
        while state.hang and not await request.is_disconnected():
            await asyncio.sleep(0.02)
        if state.hang:
            return Response(status_code=499)  # the client went away; nobody reads this
    await asyncio.sleep(state.latency_ms / 1000)
    if body.get("tools") and body.get("tool_choice") != "none":
        return _dropping(_tool_answer(body, state), state.drop_after)
    text, finish = _reply_for(body, state)
    usage = _usage(body, text)
    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and state.send_usage
        events = _sse(body, text, finish, usage if include_usage else None, state.tokens_per_second)
        return _dropping(StreamingResponse(events, media_type="text/event-stream"), state.drop_after)
    if state.tokens_per_second:
        await asyncio.sleep(len(pieces(text)) / state.tokens_per_second)
    payload = _completion(body, text, finish, usage if state.send_usage else None)
    return _dropping(JSONResponse(payload), state.drop_after)


class _Dropped(Response):
    """``response`` cut short: its headers, then the first ``after`` body chunks (a whole body: half of
    it), then the connection closes without the end of the body."""

    def __init__(self, response: Response, after: int) -> None:
        self.response, self.after = response, after
        self.status_code, self.background = response.status_code, None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(k, v) for k, v in self.response.raw_headers if k.lower() != b"content-length"]
        await send({"type": "http.response.start", "status": self.status_code, "headers": headers})
        if isinstance(self.response, StreamingResponse):
            sent = 0
            async for part in self.response.body_iterator:
                if sent >= self.after:
                    break
                data = part if isinstance(part, bytes | memoryview) else str(part).encode()
                await send({"type": "http.response.body", "body": bytes(data), "more_body": True})
                sent += 1
        else:
            body = bytes(self.response.body)
            await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        # returning here without the last body message makes the server close the connection


def _dropping(response: Response, after: int | None) -> Response:
    return response if after is None else _Dropped(response, after)


async def _models(request: Request) -> Response:
    denied = _check_key(request, request.app.state.fake)
    if denied:
        return denied
    model = {"id": FAKE_MODEL, "object": "model", "created": 0, "owned_by": "kefu-fake"}
    return JSONResponse({"object": "list", "data": [model]})


def _check_key(request: Request, state: FakeState) -> Response | None:
    if state.api_key is None or request.headers.get("authorization") == f"Bearer {state.api_key}":
        return None
    return _error(401, "Incorrect API key provided.", "invalid_request_error", code="invalid_api_key")


def _error(status: int, message: str, kind: str, code: str | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(body, status_code=status)


def _reply_for(body: dict[str, Any], state: FakeState) -> tuple[str, str]:
    messages = [Message(m.get("role", "user"), _content(m.get("content"))) for m in body.get("messages", [])]
    text = state.replies.popleft() if state.replies else scripted_reply(messages)
    stops = body.get("stop") or []
    for stop in [stops] if isinstance(stops, str) else stops:
        text = text.split(stop, 1)[0]
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    parts = pieces(text)
    if limit and len(parts) > limit:
        return "".join(parts[:limit]), "length"
    return text, "stop"


def _content(content: Any) -> str:
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content or "")


def _usage(body: dict[str, Any], text: str) -> dict[str, int]:
    messages = [Message("user", _content(m.get("content"))) for m in body.get("messages", [])]
    prompt, completion = estimate_prompt_tokens(messages), len(pieces(text))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _envelope(body: dict[str, Any], kind: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-fake-{id(body):x}",
        "object": kind,
        "created": int(time.time()),
        "model": body.get("model") or FAKE_MODEL,
        "system_fingerprint": "fp_kefu_fake",
    }


def _completion(body: dict[str, Any], text: str, finish: str, usage: dict[str, int] | None) -> dict[str, Any]:
    message = {"role": "assistant", "content": text, "refusal": None}
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
    return {**_envelope(body, "chat.completion"), "choices": [choice], "usage": usage}


async def _sse(
    body: dict[str, Any], text: str, finish: str, usage: dict[str, int] | None, tokens_per_second: float
) -> AsyncIterator[str]:
    base = _envelope(body, "chat.completion.chunk")
    extra: dict[str, Any] = {"usage": None} if usage is not None else {}

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return _event({**base, "choices": [choice], **extra})

    yield chunk({"role": "assistant", "content": "", "refusal": None})
    for number, part in enumerate(pieces(text)):
        if tokens_per_second and number:
            await asyncio.sleep(1 / tokens_per_second)
        yield chunk({"content": part})
    yield chunk({}, finish)
    if usage is not None:
        yield _event({**base, "choices": [], "usage": usage})
    yield "data: [DONE]\n\n"


def _event(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


# --- tool calls --------------------------------------------------------------------------------


def scripted_tool_call(tools: list[Tool], tool_choice: str | None, messages: list[Message]) -> ToolCall:
    """The deterministic answer to a tool request: a call to the forced tool (else the first), with
    each property found in the last user message — a ``pattern`` searched as a whole word (anchors
    dropped), an ``enum`` value written out in the text; other properties are left out."""
    tool = next((t for t in tools if t.name == tool_choice), tools[0])
    text = next((m.content for m in reversed(messages) if m.role == "user"), "")
    arguments: dict[str, Any] = {}
    for name, schema in (tool.parameters.get("properties") or {}).items():
        value = _find(schema, text)
        if value is not None:
            arguments[name] = value
    return ToolCall(tool.name, json.dumps(arguments, ensure_ascii=False), "call_fake_0")


def _find(schema: dict[str, Any], text: str) -> str | None:
    if isinstance(schema.get("pattern"), str):
        core = schema["pattern"].removeprefix("^").removesuffix("$")
        try:
            found = re.search(rf"(?<![A-Za-z0-9])(?:{core})(?![A-Za-z0-9])", text)
        except re.error:
            return None
        return found.group(0) if found else None
    lowered = text.lower()
    for value in schema.get("enum") or []:
        if isinstance(value, str) and value.lower() in lowered:
            return value
    return None


def _tool_answer(body: dict[str, Any], state: FakeState) -> Response:
    tools = [
        Tool(f.get("name", ""), f.get("description", ""), f.get("parameters") or {})
        for f in (t.get("function") or {} for t in body["tools"])
    ]
    choice = body.get("tool_choice")
    forced = choice["function"]["name"] if isinstance(choice, dict) else None
    if state.tool_calls:
        queued = state.tool_calls.popleft()
        arguments = queued.get("arguments", {})
        raw = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
        call = ToolCall(str(queued.get("name") or forced or tools[0].name), raw, "call_fake_0")
    else:
        messages = [Message(m.get("role", "user"), _content(m.get("content"))) for m in body["messages"]]
        call = scripted_tool_call(tools, forced, messages)
    usage = _usage(body, call.arguments)
    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and state.send_usage
        return StreamingResponse(
            _sse_tool(body, call, usage if include_usage else None), media_type="text/event-stream"
        )
    wire = {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
    message = {"role": "assistant", "content": None, "refusal": None, "tool_calls": [wire]}
    choice_out = {"index": 0, "message": message, "logprobs": None, "finish_reason": "tool_calls"}
    payload = {
        **_envelope(body, "chat.completion"),
        "choices": [choice_out],
        "usage": usage if state.send_usage else None,
    }
    return JSONResponse(payload)


async def _sse_tool(body: dict[str, Any], call: ToolCall, usage: dict[str, int] | None) -> AsyncIterator[str]:
    base = _envelope(body, "chat.completion.chunk")

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return _event({**base, "choices": [choice]})

    yield chunk({"role": "assistant", "content": None})
    head = {"index": 0, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}
    yield chunk({"tool_calls": [head]})
    for part in _split(call.arguments, 8):
        yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]})
    yield chunk({}, "tool_calls")
    if usage is not None:
        yield _event({**base, "choices": [], "usage": usage})
    yield "data: [DONE]\n\n"


def _split(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


# --- /_fake control ---------------------------------------------------------------------------


async def _fail(request: Request) -> Response:
    body = await request.json()
    state: FakeState = request.app.state.fake
    state.failures.extend([int(body.get("status", 500))] * int(body.get("times", 1)))
    return JSONResponse({"pending_failures": list(state.failures)})


async def _enqueue(request: Request) -> Response:
    body = await request.json()
    state: FakeState = request.app.state.fake
    state.replies.extend(str(r) for r in body.get("replies", []))
    return JSONResponse({"queued": len(state.replies)})


async def _enqueue_tool_calls(request: Request) -> Response:
    body = await request.json()
    state: FakeState = request.app.state.fake
    state.tool_calls.extend(dict(c) for c in body.get("tool_calls", []))
    return JSONResponse({"queued": len(state.tool_calls)})


async def _configure(request: Request) -> Response:
    body = await request.json()
    state: FakeState = request.app.state.fake
    state.latency_ms = float(body.get("latency_ms", state.latency_ms))
    state.tokens_per_second = float(body.get("tokens_per_second", state.tokens_per_second))
    state.send_usage = bool(body.get("send_usage", state.send_usage))
    try:
        state.set_faults(body)
    except (TypeError, ValueError) as exc:
        return _error(400, f"bad fault setting: {exc}", "invalid_request_error")
    return JSONResponse(
        {"latency_ms": state.latency_ms, "tokens_per_second": state.tokens_per_second, **state.faults()}
    )


async def _requests(request: Request) -> Response:
    return JSONResponse({"requests": request.app.state.fake.requests})


async def _reset(request: Request) -> Response:
    _reset_state(request.app.state.fake)
    return JSONResponse({"ok": True})


def _reset_state(state: FakeState) -> None:
    state.replies.clear()
    state.tool_calls.clear()
    state.failures.clear()
    state.requests.clear()
    state.send_usage = True
    state.latency_ms, state.tokens_per_second = state.initial
    state.set_faults(state.initial_faults)
