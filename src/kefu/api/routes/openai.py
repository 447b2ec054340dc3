"""``POST /v1/chat/completions``: OpenAI-compatible, so the official SDKs work against kefu unchanged.

The conversation is kept by the ``X-Kefu-Session`` header or the ``user`` field. Without either, the
request's own messages are the history (as with any stateless OpenAI endpoint). Citations and the
conversation id travel in the extra ``kefu`` field of the response (of the first chunk when streaming);
``kefu.message_id`` (of the last chunk when streaming) is what ``POST /v1/chat/completions/ratings`` rates.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Response

from kefu.api.deps import AssistantDep, JsonBody
from kefu.api.schemas import ChatCompletionRequest, ChatMessageIn
from kefu.api.sse import sse, sse_response
from kefu.dialog.events import Citations, Delta, Done, Event, Meta
from kefu.errors import InvalidInput
from kefu.storage.base import Turn

router = APIRouter(tags=["openai-compatible"])


def split_history(messages: list[ChatMessageIn]) -> tuple[list[Turn], str]:
    """The last user message is the question; earlier user/assistant pairs are the history."""
    if messages[-1].role != "user":
        raise InvalidInput("the last message must have role 'user' — it is the customer's question")
    turns: list[Turn] = []
    pending: str | None = None
    for message in messages[:-1]:
        if message.role == "user":
            pending = message.text()
        elif message.role == "assistant" and pending is not None:
            turns.append(Turn(user=pending, assistant=message.text()))
            pending = None
    return turns, messages[-1].text()


@router.post("/v1/chat/completions", dependencies=[JsonBody])
async def chat_completions(
    body: ChatCompletionRequest,
    assistant: AssistantDep,
    x_kefu_session: Annotated[str | None, Header(max_length=200)] = None,
) -> Any:
    history, question = split_history(body.messages)
    key = x_kefu_session or body.user
    if key:
        conversation = await assistant.conversation_for("openai", key)
        events = assistant.answer(conversation.id, question)
    else:
        conversation = await assistant.start_conversation("openai")
        events = assistant.answer(conversation.id, question, history=history)
    headers = {"X-Kefu-Session": key or conversation.id}
    first = await anext(events)
    created = int(time.time())
    if body.stream:
        return sse_response(_chunks(first, events, conversation.id, created), headers=headers)
    extra: dict[str, Any] = {"conversation_id": conversation.id}
    done: Done | None = None
    async for event in _chain(first, events):  # to the end: the turn then releases the conversation
        if isinstance(event, Meta) and event.handoff is not None:
            extra.update(answer_kind=event.answer_kind, handoff=event.handoff)
        if isinstance(event, Done):
            done = event
    if done is not None:
        message = done.message  # None while a human agent has the conversation: empty content
        if message is not None:
            extra.update(citations=message.citations, answer_kind=message.answer_kind)
            extra["message_id"] = message.id  # rate it: POST /v1/chat/completions/ratings
        completion = {
            "id": f"chatcmpl-{message.id if message else conversation.id + '-' + str(created)}",
            "object": "chat.completion",
            "created": created,
            "model": "kefu",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": message.content if message else ""},
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(message.prompt_tokens, message.completion_tokens) if message else _usage(0, 0),
            "kefu": extra,
        }
        return _json(completion, headers)
    raise RuntimeError("the assistant finished without a reply")


async def _chain(first: Event, rest: AsyncIterator[Event]) -> AsyncIterator[Event]:
    yield first
    async for event in rest:
        yield event


async def _chunks(
    first: Event, events: AsyncIterator[Event], conversation_id: str, created: int
) -> AsyncIterator[str]:
    extra: dict[str, Any] = {"conversation_id": conversation_id}
    chunk_id = f"chatcmpl-{conversation_id}-{created}"

    def chunk(delta: dict[str, Any], finish: str | None = None, **more: Any) -> str:
        body = {
            "id": chunk_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": "kefu",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **more,
        }
        return sse(None, body)

    started = False
    async for event in _chain(first, events):
        if isinstance(event, Meta):
            extra["answer_kind"] = event.answer_kind
            if event.handoff is not None:
                extra["handoff"] = event.handoff
        elif isinstance(event, Citations):
            extra["citations"] = event.citations
        elif isinstance(event, Delta):
            if not started:
                yield chunk({"role": "assistant", "content": ""}, kefu=extra)
                started = True
            yield chunk({"content": event.text})
        elif isinstance(event, Done):
            if not started:
                yield chunk({"role": "assistant", "content": ""}, kefu=extra)
            message = event.message
            usage = _usage(message.prompt_tokens, message.completion_tokens) if message else _usage(0, 0)
            rating = {"message_id": message.id} if message else {}  # POST /v1/chat/completions/ratings
            yield chunk({}, "stop", usage=usage, kefu={"conversation_id": conversation_id, **rating})
    yield sse(None, "[DONE]")


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _json(body: dict[str, Any], headers: dict[str, str]) -> Response:
    from fastapi.responses import JSONResponse

    return JSONResponse(body, headers=headers)
