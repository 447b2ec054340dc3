"""The week's failed cases, read from the stored conversations (redacted text only).

A *failed case* is one bot answer that failed the customer, with the customer question it answered:

* ``not_in_kb``    — answer kind "no_answer" (nothing in the knowledge base scored), or a handoff the
                     desk opened because of repeated low confidence
* ``replaced``     — the source check withheld the model's wording (messages.status "replaced")
* ``fallback``     — the model failed and the fallback reply was sent (status or kind "fallback")
* ``handoff``      — the customer asked for a person right after a bot answer (the question is the one
                     that answer was to); a handoff with no stored reason counts here too
* ``complaint``    — the customer complained and was handed to a person
* ``anger``        — handed to a person on the sentiment escalation (handoff reason negative_sentiment)
* ``flow_failed``  — a flow (return, cancel, …) ended failed or handed off
* ``sensitive``    — a refused sensitive topic handed to a person (a policy case)
* ``low_rating``   — a 👎 or 1–2 stars on the answer (the ``ratings`` table, when it exists: migration 0008)

One answer is one case however many signals it has (a 👎 on a "no answer" is both).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, MetaData, Table, and_, inspect, select

from kefu.storage.models import HandoffRow, MessageRow

SIGNALS = (
    "not_in_kb",
    "replaced",
    "fallback",
    "handoff",
    "complaint",
    "anger",
    "flow_failed",
    "sensitive",
    "low_rating",
)
ANSWERED_KINDS = ("faq", "grounded", "policy", "flow")  # a bot answer the customer may not accept
HANDOFF_SIGNALS = {  # the handoff desk's reason → the case's signal
    "complaint": "complaint",
    "negative_sentiment": "anger",
    "flow_failed": "flow_failed",
    "sensitive": "sensitive",
    "low_confidence": "not_in_kb",
}
LOW_STARS = 2  # 1–2 stars on an answer is a low rating; a 👎 (thumbs 0) too


@dataclass
class FailedCase:
    conversation_id: str
    message_id: str  # the bot's answer that failed
    question: str  # the customer's question, as stored (redacted)
    created_at: datetime
    answer_kind: str
    signals: list[str] = field(default_factory=list)
    chunk_ids: list[str] = field(default_factory=list)  # what the answer cited
    route: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "conversation_id": self.conversation_id,
            "message_id": self.message_id,
            "question": self.question,
            "created_at": self.created_at.isoformat(),
            "answer_kind": self.answer_kind,
            "signals": self.signals,
        }


def find_failures(engine: Engine, since: datetime, until: datetime) -> list[FailedCase]:
    """The failed cases among the messages stored in [since, until), oldest first."""
    m = MessageRow
    query = (
        select(
            m.id,
            m.conversation_id,
            m.seq,
            m.role,
            m.content,
            m.status,
            m.answer_kind,
            m.citations,
            m.route,
            m.created_at,
        )
        .where(and_(m.created_at >= since, m.created_at < until), m.role.in_(("user", "assistant")))
        .order_by(m.conversation_id, m.seq)
    )
    h = HandoffRow
    handoff_query = (
        select(h.conversation_id, h.reason, h.created_at)
        .where(and_(h.created_at >= since, h.created_at < until))
        .order_by(h.conversation_id, h.created_at)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
        handoffs: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
        for conversation_id, reason, created_at in conn.execute(handoff_query):
            handoffs[conversation_id].append((created_at, reason))
        low = _low_rated(engine, conn, since, until)
    cases: list[FailedCase] = []
    by_conversation: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_conversation[row.conversation_id].append(row)
    for conversation_id, messages in by_conversation.items():
        cases.extend(_conversation_failures(messages, handoffs.get(conversation_id, []), low))
    cases.sort(key=lambda c: (c.created_at, c.message_id))
    return cases


def _conversation_failures(
    messages: list[Any], handoffs: list[tuple[datetime, str]], low: set[str]
) -> list[FailedCase]:
    cases = []
    question: str | None = None  # the customer's latest message
    answered: str | None = None  # the question of the bot's latest real answer
    pending = list(handoffs)
    for row in messages:
        if row.role == "user":
            question = row.content
            continue
        if question is None:
            continue
        signals, asked_about = _signals(row, pending, answered, question)
        if row.id in low:
            signals.append("low_rating")
        if signals:
            cites = [str(c.get("chunk_id")) for c in row.citations or [] if isinstance(c, dict)]
            cases.append(
                FailedCase(
                    row.conversation_id,
                    row.id,
                    asked_about,
                    row.created_at,
                    row.answer_kind or "",
                    signals,
                    cites,
                    row.route,
                )
            )
        if row.answer_kind in ANSWERED_KINDS:
            answered = question
    return cases


def _signals(
    row: Any, pending: list[tuple[datetime, str]], answered: str | None, question: str
) -> tuple[list[str], str]:
    """(signals, the question they are about) of one bot message."""
    kind, status = row.answer_kind or "", row.status or ""
    signals = []
    if kind == "no_answer":
        signals.append("not_in_kb")
    if status == "replaced" and kind != "refused":
        signals.append("replaced")
    if status == "fallback" or kind == "fallback":
        signals.append("fallback")
    if kind not in ("handoff", "ticket"):
        return signals, question
    reason = _handoff_reason(pending, row.created_at)
    signal = HANDOFF_SIGNALS.get(reason or "", "handoff")
    if signal == "handoff" and answered is None and reason == "asked":
        return signals, question  # 「转人工」 before any bot answer: a choice, not a failure
    if signal == "handoff" and answered is not None:
        return [*signals, "handoff"], answered  # the answer they did not accept
    return [*signals, signal], question


def _handoff_reason(pending: list[tuple[datetime, str]], at: datetime) -> str | None:
    """The reason of the latest handoff opened at or before ``at`` (consumed)."""
    found = None
    while pending and pending[0][0] <= at:
        found = pending.pop(0)[1]
    return found


def _low_rated(engine: Engine, conn: Any, since: datetime, until: datetime) -> set[str]:
    """Ids of answers rated 👎 or 1–2 stars in the window; empty before migration 0008 (no table)."""
    if not inspect(engine).has_table("ratings"):
        return set()
    ratings = Table("ratings", MetaData(), autoload_with=conn)
    c = ratings.c
    m = MessageRow
    query = (  # by the rated answer's time (a typed column on SQLite and PostgreSQL alike)
        select(c.message_id)
        .join(m.__table__, m.id == c.message_id)
        .where(and_(m.created_at >= since, m.created_at < until))
        .where(((c.kind == "thumbs") & (c.score == 0)) | ((c.kind == "stars") & (c.score <= LOW_STARS)))
    )
    return {str(r[0]) for r in conn.execute(query)}
