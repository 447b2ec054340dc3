"""One customer message, end to end: validate → redact → persist → route → retrieve → answer → persist.

The customer's message is stored before any model is called, so a crash loses nothing; a model failure
becomes a polite fallback reply, never an exception at the edge.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from anyio import to_thread

from kefu.config import Settings
from kefu.dialog import prompts
from kefu.dialog.answer import Answer
from kefu.dialog.events import Citations, Delta, Done, Event, Meta
from kefu.dialog.knowledge import KnowledgeStage
from kefu.dialog.language import Lang, detect_language
from kefu.dialog.locks import ConversationLocks, LocalLocks
from kefu.dialog.memory import remember
from kefu.dialog.router import route
from kefu.errors import EmptyMessage, MessageTooLong
from kefu.flows import FlowEngine, FlowState, FlowTurn, detect_flow
from kefu.flows.questions import is_question
from kefu.kb.types import Embedder, Hit, Retriever
from kefu.llm.base import ChatModel
from kefu.observe import Metrics, timed_turn
from kefu.safety.compliance import CompliancePolicy, append_disclaimers
from kefu.safety.injection import detect_injection
from kefu.safety.injection import refusal_text as injection_refusal
from kefu.safety.scope import ScopeGuard
from kefu.safety.sentiment import SentimentTracker, score_sentiment
from kefu.storage.base import ConversationRecord, ConversationStore, SessionState, SessionStore, Turn
from kefu.tools.audited import calls_for

if TYPE_CHECKING:
    from kefu.dialog.cache import CacheStage
    from kefu.dialog.handoff import HandoffDesk
    from kefu.experiments import Assignment, Experiments

log = logging.getLogger("kefu.dialog")

SNIPPET_CHARS = 160
PLACEHOLDER_HOLD = 24  # longest placeholder held back while streaming: 「[银行卡号_123456]」 fits


def clean_message(text: str, max_chars: int) -> str:
    stripped = text.strip()
    if not stripped:
        raise EmptyMessage("the message is empty — send the customer's question as non-blank text")
    if len(stripped) > max_chars:
        raise MessageTooLong(
            f"the message has {len(stripped)} characters, more than the limit of {max_chars} — "
            "shorten it or split it into several messages"
        )
    return stripped


def citation(number: int, hit: Hit, kb_version: str = "") -> dict[str, object]:
    chunk = hit.chunk
    return {
        "kb_version": kb_version,  # the knowledge-base version the chunk was served from
        "index": number,
        "chunk_id": chunk.id,
        "doc_id": chunk.doc_id,
        "kind": chunk.kind,
        "title": chunk.title,
        "section": chunk.section,
        "source": chunk.source,
        "snippet": chunk.text.strip()[:SNIPPET_CHARS],
        "score": round(hit.score, 4),
    }


@dataclass
class Assistant:
    settings: Settings
    conversations: ConversationStore
    sessions: SessionStore
    kb: Retriever | None
    model: ChatModel | None
    # (text, conversation_id) → text with PII replaced by placeholders, consistent within a conversation
    redact: Callable[[str, str], str] = lambda text, conversation_id: text
    # (text, conversation_id) → the text with this conversation's placeholders replaced by the values the
    # customer typed, for the reply sent to them only (stored, audited and model text stay redacted):
    # 「收货地址改为：[地址_1]？」 reaches the customer as their address, not as a placeholder
    reveal: Callable[[str, str], str] | None = None
    # Appends one tamper-evident record per turn: (kind, payload, conversation_id). Payloads hold only
    # redacted text: what the model received and returned, or the fixed/FAQ reply that was sent.
    audit: Callable[[str, dict[str, Any], str], object] | None = None
    scope: ScopeGuard | None = None  # refuses medical / legal / investment advice before any retrieval
    compliance: CompliancePolicy | None = None  # disclaimers attached deterministically to matching answers
    flows: FlowEngine | None = None  # order status, returns, cancel, address, invoice: policy as code
    handoffs: HandoffDesk | None = None  # human agents: triggers, queue, bot silence while they talk
    # one turn at a time per conversation: in process by default, across replicas with Redis
    locks: ConversationLocks = field(default_factory=LocalLocks)
    embedder: Embedder | None = None  # the KB's embedder: sentences by meaning across languages
    answers: CacheStage | None = None  # the answer cache: knowledge answers again, without search or model
    metrics: Metrics | None = None  # Prometheus metrics of each turn (kefu.observe); None: not recorded
    # A/B tests (kefu.experiments): a conversation's arm changes the knowledge stage and its cache only
    experiments: Experiments | None = None
    _knowledge: KnowledgeStage | None = field(default=None, repr=False)

    def knowledge(self) -> KnowledgeStage:
        """The knowledge stage, over this assistant's settings, knowledge base, model and flows."""
        if self._knowledge is None:
            self._knowledge = KnowledgeStage(self.settings, self.kb, self.model, self.embedder, self.flows)
        return self._knowledge

    def _stages(self, arm: Assignment | None) -> tuple[KnowledgeStage, CacheStage | None]:
        """The knowledge stage and answer cache of this turn: the arm's in an A/B test, else the base ones."""
        if arm is None or self.experiments is None:
            return self.knowledge(), self.answers
        return self.experiments.stages(arm, self.knowledge(), self.answers)

    async def start_conversation(self, channel: str, external_user: str | None = None) -> ConversationRecord:
        record = await to_thread.run_sync(
            lambda: self.conversations.create_conversation(channel=channel, external_user=external_user)
        )
        if self.metrics is not None:
            self.metrics.conversation_started(channel)
        return record

    async def conversation_for(self, channel: str, external_user: str) -> ConversationRecord:
        """The user's open conversation on this channel, created on first contact."""
        found = await to_thread.run_sync(
            lambda: self.conversations.find_conversation(channel=channel, external_user=external_user)
        )
        return found or await self.start_conversation(channel, external_user)

    async def answer(
        self,
        conversation_id: str,
        text: str,
        *,
        history: list[Turn] | None = None,
        client_id: str | None = None,
    ) -> AsyncIterator[Event]:
        """Answer one customer message, yielding events as the reply is produced.

        ``history`` replaces the stored session (the OpenAI-compatible endpoint without a session key
        sends the whole conversation each time). ``client_id`` is the client's id for this message
        (``Idempotency-Key``): sent again, it gets the stored reply (``Meta.replayed``) instead of a
        second copy, or — when the first attempt stored the message and died before replying — the
        reply now."""
        started = time.perf_counter()  # the metrics' clock: from the customer's message
        cleaned = clean_message(text, self.settings.max_message_chars)
        conversation = await to_thread.run_sync(lambda: self.conversations.get_conversation(conversation_id))
        question = await to_thread.run_sync(lambda: self.redact(cleaned, conversation_id))
        async with self.locks.hold(conversation_id):
            events = self._answer_locked(conversation_id, question, history, client_id)
            if self.metrics is not None:  # first text, full reply, kind, model, cost (kefu.observe)
                first = conversation.updated_at == conversation.created_at  # no message stored yet
                events = timed_turn(
                    events,
                    self.metrics,
                    conversation_id=conversation_id,
                    channel=conversation.channel,
                    first_of_conversation=first,
                    started=started,
                )
            if self.reveal is not None:  # the customer's own values back in the reply sent to them
                reveal = self.reveal
                events = revealed(events, lambda text: reveal(text, conversation_id))
            async for event in events:
                yield event

    async def _answer_locked(
        self, conversation_id: str, question: str, history: list[Turn] | None, client_id: str | None
    ) -> AsyncIterator[Event]:
        started = time.perf_counter()
        sent = None
        if client_id is not None:  # a retry of a message already stored (under the conversation's lock)
            sent = await to_thread.run_sync(lambda: self.conversations.find_sent(conversation_id, client_id))
        if sent is not None and sent[1] is not None:
            earlier, reply = sent[0], sent[1]
            kind = reply.answer_kind or "smalltalk"
            yield Meta(
                conversation_id, earlier.id, kind, earlier.sentiment or 0.0, cache=reply.cache, replayed=True
            )
            if reply.citations:
                yield Citations(reply.citations)
            yield Delta(reply.content)
            yield Done(reply)
            return
        mood = await to_thread.run_sync(lambda: score_sentiment(question).score)
        if sent is not None:  # stored by an attempt that died before replying: answer it now
            user_msg = sent[0]
        else:
            user_msg = await to_thread.run_sync(
                lambda: self.conversations.add_message(
                    conversation_id, "user", question, sentiment=mood, client_id=client_id
                )
            )
        state = await self._load_state(conversation_id, history)
        escalate = escalation(state.sentiment, mood)
        desk = self.handoffs
        waiting = await desk.waiting(conversation_id, user_msg) if desk is not None else None
        if waiting is not None:  # an agent has (or will take) the conversation: the bot stays silent
            if self.audit is not None:
                audit, payload = (
                    self.audit,
                    {"message": question, "handoff": waiting, "sentiment": round(mood, 3)},
                )
                await to_thread.run_sync(lambda: audit("customer_message", payload, conversation_id))
            yield Meta(conversation_id, user_msg.id, "agent_pending", mood, escalate, handoff=waiting)
            yield Done(None)
            return
        lang = detect_language(question)
        arm = self.experiments.assign(conversation_id) if self.experiments is not None else None
        plan = await self._plan(state, question, lang, arm)
        if arm is not None and arm.recorded:  # on every turn of the conversation, whatever answered it
            plan.experiment, plan.arm = arm.experiment, arm.arm.name
        knowledge, answers = self._stages(arm)
        if desk is not None:
            await self._hand_off(desk, plan, state, question, lang, escalate)
        yield Meta(
            conversation_id,
            user_msg.id,
            plan.kind,
            sentiment=mood,
            escalate=escalate,
            handoff=plan.handoff,
            cache=plan.cache or None,
            route=plan.route or None,
        )
        cites = [citation(n, hit, plan.kb_version) for n, hit in enumerate(plan.hits, start=1)]
        if cites:
            yield Citations(cites)
        if plan.cache:  # the cached reply as it was sent: no model
            yield Delta(plan.text)
        else:
            async for piece in knowledge.produce(plan, state, question, lang):
                yield Delta(piece)
            if answers is not None:  # before the notices, which every turn adds itself
                await answers.keep(state, question, plan, lang)
        if plan.reminder and plan.flow_state is not None:  # after the answer, however it was written
            plan.text += plan.reminder
            yield Delta(plan.reminder)
        notices = self._disclaimers(plan, question, cites, lang)
        if notices:
            yield Delta(notices)
        latency_ms = (time.perf_counter() - started) * 1000
        record = await to_thread.run_sync(
            lambda: self.conversations.add_message(
                conversation_id,
                "assistant",
                plan.text,
                status=plan.status,
                answer_kind=plan.kind,
                citations=cites,
                model=plan.model,
                prompt_tokens=plan.usage.prompt_tokens,
                completion_tokens=plan.usage.completion_tokens,
                latency_ms=round(latency_ms, 2),
                # the model route (a complaint handed to a person without a model: "complaint"), its cost
                route=plan.route or ("complaint" if plan.topic == "complaint" else None),
                cost=plan.cost,
                cache=plan.cache or None,
                experiment=plan.experiment or None,
                experiment_arm=plan.arm or None,
            )
        )
        if self.audit is not None:
            kind, payload = audit_entry(question, plan, cites)
            payload.update(sentiment=round(mood, 3), escalate=escalate)
            audit = self.audit
            await to_thread.run_sync(lambda: audit(kind, payload, conversation_id))
        if history is None:
            new_state = remember(state, question, plan.text, self.settings.session_window_turns, mood)
            # small talk in the middle of a flow (「谢谢」「你好」) leaves the flow waiting where it was
            new_state.flow = state.flow if plan.kind == "smalltalk" else plan.flow_state
            await to_thread.run_sync(lambda: self.sessions.save(new_state))
        if desk is not None:
            started = bool(plan.flow_data) and state.flow is None
            await desk.count_turn(conversation_id, plan.kind, plan.flow_data.get("outcome"), started)
        yield Done(record)

    async def _load_state(self, conversation_id: str, history: list[Turn] | None) -> SessionState:
        if history is not None:
            return remember_all(conversation_id, history, self.settings.session_window_turns)
        state = await to_thread.run_sync(lambda: self.sessions.load(conversation_id))
        return state or SessionState(session_id=conversation_id, conversation_id=conversation_id)

    async def _plan(
        self, state: SessionState, question: str, lang: Lang, arm: Assignment | None = None
    ) -> Answer:
        kind = route(question)
        if kind == "greeting":
            return Answer("smalltalk", text=prompts.GREETING[lang].format(shop=self.settings.shop_name))
        if kind == "thanks":
            return Answer("smalltalk", text=prompts.THANKS[lang])
        if kind == "ack" and state.flow is None:  # nothing asked of the customer: no model, no search
            return Answer("smalltalk", text=prompts.ACK[lang])
        if kind == "human":  # the handoff desk queues it (see _hand_off)
            return Answer("handoff", text=prompts.HANDOFF_UNAVAILABLE[lang])
        if kind == "complaint":  # queued with its own reason and an apology (see _hand_off)
            return Answer("handoff", text=prompts.COMPLAINT_UNAVAILABLE[lang], topic="complaint")
        attack = await to_thread.run_sync(lambda: detect_injection(question))
        if attack.is_attack:
            log.warning("refused a prompt-injection attempt (%s): %s", attack.kind, attack.reason)
            return Answer("refused", text=injection_refusal(lang))
        flow_answer = await self._flow(state, question)
        if flow_answer is not None:
            return flow_answer
        answer: Answer | None = None
        if self.scope is not None:
            scope = self.scope
            verdict = await to_thread.run_sync(lambda: scope.check(question))
            if not verdict.in_scope:
                answer = Answer("refused", text=scope.refusal_text(verdict.topic, lang), topic=verdict.topic)
        knowledge, answers = self._stages(arm)  # an A/B test's arm reaches this stage only
        if answer is None and answers is not None:  # asked before: the same answer, no search or model
            answer = await answers.plan(state, question, lang)
        answer = answer or await knowledge.plan(state, question, lang)
        waiting = (
            self.flows.waiting_for(FlowState.from_json(state.flow)) if state.flow and self.flows else None
        )
        if waiting is not None:  # a question asked in the middle of a flow: answered, and the flow keeps
            answer.flow_state = state.flow  # waiting where it was, with a reminder of what it waits for
            answer.reminder = "\n\n" + prompts.FLOW_REMINDER[lang].format(prompt=waiting.text(lang))
        return answer

    async def _flow(self, state: SessionState, question: str) -> Answer | None:
        """Resume the ongoing flow, or start one the message asks for; the engine decides, deterministically."""
        engine = self.flows
        if engine is None:
            return None
        conversation_id = state.conversation_id

        def run(step: Callable[[], FlowTurn]) -> FlowTurn:
            with calls_for(conversation_id):  # the tools' audit records name the conversation
                return step()

        flow_state = FlowState.from_json(state.flow) if state.flow is not None else None
        if flow_state is not None and flow_state.flow not in engine.specs:  # e.g. renamed in an upgrade
            log.warning("dropped a stored flow %r that is no longer loaded", flow_state.flow)
            flow_state = None
        if flow_state is not None:
            if is_question(question) and not engine.answers(flow_state, question):
                return None  # a question that does not answer the flow's: the knowledge base takes it
            turn = await to_thread.run_sync(lambda: run(lambda: engine.advance(flow_state, question)))
        else:
            name = detect_flow(question)
            if name is None:
                return None
            turn = await to_thread.run_sync(
                lambda: run(lambda: engine.start(name, conversation_id, question))
            )
        kind = "handoff" if turn.outcome in ("handoff", "failed") else "flow"
        ongoing = turn.state.to_json() if turn.outcome == "ongoing" else None
        data = {"flow": turn.state.flow, "lang": turn.state.lang, "outcome": turn.outcome, **turn.data}
        return Answer(kind, text=turn.text, flow_state=ongoing, flow_data=data)

    async def _hand_off(
        self, desk: HandoffDesk, plan: Answer, state: SessionState, question: str, lang: Lang, escalate: bool
    ) -> None:
        """Queue the conversation for a human when a trigger fires; the reply becomes the queue notice."""
        outcome = plan.flow_data.get("outcome")
        trigger = await desk.trigger(
            state.conversation_id, plan.kind, escalate=escalate, topic=plan.topic, flow_outcome=outcome
        )
        if trigger is None:
            return
        if plan.flow_data.get("lang") in ("zh", "en"):  # 「3333」 alone: the flow's language, not English
            lang = plan.flow_data["lang"]
        opened = await desk.open(state, question, trigger, lang, plan.flow_data)
        plan.text = opened.reply(trigger, plan.text, lang)
        plan.kind, plan.hits, plan.handoff, plan.flow_state = opened.kind, [], opened.view, None
        plan.cache = ""  # the reply is the queue notice now, not the cached answer

    def _disclaimers(self, plan: Answer, question: str, cites: list[dict[str, object]], lang: Lang) -> str:
        """Append the compliance notices that match this answer; return the appended text."""
        if self.compliance is None or plan.kind in ("refused", "fallback", "smalltalk"):
            return ""
        found = self.compliance.disclaimers(question=question, answer=plan.text, citations=cites, lang=lang)
        final = append_disclaimers(plan.text, found, lang)
        added, plan.text = final[len(plan.text) :], final
        plan.disclaimers = [d.rule_id for d in found]
        return added


async def revealed(events: AsyncIterator[Event], reveal: Callable[[str], str]) -> AsyncIterator[Event]:
    """``events`` with placeholders in the reply's text revealed; a placeholder split across two pieces
    of a stream is held until it is whole (at most ``PLACEHOLDER_HOLD`` characters)."""
    held = ""
    async for event in events:
        if isinstance(event, Delta):
            text = held + event.text
            cut = text.rfind("[")
            if cut >= 0 and "]" not in text[cut:] and len(text) - cut <= PLACEHOLDER_HOLD:
                text, held = text[:cut], text[cut:]
            else:
                held = ""
            if text:
                yield Delta(await to_thread.run_sync(reveal, text) if "[" in text else text)
            continue
        if held:
            yield Delta(await to_thread.run_sync(reveal, held))
            held = ""
        if isinstance(event, Done) and event.message is not None and "[" in event.message.content:
            content = await to_thread.run_sync(reveal, event.message.content)
            event = Done(replace(event.message, content=content))
        yield event
    if held:
        yield Delta(held)


def escalation(recent: list[float], score: float) -> bool:
    """The sentiment rule over the session's recent turns and this one (SentimentTracker's rule)."""
    tracker = SentimentTracker()
    tracker.recent.extend(recent)
    return tracker.update(score)


def audit_entry(question: str, plan: Answer, cites: list[dict[str, object]]) -> tuple[str, dict[str, Any]]:
    """What the audit log keeps of a turn; "model_call" when a model was asked, else "bot_reply"."""
    payload: dict[str, Any] = {
        "question": question,
        "answer_kind": plan.kind,
        "status": plan.status,
        "reply": plan.text,
        "citations": [c["chunk_id"] for c in cites],
        "disclaimers": plan.disclaimers,
    }
    if plan.kb_version:
        payload["kb_version"] = plan.kb_version
    if plan.mode:
        payload["answer_mode"] = plan.mode
    if plan.cache:  # sent again from the answer cache: no model was asked this turn
        payload["cache"] = plan.cache
    if plan.policy:
        payload["policy"] = plan.policy
    if plan.flow_data:
        payload["flow"] = plan.flow_data
    if plan.handoff:
        payload["handoff"] = {k: plan.handoff[k] for k in ("id", "status", "reason")}
    if plan.request is None:
        return "bot_reply", payload
    payload["model"] = plan.model
    if plan.output is not None and plan.output != plan.text:
        payload["output"] = plan.output  # what the model returned, withheld from the customer
    payload["input"] = [{"role": m.role, "content": m.content} for m in plan.request.messages]
    payload["usage"] = {
        "prompt_tokens": plan.usage.prompt_tokens,
        "completion_tokens": plan.usage.completion_tokens,
    }
    return "model_call", payload


def remember_all(conversation_id: str, history: list[Turn], window: int) -> SessionState:
    state = SessionState(session_id=conversation_id, conversation_id=conversation_id)
    for turn in history:
        state = remember(state, turn.user, turn.assistant, window)
    return state
