"""Human handoff: when the bot hands a conversation to a person, the queue, and what agents do with it.

Triggers, most urgent first (the handoff's ``priority``; a VIP customer's handoff is always 1):

    1  a VIP customer (``KEFU_VIP_USERS``): any trigger below; one answer without a source suffices
    2  a complaint (「我要投诉」「12315」, "file a complaint": ``kefu.dialog.router.wants_to_complain``);
       sustained negative sentiment (``kefu.safety.sentiment``'s escalation rule)
    3  a task flow that failed or hands over by policy; a refusal of a sensitive topic
       (``KEFU_HANDOFF_SCOPE_TOPICS``, default the scope guard's "legal": disputes a person should handle)
    4  the customer asks (「转人工」, "agent", …: ``kefu.dialog.router.wants_human``)
    5  no reliable source twice in a row (``KEFU_HANDOFF_LOW_CONFIDENCE_TURNS``)

While a handoff is queued or active the bot is silent: customer messages go to the agent. Outside
working hours (``kefu.dialog.hours``) a handoff is created as a ticket instead, and the bot keeps answering.
The turn that hands over says one coherent thing: the flow's or the refusal's own text without its offer
to transfer (「我可以为您转接人工客服」), then the queue notice (「已为您转接人工客服…」).
Every state change and agent reply is appended to the audit chain and published as a live event.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from anyio import to_thread

from kefu.config import Settings
from kefu.dialog import prompts
from kefu.dialog.handoff_views import agent_message, agent_view, customer_view, handoff_summary
from kefu.dialog.language import Lang
from kefu.dialog.live import AGENTS_CHANNEL, LiveHub, conversation_channel
from kefu.dialog.orchestrator import clean_message
from kefu.storage.base import ConversationStore, MessageRecord, SessionState
from kefu.storage.handoff import AgentRecord, HandoffRecord, SqlHandoffStore
from kefu.storage.models import utcnow
from kefu.storage.stats import SqlStatsStore, turn_changes

PRIORITY = {
    "vip": 1,
    "complaint": 2,
    "negative_sentiment": 2,
    "flow_failed": 3,
    "sensitive": 3,
    "asked": 4,
    "low_confidence": 5,
}
KEEPS_ANSWER = ("flow_failed", "sensitive")  # the flow's message or the refusal stays before the notice
# (kind, payload, conversation_id, actor) → the audit record; payloads hold redacted text only
AuditAppend = Callable[[str, dict[str, Any], str, str], object]
# A sentence that offers or announces a transfer to a person: the queue notice says that instead.
_TRANSFER = re.compile(
    r"转接|转人工|\b(pass(ing)? you|transfer(ring)? you|connect(ing)? you with|put(ting)? you through)\b",
    re.IGNORECASE,
)
_SENTENCE = re.compile(r".*?(?:[。！？!?]+|\.(?=\s|$)|$)\s*", re.DOTALL)


def without_transfer_offer(text: str) -> str:
    """``text`` without the sentences that offer or announce a transfer to a human agent."""
    paragraphs = []
    for paragraph in text.split("\n\n"):
        kept = [s for s in _SENTENCE.findall(paragraph) if s.strip() and not _TRANSFER.search(s)]
        if "".join(kept).strip():
            paragraphs.append("".join(kept).strip())
    return "\n\n".join(paragraphs)


@dataclass(frozen=True)
class Trigger:
    # "asked" | "complaint" | "negative_sentiment" | "low_confidence" | "sensitive" | "flow_failed"
    reason: str
    priority: int
    vip: bool = False


@dataclass(frozen=True)
class Opened:
    kind: Literal["handoff", "ticket"]  # the turn's answer kind
    view: dict[str, Any]  # what the customer's client gets (meta ``handoff``)
    notice: str  # the queue place and wait, or the ticket text

    def reply(self, trigger: Trigger, planned: str, lang: Lang) -> str:
        """The turn's one message: why (the flow's or refusal's text, or a lead), then the notice."""
        kept = without_transfer_offer(planned) if trigger.reason in KEEPS_ANSWER else ""
        if kept:
            return f"{kept}\n\n{self.notice}"
        lead = prompts.HANDOFF_LEAD.get(trigger.reason, {}).get(lang, "")
        return f"{lead}{' ' if lead and lang == 'en' else ''}{self.notice}"


class HandoffDesk:
    """The queue's rules over ``SqlHandoffStore`` and ``SqlStatsStore``; async, for the event loop."""

    def __init__(
        self,
        settings: Settings,
        store: SqlHandoffStore,
        stats: SqlStatsStore,
        conversations: ConversationStore,
        hub: LiveHub,
        *,
        audit: AuditAppend | None = None,
        redact: Callable[[str, str], str] = lambda text, conversation_id: text,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings, self.store, self.stats = settings, store, stats
        self.conversations, self.hub = conversations, hub
        self.audit, self.redact, self.clock = audit, redact, clock

    # --- the customer's turn -----------------------------------------------------------------------

    async def waiting(self, conversation_id: str, message: MessageRecord) -> dict[str, Any] | None:
        """When a handoff is queued or active: forward ``message`` to the agents, count it, and return the
        handoff's customer view (the bot must stay silent); else None."""
        current = await to_thread.run_sync(lambda: self.store.current(conversation_id))
        if current is None or current.status not in ("queued", "active"):
            return None
        add, values = turn_changes("agent_pending")
        await to_thread.run_sync(lambda: self.stats.record(conversation_id, add, values))
        data = {
            "conversation_id": conversation_id,
            "id": message.id,
            "content": message.content,
            "created_at": message.created_at.isoformat(),
            # internal, for the agent stream's filter (owner or queued); removed before sending
            "_status": current.status,
            "_agent_id": current.agent_id,
        }
        await self.hub.publish(AGENTS_CHANNEL, "customer_message", data)
        return await self.customer_view(current)

    async def trigger(
        self,
        conversation_id: str,
        answer_kind: str,
        *,
        escalate: bool = False,
        topic: str | None = None,
        flow_outcome: str | None = None,
    ) -> Trigger | None:
        """Whether this turn hands over, and why (the most urgent reason wins; a complaint before the
        anger that often comes with it). ``topic`` "complaint" marks a handoff the customer's complaint
        asked for."""
        vip = await self._is_vip(conversation_id)
        reasons = []
        if answer_kind == "handoff" and topic == "complaint":
            reasons.append("complaint")
        if escalate:
            reasons.append("negative_sentiment")
        if flow_outcome in ("handoff", "failed"):
            reasons.append("flow_failed")
        elif answer_kind == "handoff" and topic != "complaint":
            reasons.append("asked")
        if answer_kind == "refused" and topic is not None and topic in self.settings.handoff_scope_topics:
            reasons.append("sensitive")
        if answer_kind == "no_answer" and await self._low_confidence(conversation_id, vip):
            reasons.append("low_confidence")
        if not reasons:
            return None
        reason = min(reasons, key=PRIORITY.__getitem__)
        return Trigger(reason, PRIORITY["vip"] if vip else PRIORITY[reason], vip)

    async def open(
        self, state: SessionState, question: str, trigger: Trigger, lang: Lang, flow: dict[str, Any]
    ) -> Opened:
        """Queue the conversation (a ticket outside working hours); audit and announce it."""
        conversation_id = state.conversation_id
        hours = self.settings.working_hours
        status: Literal["queued", "ticket"] = "queued" if hours.is_open(self.clock()) else "ticket"
        summary = handoff_summary(state, question, trigger.reason, lang, flow)
        handoff = await to_thread.run_sync(lambda: self._open(conversation_id, status, trigger, summary))
        await self._audit("handoff", handoff, "bot", event=handoff.status)
        view = await self.customer_view(handoff)
        await self.queue_changed(handoff)
        if handoff.status == "ticket":
            notice = prompts.handoff_ticket(lang, hours.text, self.settings.handoff_days)
            return Opened("ticket", view, notice)
        notice = prompts.handoff_queued(lang, view["position"] or 1, view["expected_wait_s"] or 0)
        return Opened("handoff", view, notice)

    def _open(
        self, conversation_id: str, status: Literal["queued", "ticket"], trigger: Trigger, summary: str
    ) -> HandoffRecord:
        current = self.store.current(conversation_id)
        if current is not None and current.status == "ticket":  # asked again: the same ticket, or queue it
            return current if status == "ticket" else self.store.promote(current.id, trigger.priority)
        handoff = self.store.open_handoff(
            conversation_id,
            status=status,
            priority=trigger.priority,
            reason=trigger.reason,
            summary=summary,
            vip=trigger.vip,
        )
        self.stats.record(conversation_id, {"handoffs": 1})
        return handoff

    async def count_turn(
        self, conversation_id: str, answer_kind: str, flow_outcome: str | None, flow_started: bool
    ) -> None:
        """Update the conversation's counts after the bot answered."""
        add, values = turn_changes(answer_kind, flow_outcome=flow_outcome, flow_started=flow_started)
        if answer_kind == "no_answer":
            add["low_confidence_streak"] = 1
        else:
            values["low_confidence_streak"] = 0
        await to_thread.run_sync(lambda: self.stats.record(conversation_id, add, values))

    async def _is_vip(self, conversation_id: str) -> bool:
        if not self.settings.vip_users:
            return False
        conversation = await to_thread.run_sync(lambda: self.conversations.get_conversation(conversation_id))
        return conversation.external_user in self.settings.vip_users

    async def _low_confidence(self, conversation_id: str, vip: bool) -> bool:
        turns = self.settings.handoff_low_confidence_turns
        if turns == 0:
            return False
        stats = await to_thread.run_sync(lambda: self.stats.get(conversation_id))
        return stats.low_confidence_streak + 1 >= (1 if vip else turns)

    # --- agents ------------------------------------------------------------------------------------

    async def take(self, handoff_id: str, agent: AgentRecord) -> HandoffRecord:
        before = await to_thread.run_sync(lambda: self.store.get(handoff_id))
        handoff = await to_thread.run_sync(lambda: self.store.take(handoff_id, agent.id))
        if before.status != "active":
            await self._audit("handoff", handoff, f"agent:{agent.username}", event="taken")
            await self.queue_changed(handoff)
        return handoff

    async def finish(
        self, handoff_id: str, agent: AgentRecord, status: Literal["returned", "closed"]
    ) -> HandoffRecord:
        """Hand the conversation back to the bot, or close it (resolved by the agent)."""
        handoff = await to_thread.run_sync(lambda: self.store.finish(handoff_id, agent.id, status))
        if status == "closed":
            values = {"completed": True, "resolved_by": "agent", "low_confidence_streak": 0}
        else:
            values = {"completed": False, "resolved_by": None, "low_confidence_streak": 0}
        await to_thread.run_sync(lambda: self.stats.record(handoff.conversation_id, values=values))
        await self._audit("handoff", handoff, f"agent:{agent.username}", event=status)
        await self.queue_changed(handoff)
        return handoff

    async def reply(self, conversation_id: str, agent: AgentRecord, text: str) -> MessageRecord:
        """Store the agent's message (as written: it is shop text), audit it (redacted) and push it to
        the customer. ``Conflict`` unless ``agent`` owns the conversation's active handoff."""
        cleaned = clean_message(text, self.settings.max_message_chars)
        handoff = await to_thread.run_sync(lambda: self.store.check_owner(conversation_id, agent.id))
        message = await to_thread.run_sync(
            lambda: self.conversations.add_message(conversation_id, "agent", cleaned, agent_id=agent.id)
        )
        await to_thread.run_sync(lambda: self.stats.record(conversation_id, {"agent_replies": 1}))
        if self.audit is not None:
            payload = {
                "handoff_id": handoff.id,
                "message_id": message.id,
                "reply": await to_thread.run_sync(lambda: self.redact(cleaned, conversation_id)),
            }
            audit = self.audit
            await to_thread.run_sync(
                lambda: audit("agent_reply", payload, conversation_id, f"agent:{agent.username}")
            )
        await self.hub.publish(
            conversation_channel(conversation_id), "agent_message", agent_message(message, agent)
        )
        return message

    # --- views and announcements -------------------------------------------------------------------

    async def customer_view(self, handoff: HandoffRecord) -> dict[str, Any]:
        """``{"id", "status", "position", "expected_wait_s", "reason", "agent"}``."""
        position = await to_thread.run_sync(lambda: self.store.position(handoff))
        wait = await self.expected_wait(position) if position is not None else None
        names = await to_thread.run_sync(lambda: self.store.agent_names([handoff.agent_id]))
        return customer_view(handoff, position, wait, names)

    async def expected_wait(self, position: int) -> int:
        """Place × mean handling time of the last N closed handoffs ÷ agents online (at least 1)."""
        return math.ceil(position * await self._seconds_per_place())

    async def _seconds_per_place(self) -> float:
        settings = self.settings

        def estimate() -> float:
            mean = self.store.mean_handling_seconds(
                settings.handoff_wait_window, settings.handoff_default_handle_seconds
            )
            return mean / max(1, self.store.agents_online())

        return await to_thread.run_sync(estimate)

    async def queue_view(self) -> dict[str, list[dict[str, Any]]]:
        """``{"handoffs": [...], "tickets": [...]}`` as the agent console shows them."""
        return await to_thread.run_sync(self._queue_view)

    def _queue_view(self) -> dict[str, list[dict[str, Any]]]:
        handoffs, tickets = self.store.queue(), self.store.tickets()
        everything = [*handoffs, *tickets]
        names = self.store.agent_names(h.agent_id for h in everything)
        last = self.store.last_customer_messages(h.conversation_id for h in everything)
        places = {h.id: n for n, h in enumerate((h for h in handoffs if h.status == "queued"), start=1)}
        return {
            "handoffs": [agent_view(h, places.get(h.id), names, last) for h in handoffs],
            "tickets": [agent_view(h, None, names, last) for h in tickets],
        }

    async def public(self, handoff: HandoffRecord) -> dict[str, Any]:
        """One handoff as the agent console shows it (HandoffPublic)."""

        def build() -> dict[str, Any]:
            names = self.store.agent_names([handoff.agent_id])
            last = self.store.last_customer_messages([handoff.conversation_id])
            return agent_view(handoff, self.store.position(handoff), names, last)

        return await to_thread.run_sync(build)

    async def queue_changed(self, changed: HandoffRecord | None = None) -> None:
        """Tell the agents the new queue, every waiting customer their new place, and the customer of
        ``changed`` its new status."""
        queue = await self.queue_view()
        await self.hub.publish(AGENTS_CHANNEL, "queue", queue)
        waiting = [h for h in queue["handoffs"] if h["status"] == "queued"]
        per_place = await self._seconds_per_place() if waiting else 0.0
        for item in waiting:
            view = {
                "id": item["id"],
                "status": "queued",
                "position": item["position"],
                "expected_wait_s": math.ceil(item["position"] * per_place),
                "reason": item["reason"],
                "agent": None,
            }
            await self.hub.publish(conversation_channel(item["conversation_id"]), "handoff", view)
        if changed is not None and changed.status != "queued":
            await self.hub.publish(
                conversation_channel(changed.conversation_id), "handoff", await self.customer_view(changed)
            )

    async def _audit(self, kind: str, handoff: HandoffRecord, actor: str, *, event: str) -> None:
        if self.audit is None:
            return
        payload = {
            "event": event,
            "handoff_id": handoff.id,
            "status": handoff.status,
            "reason": handoff.reason,
            "priority": handoff.priority,
            "vip": handoff.vip,
        }
        audit = self.audit
        await to_thread.run_sync(lambda: audit(kind, payload, handoff.conversation_id, actor))
