"""Ratings and CSAT (issue #13 part 1; ``kefu.storage.ratings``).

Customers (no token: the conversation id is their handle, as for messages):

* ``POST /v1/conversations/{id}/messages/{message_id}/rating`` — ``{"kind": "thumbs", "score": 0|1}`` or
  ``{"kind": "stars", "score": 1-5, "comment": "…"}`` on one of the bot's answers;
* ``POST /v1/conversations/{id}/rating`` — CSAT of the whole conversation, ``{"score": 1-5, "comment"}``;
* ``POST /v1/chat/completions/ratings`` — the OpenAI-compatible endpoint's extension:
  ``{"message_id": <kefu.message_id of a completion>, "kind", "score", "comment"}``, or
  ``{"conversation_id": <kefu.conversation_id>, "kind": "csat", "score"}``.

Rating the same answer again with the same kind replaces the earlier rating. The comment is redacted
with the conversation's placeholders before it is stored, audited or exported. Errors use the API's
shape ``{"error": {"code", "message"}}``: 404 ``not_found`` (unknown conversation or message, or a
message of another conversation), 422 ``invalid_rating`` (score out of range, a message that is not the
bot's answer) or ``invalid_request`` (a body that does not match).

Staff: ``GET /v1/conversations/{id}/ratings`` (an agent's token or the admin token) and
``GET /v1/ratings/export?format=csv|jsonl&since=…`` (the admin token).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from anyio import to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from kefu.api.agent_auth import agent_for, bearer_token
from kefu.api.deps import JsonBody, RuntimeDep
from kefu.api.kb_admin import require_admin
from kefu.runtime import Runtime
from kefu.storage.ratings import (
    COMMENT_MAX_CHARS,
    EXPORTERS,
    MEDIA_TYPES,
    InvalidRating,
    RatingRecord,
    SqlRatingStore,
)

router = APIRouter(tags=["ratings"])

Comment = Annotated[
    str | None,
    Field(default=None, max_length=COMMENT_MAX_CHARS, description="optional, redacted when stored"),
]


class AnswerRating(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["thumbs", "stars"] = Field(description="thumbs: 0 = 👎, 1 = 👍; stars: 1-5")
    score: int
    comment: Comment = None


class ConversationRating(BaseModel):
    model_config = ConfigDict(extra="forbid")
    score: int = Field(description="1-5: how satisfied the customer is with the whole conversation")
    comment: Comment = None


class CompletionRating(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message_id: str | None = Field(
        default=None, description="kefu.message_id of the completion (a 'chatcmpl-' prefix is accepted)"
    )
    conversation_id: str | None = Field(default=None, description="kefu.conversation_id, for kind csat")
    kind: Literal["thumbs", "stars", "csat"]
    score: int
    comment: Comment = None


async def rate(
    runtime: Runtime,
    conversation_id: str,
    message_id: str | None,
    kind: str,
    score: int,
    comment: str | None,
) -> dict[str, Any]:
    """Redact the comment, store the rating with its answer's snapshot, append one audit record and
    count it in the metrics."""
    assistant = runtime.assistant
    text = (comment or "").strip()
    redacted = await to_thread.run_sync(lambda: assistant.redact(text, conversation_id)) if text else None
    store = SqlRatingStore(runtime.stores.engine)
    record = await to_thread.run_sync(
        lambda: store.add(conversation_id, message_id, kind, score, comment=redacted)
    )
    payload = _audit_payload(record)
    await to_thread.run_sync(
        lambda: runtime.audit.append("rating", payload, conversation_id=conversation_id, actor="customer")
    )
    if assistant.metrics is not None:
        assistant.metrics.rating(kind, score)
    return record.public()


def _audit_payload(record: RatingRecord) -> dict[str, Any]:
    data = record.public()
    return {k: data[k] for k in data if k not in ("conversation_id", "created_at")}


@router.post(
    "/v1/conversations/{conversation_id}/messages/{message_id}/rating",
    status_code=201,
    dependencies=[JsonBody],
)
async def rate_answer(
    conversation_id: str, message_id: str, body: AnswerRating, runtime: RuntimeDep
) -> dict[str, Any]:
    """👍/👎 or 1-5 stars (with an optional comment) on one of the bot's answers."""
    return await rate(runtime, conversation_id, message_id, body.kind, body.score, body.comment)


@router.post("/v1/conversations/{conversation_id}/rating", status_code=201, dependencies=[JsonBody])
async def rate_conversation(
    conversation_id: str, body: ConversationRating, runtime: RuntimeDep
) -> dict[str, Any]:
    """CSAT: 1-5 on the whole conversation, usually when the customer ends the chat."""
    return await rate(runtime, conversation_id, None, "csat", body.score, body.comment)


@router.post("/v1/chat/completions/ratings", status_code=201, dependencies=[JsonBody])
async def rate_completion(body: CompletionRating, runtime: RuntimeDep) -> dict[str, Any]:
    """The OpenAI-compatible endpoint's ratings: a completion by its ``kefu.message_id``, or the
    conversation (``kefu.conversation_id``) with kind csat."""
    if body.kind == "csat":
        if not body.conversation_id:
            raise InvalidRating("a csat rating needs conversation_id (the kefu.conversation_id of a reply)")
        return await rate(runtime, body.conversation_id, None, "csat", body.score, body.comment)
    if not body.message_id:
        raise InvalidRating(f"a {body.kind} rating needs message_id (the kefu.message_id of a completion)")
    message_id = body.message_id.removeprefix("chatcmpl-")
    store = SqlRatingStore(runtime.stores.engine)
    conversation_id = body.conversation_id
    if conversation_id is None:
        conversation_id = await to_thread.run_sync(lambda: store.conversation_of(message_id))
    return await rate(runtime, conversation_id, message_id, body.kind, body.score, body.comment)


async def require_staff(request: Request, runtime: RuntimeDep) -> None:
    """An agent's sign-in token, or the admin token."""
    admin = runtime.settings.admin_token.get_secret_value()
    if admin and bearer_token(request) == admin:
        return
    await agent_for(runtime, bearer_token(request))


@router.get("/v1/conversations/{conversation_id}/ratings")
async def list_ratings(conversation_id: str, request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    """The conversation's ratings, oldest first (agents and the admin)."""
    await require_staff(request, runtime)
    conversations = runtime.stores.conversations
    await to_thread.run_sync(lambda: conversations.get_conversation(conversation_id))
    store = SqlRatingStore(runtime.stores.engine)
    records = await to_thread.run_sync(lambda: store.list(conversation_id))
    return {"data": [r.public() for r in records], "count": len(records)}


@router.get("/v1/ratings/export", response_class=StreamingResponse)
async def export_ratings(
    request: Request,
    runtime: RuntimeDep,
    format: Annotated[Literal["csv", "jsonl"], Query(description="csv or jsonl")] = "jsonl",
    since: Annotated[datetime | None, Query(description="only ratings given at or after, ISO 8601")] = None,
) -> StreamingResponse:
    """Every rating as CSV or JSONL (admin token); comments are redacted as stored."""
    require_admin(request, runtime)
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    store = SqlRatingStore(runtime.stores.engine)
    records = await to_thread.run_sync(lambda: list(store.export(since)))
    filename = f"kefu-ratings.{format}"
    return StreamingResponse(
        iter(list(EXPORTERS[format](records))),
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
