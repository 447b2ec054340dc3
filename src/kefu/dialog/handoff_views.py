"""What people see of a handoff: the customer's view, the console's (HandoffPublic), an agent's message
as pushed live, and the extractive summary written for the agent when the bot hands over."""

from __future__ import annotations

from typing import Any

from kefu.dialog.language import Lang
from kefu.storage.base import MessageRecord, SessionState
from kefu.storage.handoff import AgentRecord, HandoffRecord


def customer_view(
    handoff: HandoffRecord, position: int | None, wait: int | None, names: dict[str, str]
) -> dict[str, Any]:
    return {
        "id": handoff.id,
        "status": handoff.status,
        "position": position,
        "expected_wait_s": wait,
        "reason": handoff.reason,
        "agent": names.get(handoff.agent_id) if handoff.agent_id else None,
    }


def agent_view(
    handoff: HandoffRecord, position: int | None, names: dict[str, str], last: dict[str, str]
) -> dict[str, Any]:
    """HandoffPublic: what the console shows of one handoff."""
    return {
        "id": handoff.id,
        "conversation_id": handoff.conversation_id,
        "status": handoff.status,
        "priority": handoff.priority,
        "reason": handoff.reason,
        "position": position,
        "created_at": handoff.created_at.isoformat(),
        "taken_at": handoff.taken_at.isoformat() if handoff.taken_at else None,
        "agent": names.get(handoff.agent_id) if handoff.agent_id else None,
        "summary": handoff.summary,
        "last_message": last.get(handoff.conversation_id, ""),
        "vip": handoff.vip,
    }


def agent_message(message: MessageRecord, agent: AgentRecord | None) -> dict[str, Any]:
    return {
        "id": message.id,
        "role": "agent",
        "content": message.content,
        "agent": agent.display_name if agent else None,
        "created_at": message.created_at.isoformat(),
    }


_SUMMARY = {
    "zh": {
        "reason": "转人工原因",
        "questions": "顾客的问题（由早到晚）",
        "flow": "流程",
        "reasons": {
            "asked": "顾客要求人工",
            "negative_sentiment": "顾客情绪持续不满",
            "low_confidence": "知识库连续没有可靠答案",
            "sensitive": "敏感问题",
            "flow_failed": "业务流程未能完成",
        },
    },
    "en": {
        "reason": "Why",
        "questions": "The customer's questions (oldest first)",
        "flow": "Flow",
        "reasons": {
            "asked": "the customer asked for a person",
            "negative_sentiment": "sustained negative sentiment",
            "low_confidence": "no reliable answer twice in a row",
            "sensitive": "a sensitive topic",
            "flow_failed": "a task flow could not finish",
        },
    },
}


def handoff_summary(
    state: SessionState, question: str, reason: str, lang: Lang, flow: dict[str, Any] | None = None
) -> str:
    """An extractive summary for the agent: why, the flow if any, the customer's questions (redacted)."""
    words = _SUMMARY[lang]
    reasons: dict[str, str] = words["reasons"]  # type: ignore[assignment]
    colon = "：" if lang == "zh" else ": "
    lines = [f"{words['reason']}{colon}{reasons.get(reason, reason)}"]
    if flow:
        detail = ", ".join(f"{k}={v}" for k, v in flow.items() if isinstance(v, str | int | float))
        lines.append(f"{words['flow']}{colon}{detail}")
    lines.append(f"{words['questions']}{colon.strip()}")
    earlier = [line for line in state.summary.splitlines() if line.strip()]
    lines += earlier + [f"- {t.user.strip()[:120]}" for t in state.turns] + [f"- {question.strip()[:120]}"]
    return "\n".join(lines)
