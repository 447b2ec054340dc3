"""The native conversation API: create a conversation, post a message (JSON or SSE), read the history,
follow it live (an agent's replies, the handoff's status) and read its open handoff."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Header, Response

from kefu.api.deps import AssistantDep, JsonBody, RuntimeDep
from kefu.api.live_sse import live_lines
from kefu.api.schemas import (
    ConversationCreate,
    ConversationPublic,
    MessageCreate,
    MessagePublic,
    MessageReply,
    MessagesPublic,
)
from kefu.api.sse import sse, sse_response
from kefu.dialog.events import Citations, Delta, Done, Event, Meta
from kefu.dialog.live import conversation_channel
from kefu.errors import NotFound

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])

IDEMPOTENCY = (
    "The client's id for this message (same as the body's client_message_id): a request sent again with "
    "the same id gets the reply stored the first time, and the message is stored once"
)


@router.post("", status_code=201, dependencies=[JsonBody])
async def create_conversation(body: ConversationCreate, assistant: AssistantDep) -> ConversationPublic:
    record = await assistant.start_conversation(body.channel, body.external_user)
    return ConversationPublic.of(record)


@router.get("/{conversation_id}")
async def get_conversation(conversation_id: str, assistant: AssistantDep) -> ConversationPublic:
    store = assistant.conversations
    return ConversationPublic.of(await to_thread.run_sync(lambda: store.get_conversation(conversation_id)))


@router.get("/{conversation_id}/messages")
async def list_messages(conversation_id: str, assistant: AssistantDep) -> MessagesPublic:
    store = assistant.conversations

    desk = assistant.handoffs

    def read() -> list[MessagePublic]:
        store.get_conversation(conversation_id)
        messages = store.list_messages(conversation_id)
        names = desk.store.agent_names(m.agent_id for m in messages) if desk is not None else {}
        return [MessagePublic.of(m, names.get(m.agent_id) if m.agent_id else None) for m in messages]

    data = await to_thread.run_sync(read)
    return MessagesPublic(data=data, count=len(data))


@router.post(
    "/{conversation_id}/messages",
    dependencies=[JsonBody],
    response_model=MessageReply,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "JSON reply, or SSE when stream=true"}
    },
)
async def post_message(
    conversation_id: str,
    body: MessageCreate,
    assistant: AssistantDep,
    idempotency_key: Annotated[
        str | None, Header(min_length=1, max_length=64, pattern=r"^[\w.:-]+$", description=IDEMPOTENCY)
    ] = None,
) -> MessageReply | Response:
    client_id = body.client_message_id or idempotency_key
    events = assistant.answer(conversation_id, body.content, client_id=client_id)
    first = await anext(events)  # validation and unknown ids raise here, before any byte is sent
    if body.stream:
        return sse_response(_as_sse(first, events))
    meta = first if isinstance(first, Meta) else None
    done: Done | None = None
    async for event in events:  # to the end: the turn releases the conversation's lock when it returns
        if isinstance(event, Done):
            done = event
    if done is None:
        raise RuntimeError("the assistant finished without a reply")
    message = MessagePublic.of(done.message) if done.message is not None else None
    kind, handoff = (meta.answer_kind, meta.handoff) if meta else (None, None)
    cache = meta.cache if meta else None
    replayed = meta.replayed if meta else False
    return MessageReply(message=message, answer_kind=kind, handoff=handoff, cache=cache, replayed=replayed)


@router.get(
    "/{conversation_id}/events",
    response_class=Response,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "agent_message and handoff events"}
    },
)
async def conversation_events(conversation_id: str, runtime: RuntimeDep) -> Response:
    """Live: ``agent_message`` (an agent's reply) and ``handoff`` (status, place, expected wait);
    a ``: ping`` comment every ``KEFU_SSE_PING_SECONDS``."""
    store = runtime.stores.conversations
    await to_thread.run_sync(lambda: store.get_conversation(conversation_id))
    channel = conversation_channel(conversation_id)
    return sse_response(live_lines(runtime.live, channel, ping_seconds=runtime.settings.sse_ping_seconds))


@router.get("/{conversation_id}/handoff")
async def current_handoff(conversation_id: str, runtime: RuntimeDep) -> dict[str, Any]:
    """The open handoff (queued, active or ticket): status, place, expected wait, agent."""
    desk, store = runtime.handoffs, runtime.stores.conversations
    await to_thread.run_sync(lambda: store.get_conversation(conversation_id))
    handoff = await to_thread.run_sync(lambda: desk.store.current(conversation_id))
    if handoff is None:
        raise NotFound(
            f"conversation {conversation_id!r} has no open handoff (none queued, active or a ticket); "
            "the bot is answering it"
        )
    return await desk.customer_view(handoff)


async def _as_sse(first: Event, events: AsyncIterator[Event]) -> AsyncIterator[str]:
    yield _event_line(first)
    async for event in events:
        yield _event_line(event)


def _event_line(event: Event) -> str:
    if isinstance(event, Meta):
        return sse(
            "meta",
            {
                "message_id": event.message_id,
                "answer_kind": event.answer_kind,
                "sentiment": round(event.sentiment, 3),
                "escalate": event.escalate,
                "handoff": event.handoff,
                "cache": event.cache,  # "exact" / "semantic" from the answer cache, else null
                "replayed": event.replayed,  # a retried client_message_id: the reply stored before
            },
        )
    if isinstance(event, Citations):
        return sse("citations", {"citations": event.citations})
    if isinstance(event, Delta):
        return sse("delta", {"text": event.text})
    message = MessagePublic.of(event.message).model_dump(mode="json") if event.message is not None else None
    return sse("done", {"message": message})
