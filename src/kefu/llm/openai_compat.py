"""Any OpenAI-compatible chat endpoint: OpenAI, DeepSeek, Qwen/DashScope, vLLM, Ollama, llama.cpp server.

They differ only in base URL, API key and model name, e.g.

    OpenAI     https://api.openai.com/v1                          gpt-4o-mini
    DeepSeek   https://api.deepseek.com/v1                        deepseek-chat
    Qwen       https://dashscope.aliyuncs.com/compatible-mode/v1  qwen-plus
    vLLM       http://127.0.0.1:8000/v1                           <served model name>
    Ollama     http://127.0.0.1:11434/v1                          qwen2.5:0.5b      (any key)
    llama.cpp  http://127.0.0.1:8080/v1                           <anything>        (any key)

Retries are the ``openai`` SDK's own: up to ``max_retries`` more attempts on connection errors,
timeouts, 408/409/429 and 5xx, with exponential backoff (0.5 s, 1 s, 2 s … capped at 8 s, minus up
to 25 % jitter) or the server's ``Retry-After``. ``timeout`` bounds each attempt (for a stream: the
wait for each piece). Streams ask for usage (``stream_options.include_usage``); servers that do
not send it get an estimate (``kefu.llm.text.estimate_tokens``). Every failure becomes a
``ModelError`` whose message names the setting to fix.

Function calling: ``ChatRequest.tools`` go out as OpenAI ``tools`` (type "function") and
``tool_choice`` as "auto" / "none" / "required" or ``{"type": "function", "function": {"name": …}}``
for a tool's name; the calls come back in ``Reply.tool_calls`` (streamed calls are assembled from
their pieces and carried by the last chunk).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
from openai import AsyncOpenAI
from openai.types import CompletionUsage

from kefu.errors import ModelError, ModelUnavailable
from kefu.llm.base import ChatModel, ChatRequest, Reply, StreamChunk, ToolCall, Usage
from kefu.llm.text import estimate_prompt_tokens, estimate_tokens

log = logging.getLogger("kefu.llm")
# failing right now, but reachable and configured: kefu starts, and answers from the knowledge base until
# the endpoint recovers (its circuit breaker shows in /readyz); a wrong URL, key or model stops start-up
_TRANSIENT = (openai.InternalServerError, openai.RateLimitError, openai.APITimeoutError)

NO_KEY = "sk-no-key-needed"  # local servers (Ollama, llama.cpp, vLLM) ignore the key
_CHOICES = ("auto", "none", "required")


class OpenAICompatModel(ChatModel):
    supports_tools = True

    def __init__(
        self, base_url: str, api_key: str, model: str, timeout: float = 60.0, max_retries: int = 2
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self.max_retries = max_retries
        self.name = f"openai:{model}"
        self._client = AsyncOpenAI(
            base_url=self.base_url, api_key=api_key or NO_KEY, timeout=timeout, max_retries=max_retries
        )

    def describe(self) -> str:
        return f"{self.model} @ {self.base_url}"

    async def complete(self, request: ChatRequest) -> Reply:
        try:
            response = await self._client.chat.completions.create(**self._params(request))
        except openai.OpenAIError as exc:
            raise self._model_error(exc) from exc
        if not response.choices:
            raise ModelError(f"the model endpoint {self.base_url} returned no choices; check KEFU_LLM_MODEL")
        choice = response.choices[0]
        text = choice.message.content or ""
        calls = [
            ToolCall(c.function.name, c.function.arguments or "", c.id or "")
            for c in choice.message.tool_calls or []
            if c.type == "function"
        ]
        usage = _usage(response.usage) or _estimate(request, text + _arguments(calls))
        return Reply(text, response.model or self.model, usage, choice.finish_reason or "stop", calls)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        params = {**self._params(request), "stream": True, "stream_options": {"include_usage": True}}
        usage: Usage | None = None
        finish, text = "stop", ""
        calls: dict[int, dict[str, str]] = {}  # by index: id, name, arguments (assembled from pieces)
        try:
            stream = await self._client.chat.completions.create(**params)
        except openai.OpenAIError as exc:
            raise self._model_error(exc) from exc
        received = 0  # chunks: once the stream has begun, a failure is a cut, not a failed connection
        try:
            async with stream:
                async for chunk in stream:
                    received += 1
                    usage = _usage(chunk.usage) or usage
                    for choice in chunk.choices[:1]:
                        finish = choice.finish_reason or finish
                        for piece in choice.delta.tool_calls or []:
                            _add_piece(calls.setdefault(piece.index, {}), piece)
                        if choice.delta.content:
                            text += choice.delta.content
                            yield StreamChunk(text=choice.delta.content)
        except (openai.OpenAIError, httpx.HTTPError) as exc:
            raise self._cut_error(exc, received) from exc
        made = [
            ToolCall(c.get("name", ""), c.get("arguments", ""), c.get("id", ""))
            for _, c in sorted(calls.items())
        ]
        usage = usage or _estimate(request, text + _arguments(made))
        yield StreamChunk(text="", usage=usage, finish_reason=finish, tool_calls=made)

    async def check(self) -> None:
        """Fail fast at start-up: list the models, or, where listing is not offered, send a 1-token call."""
        client = self._client.with_options(max_retries=min(self.max_retries, 1))
        try:
            listed = [m.id async for m in client.models.list()]
        except (openai.NotFoundError, openai.PermissionDeniedError):
            listed = []
        except _TRANSIENT as exc:
            return self._start_anyway(exc)
        except openai.OpenAIError as exc:
            raise ModelUnavailable(self._startup_message(exc)) from exc
        if self.model in listed:
            return
        try:
            await client.chat.completions.create(
                model=self.model, messages=[{"role": "user", "content": "ping"}], max_tokens=1
            )
        except _TRANSIENT as exc:
            return self._start_anyway(exc)
        except openai.OpenAIError as exc:
            raise ModelUnavailable(self._startup_message(exc)) from exc

    def _start_anyway(self, exc: openai.OpenAIError) -> None:
        log.warning(
            "%s — starting anyway: replies come from the knowledge base (FAQ, its own sentences, the offer "
            "of a person) until the endpoint recovers; its circuit breaker shows in /readyz",
            self._startup_message(exc).rstrip("."),
        )

    async def aclose(self) -> None:
        await self._client.close()

    def _params(self, request: ChatRequest) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
        }
        if request.stop:
            params["stop"] = request.stop
        if request.tools:
            params["tools"] = [
                {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
                for t in request.tools
            ]  # fmt: skip
            if request.tool_choice:
                params["tool_choice"] = _tool_choice(request.tool_choice)
        return params

    def _model_error(self, exc: openai.OpenAIError) -> ModelError:
        return ModelError(
            f"model call to {self.describe()} failed: {_explain(exc, self.timeout, self.max_retries)}"
        )

    def _cut_error(self, exc: Exception, received: int) -> ModelError:
        """A stream that began and then failed: the SDK calls a dropped connection "Connection error",
        which would read as "cannot connect"; say where it broke (streams are never retried)."""
        if isinstance(exc, openai.APITimeoutError | httpx.TimeoutException):
            return ModelError(
                f"model call to {self.describe()} failed: the stream stalled after {received} chunk(s) "
                f"(no piece within {self.timeout:g} s); raise KEFU_LLM_TIMEOUT or check the server load"
            )
        cause = exc.__cause__ if isinstance(exc, openai.APIConnectionError) and exc.__cause__ else exc
        return ModelError(
            f"model call to {self.describe()} failed: the stream was cut after {received} chunk(s) "
            f"({type(cause).__name__}: {cause or 'no detail'}); check the model server's logs and load"
        )

    def _startup_message(self, exc: openai.OpenAIError) -> str:
        return (
            f"the model endpoint KEFU_LLM_BASE_URL={self.base_url} (KEFU_LLM_MODEL={self.model}) is not usable: "
            f"{_explain(exc, self.timeout, self.max_retries)}. Fix the setting, start the server, "
            "or set KEFU_LLM=local to use the bundled model"
        )


def _explain(exc: openai.OpenAIError, timeout: float, retries: int) -> str:
    """What went wrong and what to do, for each kind of SDK error."""
    if isinstance(exc, openai.APITimeoutError):
        return f"no reply within {timeout:g} s (tried {retries + 1}×); raise KEFU_LLM_TIMEOUT or check the server load"
    if isinstance(exc, openai.APIConnectionError):
        return (
            f"cannot connect (tried {retries + 1}×); check KEFU_LLM_BASE_URL and that the server is running"
        )
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return f"the API key was rejected ({exc.status_code}); set KEFU_LLM_API_KEY to a valid key"
    if isinstance(exc, openai.NotFoundError):
        return "not found (404); check KEFU_LLM_MODEL and that KEFU_LLM_BASE_URL ends with /v1"
    if isinstance(exc, openai.RateLimitError):
        return f"rate limited (429) after {retries + 1} tries; lower the traffic or raise the provider quota"
    if isinstance(exc, openai.APIStatusError):
        detail = _detail(exc)
        if exc.status_code >= 500:
            return (
                f"server error {exc.status_code} after {retries + 1} tries: {detail}; check the model server"
            )
        return f"request rejected ({exc.status_code}): {detail}; check KEFU_LLM_MODEL and KEFU_LLM_MAX_TOKENS"
    return f"{type(exc).__name__}: {exc}"


def _detail(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return exc.message


def _tool_choice(choice: str) -> str | dict[str, Any]:
    return choice if choice in _CHOICES else {"type": "function", "function": {"name": choice}}


def _add_piece(call: dict[str, str], piece: Any) -> None:
    if piece.id:
        call["id"] = piece.id
    function = piece.function
    if function is not None:
        if function.name:
            call["name"] = call.get("name", "") + function.name
        if function.arguments:
            call["arguments"] = call.get("arguments", "") + function.arguments


def _arguments(calls: list[ToolCall]) -> str:
    return "".join(c.arguments for c in calls)


def _usage(usage: CompletionUsage | None) -> Usage | None:
    if usage is None:
        return None
    return Usage(prompt_tokens=usage.prompt_tokens or 0, completion_tokens=usage.completion_tokens or 0)


def _estimate(request: ChatRequest, text: str) -> Usage:
    return Usage(
        prompt_tokens=estimate_prompt_tokens(request.messages), completion_tokens=estimate_tokens(text)
    )
