"""The knowledge-gap loop's admin API (issue #13 part 4): FAQ suggestions made from agents' answers to
questions the bot could not answer, and per-chunk / per-document hit counts.

The same admin token as the rest of /v1/kb (``Authorization: Bearer <KEFU_ADMIN_TOKEN>``; 401 without or
wrong, 403 while KEFU_ADMIN_TOKEN is unset).

    curl -X POST -H "Authorization: Bearer $KEFU_ADMIN_TOKEN" http://127.0.0.1:8000/v1/kb/suggestions/scan
    curl -H "Authorization: Bearer $KEFU_ADMIN_TOKEN" http://127.0.0.1:8000/v1/kb/suggestions
    curl -X POST -H "Authorization: Bearer $KEFU_ADMIN_TOKEN" -H 'Content-Type: application/json' \\
         -d '{"answer": "edited answer"}' http://127.0.0.1:8000/v1/kb/suggestions/<id>/approve
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from kefu.api.deps import RuntimeDep
from kefu.api.kb_admin import require_admin
from kefu.api.routes.kb import serve_head
from kefu.kb.gaps import GapFinder, hit_counts
from kefu.runtime import Runtime

log = logging.getLogger("kefu.api.gaps")
REPLY_WINDOW_DAYS = 30  # after an agent's reply, the conversation's messages of the last N days are read
router = APIRouter(prefix="/v1/kb", tags=["knowledge base"], dependencies=[Depends(require_admin)])
Days = Annotated[int, Query(ge=1, le=3650, description="Look at the last N days of conversations")]


class ApproveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str | None = Field(default=None, max_length=2000)  # edited question (default: as suggested)
    answer: str | None = Field(default=None, max_length=10000)  # edited answer


async def suggest_after_reply(runtime: Runtime, conversation_id: str) -> None:
    """After an agent's reply (a background task of the agent API): scan that conversation. A failure is
    logged, never raised — the reply is stored either way, and the next scan finds it."""
    try:
        report = await to_thread.run_sync(
            lambda: finder(runtime).scan(_since(REPLY_WINDOW_DAYS), conversation_id=conversation_id)
        )
    except Exception as exc:
        log.warning(
            "finding FAQ suggestions after an agent reply in %s failed (%s: %s); the conversation is "
            "looked at again by POST /v1/kb/suggestions/scan or `kefu kb suggestions`",
            conversation_id,
            type(exc).__name__,
            exc,
        )
        return
    if report.suggested:
        log.info(
            "conversation %s: %d FAQ suggestion(s) from the agent's answer",
            conversation_id,
            len(report.suggested),
        )


def finder(runtime: Runtime) -> GapFinder:
    return GapFinder(runtime.stores.engine, runtime.knowledge, runtime.assistant.redact)


def _since(days: int) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


@router.post("/suggestions/scan")
async def scan(runtime: RuntimeDep, days: Days = 7) -> dict[str, Any]:
    """Find agents' answers to questions the bot could not answer and store them as suggestions."""
    report = await to_thread.run_sync(lambda: finder(runtime).scan(_since(days)))
    return report.to_dict()


@router.get("/suggestions")
async def list_suggestions(
    runtime: RuntimeDep,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    found = await to_thread.run_sync(lambda: finder(runtime).suggestions(status, limit))
    return {"data": [s.to_dict() for s in found], "count": len(found)}


@router.get("/suggestions/{suggestion_id}")
async def get_suggestion(suggestion_id: str, runtime: RuntimeDep) -> dict[str, Any]:
    return (await to_thread.run_sync(lambda: finder(runtime).get(suggestion_id))).to_dict()


@router.post("/suggestions/{suggestion_id}/approve")
async def approve(suggestion_id: str, runtime: RuntimeDep, body: ApproveBody | None = None) -> dict[str, Any]:
    """Add the (edited) entry as a FAQ: a new KB version, served at once; 409 if it conflicts."""
    edit = body or ApproveBody()
    done = await to_thread.run_sync(
        lambda: finder(runtime).approve(suggestion_id, by="admin", question=edit.question, answer=edit.answer)
    )
    return {"suggestion": done.to_dict(), "version": done.kb_version} | await serve_head(runtime)


@router.post("/suggestions/{suggestion_id}/reject")
async def reject(suggestion_id: str, runtime: RuntimeDep) -> dict[str, Any]:
    done = await to_thread.run_sync(lambda: finder(runtime).reject(suggestion_id, by="admin"))
    return {"suggestion": done.to_dict()}


@router.get("/hits")
async def hits(runtime: RuntimeDep, days: Days = 30) -> dict[str, Any]:
    """How often each chunk and document was cited, in failed answers, and rated (computed now)."""
    return await to_thread.run_sync(lambda: hit_counts(runtime.stores.engine, _since(days)))
