"""The agent console's API (/v1/agent/…) and the operations counts (/v1/stats/operations, /v1/stats/costs).

Every endpoint but login needs ``Authorization: Bearer <token>`` (401 without, 403 for a deactivated
agent); the event stream also takes ``?token=`` because browsers' EventSource cannot send headers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, BackgroundTasks, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from kefu.api.agent_auth import AgentDep, agent_for, bearer_token, issue_token, token_key
from kefu.api.deps import JsonBody, RuntimeDep
from kefu.api.live_sse import live_lines
from kefu.api.routes.gaps import suggest_after_reply
from kefu.api.sse import sse_response
from kefu.dialog.handoff_views import agent_message
from kefu.dialog.live import AGENTS_CHANNEL, LiveEvent
from kefu.errors import InvalidInput
from kefu.storage.costs import cost_summary
from kefu.storage.handoff import AgentRecord
from kefu.storage.stats import operations_summary

router = APIRouter(prefix="/v1/agent", tags=["agent"])
stats_router = APIRouter(prefix="/v1/stats", tags=["agent"])


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class ReplyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


def agent_public(agent: AgentRecord) -> dict[str, str]:
    return {"id": agent.id, "username": agent.username, "display_name": agent.display_name}


@router.post("/login", dependencies=[JsonBody])
async def login(body: LoginBody, runtime: RuntimeDep) -> dict[str, Any]:
    store = runtime.handoffs.store
    agent = await to_thread.run_sync(lambda: store.authenticate(body.username, body.password))
    await to_thread.run_sync(lambda: store.touch_agent(agent.id))
    token = issue_token(token_key(runtime.settings), agent.id, runtime.settings.agent_token_ttl_seconds)
    return {"token": token, "agent": agent_public(agent)}


@router.get("/me")
async def me(agent: AgentDep) -> dict[str, str]:
    return agent_public(agent)


@router.get("/queue")
async def queue(agent: AgentDep, runtime: RuntimeDep) -> dict[str, list[dict[str, Any]]]:
    return await runtime.handoffs.queue_view()


@router.post("/handoffs/{handoff_id}/take")
async def take(handoff_id: str, agent: AgentDep, runtime: RuntimeDep) -> dict[str, Any]:
    desk = runtime.handoffs
    return await desk.public(await desk.take(handoff_id, agent))


@router.post("/handoffs/{handoff_id}/release")
async def release(handoff_id: str, agent: AgentDep, runtime: RuntimeDep) -> dict[str, Any]:
    desk = runtime.handoffs
    return await desk.public(await desk.finish(handoff_id, agent, "returned"))


@router.post("/handoffs/{handoff_id}/close")
async def close(handoff_id: str, agent: AgentDep, runtime: RuntimeDep) -> dict[str, Any]:
    desk = runtime.handoffs
    return await desk.public(await desk.finish(handoff_id, agent, "closed"))


@router.get("/conversations/{conversation_id}")
async def conversation(conversation_id: str, agent: AgentDep, runtime: RuntimeDep) -> dict[str, Any]:
    """The full history (redacted customer text, as stored), the latest handoff and its summary."""
    desk, conversations = runtime.handoffs, runtime.stores.conversations

    def read() -> tuple[Any, Any, dict[str, str]]:
        conversations.get_conversation(conversation_id)
        messages = conversations.list_messages(conversation_id)
        latest = desk.store.latest(conversation_id)
        names = desk.store.agent_names(m.agent_id for m in messages)
        return messages, latest, names

    messages, latest, names = await to_thread.run_sync(read)
    return {
        "conversation_id": conversation_id,
        "handoff": await desk.public(latest) if latest else None,
        "summary": latest.summary if latest else "",
        "messages": [
            {
                "id": m.id,
                "role": m.role,
                "content": m.content,
                "created_at": m.created_at.isoformat(),
                "answer_kind": m.answer_kind,
                "agent": names.get(m.agent_id) if m.agent_id else None,
            }
            for m in messages
        ],
    }


@router.post("/conversations/{conversation_id}/messages", status_code=201, dependencies=[JsonBody])
async def reply(
    conversation_id: str, body: ReplyBody, agent: AgentDep, runtime: RuntimeDep, background: BackgroundTasks
) -> dict[str, Any]:
    message = await runtime.handoffs.reply(conversation_id, agent, body.text)
    background.add_task(suggest_after_reply, runtime, conversation_id)  # knowledge gaps (issue #13 part 4)
    return {"message": agent_message(message, agent)}


@router.get("/events", response_class=Response, responses={200: {"content": {"text/event-stream": {}}}})
async def events(
    request: Request, runtime: RuntimeDep, token: Annotated[str | None, Query(max_length=4096)] = None
) -> Response:
    """``queue`` on any queue change; ``customer_message`` for queued conversations and the agent's own."""
    agent = await agent_for(runtime, bearer_token(request) or token)
    store = runtime.handoffs.store

    def keep(event: LiveEvent) -> dict[str, Any] | None:
        if event.name != "customer_message":
            return event.data
        data = event.data
        if data.get("_status") != "queued" and data.get("_agent_id") != agent.id:
            return None
        return {k: v for k, v in data.items() if not k.startswith("_")}

    async def heartbeat() -> None:
        await to_thread.run_sync(lambda: store.touch_agent(agent.id))

    lines = live_lines(
        runtime.live,
        AGENTS_CHANNEL,
        ping_seconds=runtime.settings.sse_ping_seconds,
        keep=keep,
        on_ping=heartbeat,
    )
    return sse_response(lines)


@stats_router.get("/operations")
async def operations(
    agent: AgentDep,
    runtime: RuntimeDep,
    since: Annotated[datetime | None, Query(description="ISO 8601; conversations started since")] = None,
) -> dict[str, Any]:
    """Handoff rate, flow completion rate and session completion rate (see ``kefu.storage.stats``)."""
    if since is not None and since.tzinfo is None:
        raise InvalidInput("since needs a time zone, e.g. 2026-01-01T00:00:00+08:00 or …Z")
    engine = runtime.stores.engine
    return await to_thread.run_sync(lambda: operations_summary(engine, since))


@stats_router.get("/costs")
async def costs(
    agent: AgentDep,
    runtime: RuntimeDep,
    since: Annotated[datetime | None, Query(description="ISO 8601; bot replies since")] = None,
) -> dict[str, Any]:
    """Model cost per UTC day by route and model, the costliest conversations, the answer-cache hit rate
    (see ``kefu.storage.costs``)."""
    if since is not None and since.tzinfo is None:
        raise InvalidInput("since needs a time zone, e.g. 2026-01-01T00:00:00+08:00 or …Z")
    engine = runtime.stores.engine
    return await to_thread.run_sync(lambda: cost_summary(engine, since))
