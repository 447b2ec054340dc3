"""What people see of a handoff: the customer's view, the console's (HandoffPublic), an agent's message
as pushed live, and the extractive summary written for the agent when the bot hands over.

Nobody is shown internal names: a flow's outcome and reason (``policy_no_reason_after_7_days``) reach the
agent as words (「超过 7 天无理由退货期，顾客未说明质量问题」); an unknown one as a general phrase."""

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
            "complaint": "顾客投诉",
            "negative_sentiment": "顾客情绪持续不满",
            "low_confidence": "知识库连续没有可靠答案",
            "sensitive": "敏感问题",
            "flow_failed": "业务办理需要人工处理",
        },
    },
    "en": {
        "reason": "Why",
        "questions": "The customer's questions (oldest first)",
        "flow": "Flow",
        "reasons": {
            "asked": "the customer asked for a person",
            "complaint": "the customer complains",
            "negative_sentiment": "sustained negative sentiment",
            "low_confidence": "no reliable answer twice in a row",
            "sensitive": "a sensitive topic",
            "flow_failed": "a task needs a person",
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
        lines.append(f"{words['flow']}{colon}{flow_in_words(flow, lang)}")
    lines.append(f"{words['questions']}{colon.strip()}")
    earlier = [line for line in state.summary.splitlines() if line.strip()]
    lines += earlier + [f"- {t.user.strip()[:120]}" for t in state.turns] + [f"- {question.strip()[:120]}"]
    return "\n".join(lines)


# Flow names, and the reasons and results a flow ends with, in words (zh, en).
FLOW_NAMES = {
    "order_status": ("查询订单", "order status"),
    "return_exchange": ("退货/换货", "return or exchange"),
    "cancel_order": ("取消订单", "order cancellation"),
    "change_address": ("修改收货地址", "address change"),
    "invoice": ("开发票", "invoice request"),
}
FLOW_REASONS = {
    # the demo flows' handoff steps
    "policy_no_reason_after_7_days": (
        "超过 7 天无理由退货期，顾客未说明质量问题",
        "past the 7-day no-reason return window, and no quality problem given",
    ),
    "policy_over_15_days": ("签收已超过 15 天，不能退货（质量问题可走保修）", "more than 15 days since delivery: "
                            "no return (warranty for a quality problem)"),
    "evidence_needed": ("第 8–15 天的质量问题退换，需要人工查看照片或视频后办理", "a quality return on day 8–15: "
                        "a person must check the photo or video first"),
    "missing_delivery_date": ("订单没有签收时间，无法计算退货期限", "no delivery time on record, so the return "
                              "window cannot be worked out"),
    "return_rejected": ("售后系统没有受理退换申请", "the after-sales system declined the request"),
    "cancel_rejected": ("取消没有被受理，订单状态可能刚变化（如已发货）", "the cancellation was declined; the "
                        "order may just have shipped"),
    "unknown_order_status": ("订单状态异常，需要核实", "the order's status is unusual and needs checking"),
    "shipped_address_change": ("已发货订单要改地址，需联系快递改派", "an address change after shipping: ask the "
                               "carrier to redirect"),
    "address_change_rejected": ("改地址没有被受理，订单状态可能刚变化", "the address change was declined; the "
                                "order may just have shipped"),
    "vat_special_invoice": ("申请增值税专用发票，需要审核资质", "a VAT special invoice: the company's documents "
                            "need review"),
    "invoice_rejected": ("开票申请没有被受理", "the invoice request was declined"),
    # the engine's own
    "too_many_tries": ("几次都没能核对上顾客提供的信息", "the customer's details could not be confirmed after "
                       "several tries"),
    "identity_failed": ("身份核验没有通过", "the identity check failed"),
    "identity_locked": ("手机号后 4 位错误次数过多，核验已暂停", "too many wrong phone digits; checks are "
                        "paused"),
    "identity_not_verified": ("办理前没有完成身份核验", "the identity was not checked before the change"),
    "order_system_unavailable": ("订单系统暂时无法响应，没有做任何更改", "the order system did not respond; "
                                 "nothing was changed"),
    "order_system_rejected": ("订单系统拒绝了这次请求", "the order system declined the request"),
    "order_not_found": ("没有找到订单", "the order was not found"),
    "flow_error": ("流程出错，没有做任何更改", "the task broke off; nothing was changed"),
    "customer_stopped": ("顾客中止了办理", "the customer stopped"),
}  # fmt: skip
FLOW_RESULTS = {
    "return_created": ("已提交售后申请", "after-sales request submitted"),
    "photos_required": (
        "需要照片或视频，顾客稍后再来",
        "needs a photo or video; the customer comes back later",
    ),
    "status_told": ("已告知订单状态", "order status given"),
    "cancelled": ("订单已取消", "order cancelled"),
    "kept": ("顾客决定不取消", "the customer kept the order"),
    "address_changed": ("地址已修改", "address changed"),
    "invoice_requested": ("已提交开票申请", "invoice requested"),
}
_OUTCOMES = {
    "ongoing": ("办理中", "in progress"),
    "completed": ("已完成", "finished"),
    "handoff": ("转人工", "handed over"),
    "failed": ("出错", "broke off"),
    "abandoned": ("顾客中止", "stopped by the customer"),
}
_FLOW_WORDS = {
    "zh": {"flow": "业务办理", "order": "订单 {}", "return": "售后单号 {}", "invoice": "开票申请 {}",
           "other": "需要人工处理", "sep": "，"},
    "en": {"flow": "a task", "order": "order {}", "return": "after-sales number {}", "invoice": "invoice request {}",
           "other": "needs a person", "sep": ", "},
}  # fmt: skip


def flow_in_words(flow: dict[str, Any], lang: Lang) -> str:
    """「退货/换货，订单 XP1002，转人工：超过 7 天无理由退货期…」 from a flow's outcome data."""
    words, pick = _FLOW_WORDS[lang], (0 if lang == "zh" else 1)
    name = FLOW_NAMES.get(str(flow.get("flow")))
    parts = [name[pick] if name else words["flow"]]
    for key, label in (("order_id", "order"), ("return_id", "return"), ("invoice_request_id", "invoice")):
        if isinstance(flow.get(key), str):
            parts.append(words[label].format(flow[key]))
    outcome = _OUTCOMES.get(str(flow.get("outcome")))
    why = FLOW_REASONS.get(str(flow.get("reason"))) or FLOW_RESULTS.get(str(flow.get("result")))
    if outcome is not None:
        detail = (
            why[pick] if why else (words["other"] if flow.get("outcome") in ("handoff", "failed") else "")
        )
        colon = "：" if lang == "zh" else ": "
        parts.append(f"{outcome[pick]}{colon}{detail}" if detail else outcome[pick])
    return words["sep"].join(parts)
