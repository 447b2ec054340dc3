"""Per-conversation counts for operations, and the summary over them (``kefu stats``,
GET /v1/stats/operations).

Definitions (one row per conversation in ``conversation_stats``, written every turn):

* **handoff rate** = conversations with at least one handoff (queued or ticket) / conversations with at
  least one customer message.
* **flow completion rate** = flows that reached outcome "completed" / flows started. A flow that ends
  in "handoff" or "failed" counts as failed; one the customer abandons counts as neither.
* **session completion rate** = completed conversations / conversations. A conversation is *completed*
  when its customer's last message was answered by the bot with a FAQ answer, a grounded answer or a
  flow that completed (``resolved_by`` "bot"), or when an agent closed its handoff (``resolved_by``
  "agent"). Every other answer (no answer, refusal, fallback, an ongoing or failed flow, a handoff, a
  ticket, a message waiting for an agent) makes it not completed; small talk (「谢谢」) leaves it as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, Table, case, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from kefu.storage.models import ConversationRow, ConversationStatsRow, utcnow

COUNTERS = (
    "user_messages",
    "bot_replies",
    "agent_replies",
    "handoffs",
    "low_confidence_streak",
    "flows_started",
    "flows_completed",
    "flows_failed",
)
RESOLVING_KINDS = ("faq", "grounded", "policy")  # plus a flow with outcome "completed"
NEUTRAL_KINDS = ("smalltalk",)
FAILED_FLOW_OUTCOMES = ("handoff", "failed")


@dataclass
class ConversationStats:
    conversation_id: str
    user_messages: int = 0
    bot_replies: int = 0
    agent_replies: int = 0
    handoffs: int = 0
    low_confidence_streak: int = 0
    flows_started: int = 0
    flows_completed: int = 0
    flows_failed: int = 0
    resolved_by: str | None = None
    completed: bool = False
    updated_at: datetime | None = None


def turn_changes(
    answer_kind: str, *, flow_outcome: str | None = None, flow_started: bool = False
) -> tuple[dict[str, int], dict[str, Any]]:
    """(increments, new values) for one customer message answered by the bot with ``answer_kind``
    ("agent_pending" when it waited for an agent). The low-confidence streak is handled by the caller."""
    add = {"user_messages": 1, "bot_replies": 0 if answer_kind == "agent_pending" else 1}
    if flow_started:
        add["flows_started"] = 1
    if flow_outcome == "completed":
        add["flows_completed"] = 1
    elif flow_outcome in FAILED_FLOW_OUTCOMES:
        add["flows_failed"] = 1
    values: dict[str, Any] = {}
    if answer_kind in RESOLVING_KINDS or (answer_kind == "flow" and flow_outcome == "completed"):
        values.update(completed=True, resolved_by="bot")
    elif answer_kind not in NEUTRAL_KINDS:
        values.update(completed=False, resolved_by=None)
    return add, values


class SqlStatsStore:
    """Read and update ``conversation_stats``; concurrent first writes of a row are retried."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime] = utcnow) -> None:
        self.engine = engine
        self.clock = clock

    def get(self, conversation_id: str) -> ConversationStats:
        """The counts so far (all zero before the conversation's first message)."""
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    select(ConversationStatsRow.__table__).where(
                        ConversationStatsRow.conversation_id == conversation_id
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            return ConversationStats(conversation_id)
        names = {f.name for f in fields(ConversationStats)}
        return ConversationStats(**{k: v for k, v in row.items() if k in names})

    def record(
        self, conversation_id: str, add: dict[str, int] | None = None, values: dict[str, Any] | None = None
    ) -> None:
        """Add ``add`` to the counters and set ``values`` (e.g. ``completed``), in one transaction."""
        add, values = add or {}, values or {}
        unknown = (set(add) - set(COUNTERS)) | (set(values) - {*COUNTERS, "resolved_by", "completed"})
        if unknown:
            raise ValueError(f"unknown conversation_stats field(s): {sorted(unknown)}")
        table = cast(Table, ConversationStatsRow.__table__)
        changes: dict[str, Any] = {name: table.c[name] + n for name, n in add.items()}
        changes.update(values, updated_at=self.clock())
        statement = update(table).where(table.c.conversation_id == conversation_id).values(**changes)
        first: dict[str, Any] = {name: 0 for name in COUNTERS} | {"resolved_by": None, "completed": False}
        first.update(add)
        first.update(values, conversation_id=conversation_id, updated_at=self.clock())
        with self.engine.begin() as conn:
            result = conn.execute(statement)
            assert isinstance(result, CursorResult)
            if result.rowcount:
                return
            try:
                with conn.begin_nested():
                    conn.execute(insert(table).values(**first))
            except IntegrityError:  # another writer created the row first
                conn.execute(statement)


def operations_summary(engine: Engine, since: datetime | None = None) -> dict[str, Any]:
    """Handoff rate, flow completion rate and session completion rate over the conversations started
    at or after ``since`` (all when None) that have at least one customer message; rates are None
    when their denominator is 0."""
    s = ConversationStatsRow
    query = select(
        func.count(),
        func.sum(_flag(s.handoffs > 0)),
        func.sum(s.handoffs),
        func.sum(s.flows_started),
        func.sum(s.flows_completed),
        func.sum(s.flows_failed),
        func.sum(_flag(s.completed.is_(True))),
        func.sum(_flag(s.resolved_by == "bot")),
        func.sum(_flag(s.resolved_by == "agent")),
        func.sum(s.user_messages),
        func.sum(s.bot_replies),
        func.sum(s.agent_replies),
    ).where(s.user_messages > 0)
    if since is not None:
        query = query.join(ConversationRow, ConversationRow.id == s.conversation_id).where(
            ConversationRow.created_at >= since
        )
    with engine.connect() as conn:
        row = conn.execute(query).one()
    (
        conversations,
        with_handoff,
        handoffs,
        started,
        completed_flows,
        failed_flows,
        completed,
        by_bot,
        by_agent,
        users,
        bots,
        agents,
    ) = (int(v or 0) for v in row)
    return {
        "since": since.isoformat() if since else None,
        "conversations": conversations,
        "conversations_with_handoff": with_handoff,
        "handoffs": handoffs,
        "handoff_rate": _rate(with_handoff, conversations),
        "flows_started": started,
        "flows_completed": completed_flows,
        "flows_failed": failed_flows,
        "flow_completion_rate": _rate(completed_flows, started),
        "completed_conversations": completed,
        "resolved_by_bot": by_bot,
        "resolved_by_agent": by_agent,
        "session_completion_rate": _rate(completed, conversations),
        "user_messages": users,
        "bot_replies": bots,
        "agent_replies": agents,
    }


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as aligned text lines (``kefu stats``)."""

    def pct(value: float | None) -> str:
        return "—" if value is None else f"{value:.1%}"

    lines = [
        f"conversations            {summary['conversations']}"
        + (f"  (since {summary['since']})" if summary["since"] else ""),
        f"handoff rate             {pct(summary['handoff_rate'])}  "
        f"({summary['conversations_with_handoff']} conversations, {summary['handoffs']} handoffs)",
        f"flow completion rate     {pct(summary['flow_completion_rate'])}  "
        f"({summary['flows_completed']} of {summary['flows_started']} started, "
        f"{summary['flows_failed']} failed)",
        f"session completion rate  {pct(summary['session_completion_rate'])}  "
        f"({summary['resolved_by_bot']} by the bot, {summary['resolved_by_agent']} by agents)",
        f"messages                 {summary['user_messages']} customer, {summary['bot_replies']} bot, "
        f"{summary['agent_replies']} agent",
    ]
    return "\n".join(lines)


def _flag(condition: Any) -> Any:
    return case((condition, 1), else_=0)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None
