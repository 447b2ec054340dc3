"""One customer message, end to end: validate → redact → persist → route → retrieve → answer → persist.

The customer's message is stored before any model is called, so a crash loses nothing; a model failure
becomes a polite fallback reply, never an exception at the edge.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from anyio import to_thread

from kefu.config import Settings
from kefu.dialog import prompts
from kefu.dialog.events import Citations, Delta, Done, Event, Meta
from kefu.dialog.extractive import (
    Extract,
    extract_answer,
    extract_by_meaning,
    extract_parts,
    part_query,
    split_parts,
)
from kefu.dialog.grounding import contradictions, is_grounded, is_rewording
from kefu.dialog.language import Lang, detect_language
from kefu.dialog.memory import is_follow_up, remember, retrieval_query, with_previous_question
from kefu.dialog.policy_answers import ReturnPolicy
from kefu.dialog.router import route
from kefu.errors import EmptyMessage, MessageTooLong, ModelError
from kefu.flows import FlowEngine, FlowState, FlowTurn, detect_flow
from kefu.flows.questions import is_question
from kefu.kb.types import Embedder, Hit, Retrieval, Retriever
from kefu.llm.base import ChatModel, ChatRequest, Message, Usage
from kefu.safety.compliance import CompliancePolicy, append_disclaimers
from kefu.safety.injection import detect_injection, leaks_prompt
from kefu.safety.injection import refusal_text as injection_refusal
from kefu.safety.scope import ScopeGuard
from kefu.safety.sentiment import SentimentTracker, score_sentiment
from kefu.storage.base import ConversationRecord, ConversationStore, SessionState, SessionStore, Turn
from kefu.tools.audited import calls_for

if TYPE_CHECKING:
    from kefu.dialog.handoff import HandoffDesk

log = logging.getLogger("kefu.dialog")

SNIPPET_CHARS = 160


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
class _Answer:
    kind: str
    hits: list[Hit] = field(default_factory=list)
    text: str = ""
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    status: str = "ok"
    request: ChatRequest | None = None
    flow_state: str | None = None  # the flow to resume next turn (JSON), None when none is ongoing
    flow_data: dict[str, Any] = field(default_factory=dict)
    kb_version: str = ""  # the knowledge-base version searched for this answer ("v7"), if any
    disclaimers: list[str] = field(default_factory=list)
    topic: str | None = None  # the scope guard's refused topic ("legal", …)
    handoff: dict[str, Any] | None = None  # the handoff this turn opened (its customer view)
    extract: Extract | None = None  # the knowledge base's own sentences for this question (grounded)
    mode: str = ""  # how a knowledge answer was written: extractive, rephrase, translate, generate, policy
    policy: dict[str, Any] | None = None  # the policy rules' verdicts for a hypothetical question
    output: str | None = None  # what the model returned, when that is not what was sent (replaced)
    reminder: str = ""  # appended after the answer: what a waiting flow still needs from the customer


@dataclass
class Assistant:
    settings: Settings
    conversations: ConversationStore
    sessions: SessionStore
    kb: Retriever | None
    model: ChatModel | None
    # (text, conversation_id) → text with PII replaced by placeholders, consistent within a conversation
    redact: Callable[[str, str], str] = lambda text, conversation_id: text
    # Appends one tamper-evident record per turn: (kind, payload, conversation_id). Payloads hold only
    # redacted text: what the model received and returned, or the fixed/FAQ reply that was sent.
    audit: Callable[[str, dict[str, Any], str], object] | None = None
    scope: ScopeGuard | None = None  # refuses medical / legal / investment advice before any retrieval
    compliance: CompliancePolicy | None = None  # disclaimers attached deterministically to matching answers
    flows: FlowEngine | None = None  # order status, returns, cancel, address, invoice: policy as code
    handoffs: HandoffDesk | None = None  # human agents: triggers, queue, bot silence while they talk
    _locks: weakref.WeakValueDictionary[str, asyncio.Lock] = field(
        default_factory=weakref.WeakValueDictionary
    )
    _return_policy: list[ReturnPolicy | None] = field(default_factory=list)  # computed once from the flows
    embedder: Embedder | None = None  # the KB's embedder: sentences by meaning across languages

    async def start_conversation(self, channel: str, external_user: str | None = None) -> ConversationRecord:
        return await to_thread.run_sync(
            lambda: self.conversations.create_conversation(channel=channel, external_user=external_user)
        )

    async def conversation_for(self, channel: str, external_user: str) -> ConversationRecord:
        """The user's open conversation on this channel, created on first contact."""
        found = await to_thread.run_sync(
            lambda: self.conversations.find_conversation(channel=channel, external_user=external_user)
        )
        return found or await self.start_conversation(channel, external_user)

    async def answer(
        self, conversation_id: str, text: str, *, history: list[Turn] | None = None
    ) -> AsyncIterator[Event]:
        """Answer one customer message, yielding events as the reply is produced.

        ``history`` replaces the stored session (the OpenAI-compatible endpoint without a session key
        sends the whole conversation each time)."""
        cleaned = clean_message(text, self.settings.max_message_chars)
        await to_thread.run_sync(lambda: self.conversations.get_conversation(conversation_id))
        question = await to_thread.run_sync(lambda: self.redact(cleaned, conversation_id))
        lock = self._locks.setdefault(conversation_id, asyncio.Lock())
        async with lock:
            async for event in self._answer_locked(conversation_id, question, history):
                yield event

    async def _answer_locked(
        self, conversation_id: str, question: str, history: list[Turn] | None
    ) -> AsyncIterator[Event]:
        started = time.perf_counter()
        mood = await to_thread.run_sync(lambda: score_sentiment(question).score)
        user_msg = await to_thread.run_sync(
            lambda: self.conversations.add_message(conversation_id, "user", question, sentiment=mood)
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
        plan = await self._plan(state, question, lang)
        if desk is not None:
            await self._hand_off(desk, plan, state, question, lang, escalate)
        yield Meta(
            conversation_id, user_msg.id, plan.kind, sentiment=mood, escalate=escalate, handoff=plan.handoff
        )
        cites = [citation(n, hit, plan.kb_version) for n, hit in enumerate(plan.hits, start=1)]
        if cites:
            yield Citations(cites)
        async for piece in self._produce(plan, state, question, lang):
            yield Delta(piece)
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

    async def _plan(self, state: SessionState, question: str, lang: Lang) -> _Answer:
        kind = route(question)
        if kind == "greeting":
            return _Answer("smalltalk", text=prompts.GREETING[lang].format(shop=self.settings.shop_name))
        if kind == "thanks":
            return _Answer("smalltalk", text=prompts.THANKS[lang])
        if kind == "ack" and state.flow is None:  # nothing asked of the customer: no model, no search
            return _Answer("smalltalk", text=prompts.ACK[lang])
        if kind == "human":  # the handoff desk queues it (see _hand_off)
            return _Answer("handoff", text=prompts.HANDOFF_UNAVAILABLE[lang])
        if kind == "complaint":  # queued with its own reason and an apology (see _hand_off)
            return _Answer("handoff", text=prompts.COMPLAINT_UNAVAILABLE[lang], topic="complaint")
        attack = await to_thread.run_sync(lambda: detect_injection(question))
        if attack.is_attack:
            log.warning("refused a prompt-injection attempt (%s): %s", attack.kind, attack.reason)
            return _Answer("refused", text=injection_refusal(lang))
        flow_answer = await self._flow(state, question)
        if flow_answer is not None:
            return flow_answer
        answer: _Answer | None = None
        if self.scope is not None:
            scope = self.scope
            verdict = await to_thread.run_sync(lambda: scope.check(question))
            if not verdict.in_scope:
                answer = _Answer("refused", text=scope.refusal_text(verdict.topic, lang), topic=verdict.topic)
        answer = answer or await self._knowledge(state, question, lang)
        waiting = (
            self.flows.waiting_for(FlowState.from_json(state.flow)) if state.flow and self.flows else None
        )
        if waiting is not None:  # a question asked in the middle of a flow: answered, and the flow keeps
            answer.flow_state = state.flow  # waiting where it was, with a reminder of what it waits for
            answer.reminder = "\n\n" + prompts.FLOW_REMINDER[lang].format(prompt=waiting.text(lang))
        return answer

    async def _knowledge(self, state: SessionState, question: str, lang: Lang) -> _Answer:
        """The knowledge base decides: an FAQ verbatim, an answer from its own cited sentences, or none.

        A return/exchange question that names the days since delivery is decided by the return flow's
        rules first (``policy_answers``): policy is code, the knowledge base only cites it."""
        if self.kb is None:
            return _Answer("no_answer", text=prompts.NO_ANSWER[lang])
        ruled = await self._policy(question, lang)
        if ruled is not None:
            return ruled
        found = await self._search(state, question)
        v = found.version
        if found.decision == "faq" and found.faq is not None:
            faq = found.faq.chunk
            return _Answer("faq", hits=[found.faq], text=faq.answer or faq.text, kb_version=v)
        if found.decision != "grounded" or not found.hits:
            return _Answer("no_answer", text=prompts.NO_ANSWER[lang], kb_version=v)
        hits = found.hits
        parts = split_parts(question)
        if len(parts) > 1:  # several questions in one message: each part's best chunks too
            hits = await self._part_hits(parts, question, hits)
        extract = await to_thread.run_sync(lambda: best_extract(parts, hits, lang, self.embedder))
        mode = self._answer_mode()
        if mode == "generate":
            return _Answer("grounded", hits=hits, kb_version=v, extract=extract, mode=mode)
        if extract is None:
            return _Answer("no_answer", hits=found.hits, text=prompts.RELATED_ONLY[lang], kb_version=v)
        hits = [hits[i] for i in extract.cited]
        if extract.lang != lang and mode == "rephrase":
            mode = "translate"  # an English question on Chinese sources: the model translates, checked
        elif extract.lang != lang:  # extractive: nothing generated, not even a translation (the 0.5B
            # model turned 「连续 7 天额外 5 积分」 into "on the 7th day of a month", which no check sees)
            text = prompts.IN_CHINESE_LEAD + extract.text
            return _Answer("grounded", hits=hits, text=text, kb_version=v, extract=extract, mode="extractive")
        text = extract.text if mode == "extractive" else ""
        return _Answer("grounded", hits=hits, text=text, kb_version=v, extract=extract, mode=mode)

    async def _part_hits(self, parts: list[str], question: str, hits: list[Hit]) -> list[Hit]:
        """The message's hits, then the best few of each part's own search (no chunk twice)."""
        kb = self.kb
        assert kb is not None
        merged = list(hits)
        for part in parts:
            found: Retrieval = await to_thread.run_sync(kb.search, part_query(part, question), 3)
            known = {h.chunk.id for h in merged}
            merged.extend(h for h in found.hits if h.chunk.id not in known)
        return merged

    async def _policy(self, question: str, lang: Lang) -> _Answer | None:
        """「收到10天了还能退吗」: the return flow's own decision on the hypothetical facts, cited."""
        if not self._return_policy:
            specs = self.flows.specs if self.flows is not None else {}
            self._return_policy.append(ReturnPolicy.from_flows(specs))
        rules, kb = self._return_policy[0], self.kb
        ruled = rules.answer(question, lang) if rules is not None else None
        if ruled is None or kb is None:
            return None
        hits: list[Hit] = []
        marks: list[str] = []
        version = ""
        for query in ruled.support_queries:
            found: Retrieval = await to_thread.run_sync(kb.search, query, 1)
            version = found.version
            if not found.hits:
                marks.append("")
                continue
            ids = [h.chunk.id for h in hits]
            if found.hits[0].chunk.id not in ids:
                hits.append(found.hits[0])
                ids.append(found.hits[0].chunk.id)
            marks.append(f"[{ids.index(found.hits[0].chunk.id) + 1}]")
        data = {
            "days": ruled.days,
            "action": ruled.action,
            "reason": ruled.reason,
            "verdicts": ruled.verdicts,
        }
        answer = _Answer("policy", hits=hits, text=ruled.text(marks), kb_version=version, mode="policy")
        answer.flow_data = {}  # no flow ran: the rules were only asked
        answer.policy = data
        return answer

    async def _flow(self, state: SessionState, question: str) -> _Answer | None:
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
        return _Answer(kind, text=turn.text, flow_state=ongoing, flow_data=data)

    async def _hand_off(
        self, desk: HandoffDesk, plan: _Answer, state: SessionState, question: str, lang: Lang, escalate: bool
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

    async def _search(self, state: SessionState, question: str) -> Retrieval:
        """Search with the message (follow-ups with the last question too); when the message alone finds
        nothing, try once more with the last question, as customers often omit what they just said."""
        kb, k = self.kb, self.settings.retrieval_top_k
        assert kb is not None
        query = retrieval_query(state, question)
        found: Retrieval = await to_thread.run_sync(lambda: kb.search(query, k))
        joined = with_previous_question(state, question)
        if found.decision == "none" and joined and joined != query:
            retry: Retrieval = await to_thread.run_sync(lambda: kb.search(joined, k))
            if retry.decision != "none":
                return retry
        return found

    async def _produce(
        self, plan: _Answer, state: SessionState, question: str, lang: Lang
    ) -> AsyncIterator[str]:
        if plan.kind != "grounded" or self.model is None or plan.mode == "extractive":
            yield plan.text
            return
        if plan.mode in ("rephrase", "translate") and plan.extract is not None:
            async for piece in self._reword(plan, plan.extract, question, lang):
                yield piece
            return
        async for piece in self._generate(plan, state, question, lang):
            yield piece

    async def _reword(self, plan: _Answer, extract: Extract, question: str, lang: Lang) -> AsyncIterator[str]:
        """The model rewords (or translates) the chosen sentences; sent only if nothing was changed."""
        assert self.model is not None
        messages = prompts.rephrase_messages(self.settings.shop_name, lang, question, extract.plain)
        request = ChatRequest(messages=messages, max_tokens=self.settings.llm_max_tokens, temperature=0.1)
        plan.model, plan.request = self.model.describe(), request
        text = await self._held_text(plan, request)
        plan.output = text
        marks = "".join(f"[{n}]" for n in range(1, len(extract.groups) + 1))
        same_language = extract.lang == lang
        problems = contradictions(text, extract.plain) if text.strip() else ["empty reply"]
        if same_language and not problems and not is_rewording(text, extract.plain):
            problems = ["content beyond the chosen sentences"]
        if _MENTIONS_SOURCES.search(text):
            problems.append("talks about its sources instead of answering")
        if text.strip() and not problems and not leaks_prompt(text, messages[0].content):
            plan.text = text.strip() + marks
        else:
            if text.strip():
                log.warning(
                    "model %s reworded the answer unfaithfully (%s); sent the knowledge base's own sentences",
                    plan.model,
                    "; ".join(problems) or "prompt leak",
                )
            plan.status = "replaced"
            lead = "" if same_language else prompts.IN_CHINESE_LEAD
            plan.text = lead + extract.text
        yield plan.text

    async def _held_text(self, plan: _Answer, request: ChatRequest) -> str:
        """The model's whole reply ("" after a model error or timeout, which is logged)."""
        assert self.model is not None
        text = ""
        try:
            async with asyncio.timeout(self.settings.llm_timeout):
                async for chunk in self.model.stream(request):
                    if chunk.usage is not None:
                        plan.usage = chunk.usage
                    text += chunk.text
        except (ModelError, TimeoutError) as exc:
            log.warning(
                "model %s failed; sent the knowledge base's own sentences: %s", plan.model, _describe(exc)
            )
            return ""
        return text

    async def _generate(
        self, plan: _Answer, state: SessionState, question: str, lang: Lang
    ) -> AsyncIterator[str]:
        """The model answers from the numbered sources; held and checked unless KEFU_ANSWER_CHECK=off."""
        assert self.model is not None
        model = self.model
        follow_up_of = state.turns[-1].user if state.turns and is_follow_up(question) else None
        messages = prompts.grounded_messages(
            self.settings.shop_name, lang, state, question, plan.hits, follow_up_of=follow_up_of
        )
        request = ChatRequest(
            messages=messages,
            max_tokens=self.settings.llm_max_tokens,
            temperature=self.settings.llm_temperature,
        )
        plan.model = model.describe()
        plan.request = request
        held = self._holds_answers()
        try:
            async with asyncio.timeout(self.settings.llm_timeout):
                async for chunk in model.stream(request):
                    if chunk.usage is not None:
                        plan.usage = chunk.usage
                    if chunk.text:
                        plan.text += chunk.text
                        if not held and leaks_prompt(plan.text, messages[0].content):
                            break  # stop mid-stream: less than a sentence of it was sent
                        if not held:
                            yield chunk.text
        except (ModelError, TimeoutError) as exc:
            log.warning("model %s failed, sent the fallback reply: %s", plan.model, _describe(exc))
            if held and plan.extract is not None:  # nothing sent yet: the knowledge base's own sentences
                plan.text, plan.status = self._extract_text(plan, plan.extract), "fallback"
                yield plan.text
                return
            if held:
                plan.text = ""
            fallback = ("\n\n" if plan.text else "") + prompts.FALLBACK[lang]
            plan.text += fallback
            plan.kind, plan.status = "fallback", "fallback"
            yield fallback
            return
        if not plan.text.strip():
            plan.text, plan.kind = prompts.NO_ANSWER[lang], "no_answer"
            yield plan.text
        elif leaks_prompt(plan.text, messages[0].content):
            log.warning("model %s repeated its instructions; the reply was withheld", plan.model)
            plan.text, plan.kind, plan.status = injection_refusal(lang), "refused", "replaced"
            yield ("\n\n" if not held else "") + plan.text
        elif held and (problems := self._answer_problems(plan, messages, lang)):
            log.warning(
                "model %s answered against or beyond its sources (%s); sent the knowledge base's own text",
                plan.model,
                "; ".join(problems),
            )
            plan.output = plan.text
            replace_unsupported(plan, lang, self._extract_text(plan, plan.extract) if plan.extract else None)
            yield plan.text
        elif held:
            yield plan.text

    def _answer_problems(self, plan: _Answer, messages: list[Message], lang: Lang) -> list[str]:
        """What is wrong with a generated answer: beyond its sources, or against the chosen sentences."""
        context = grounding_context(messages)
        if not is_grounded(plan.text, context):
            return ["not supported by the sources"]
        if plan.extract is not None:  # what the knowledge base's own sentences say to this question
            return contradictions(plan.text, plan.extract.plain, numbers=False)
        return []

    @staticmethod
    def _extract_text(plan: _Answer, extract: Extract) -> str:
        """The extract cited with the plan's own numbering (its citations were already sent)."""
        return extract.render([i + 1 for i in extract.cited])

    def _disclaimers(self, plan: _Answer, question: str, cites: list[dict[str, object]], lang: Lang) -> str:
        """Append the compliance notices that match this answer; return the appended text."""
        if self.compliance is None or plan.kind in ("refused", "fallback", "smalltalk"):
            return ""
        found = self.compliance.disclaimers(question=question, answer=plan.text, citations=cites, lang=lang)
        final = append_disclaimers(plan.text, found, lang)
        added, plan.text = final[len(plan.text) :], final
        plan.disclaimers = [d.rule_id for d in found]
        return added

    def _holds_answers(self) -> bool:
        """Whether to check a generated answer before the customer sees any of it: always, unless
        KEFU_ANSWER_CHECK=off (remote models get the same check as the local one)."""
        return self.settings.answer_check != "off"

    def _answer_mode(self) -> str:
        """How knowledge answers are written (KEFU_ANSWER_MODE): "auto" → the KB's own sentences for the
        local model (it states wrong policy when it writes) and without a model; generated otherwise."""
        mode = self.settings.answer_mode
        if self.model is None:
            return "extractive"
        if mode == "auto":
            return "extractive" if self.settings.llm == "local" else "generate"
        return mode


# 「根据资料」, "Based on the information provided in [Sources]": the customer never sees our plumbing
_MENTIONS_SOURCES = re.compile(
    r"【资料】|资料中|根据资料|\[sources?\]|\bthe sources?\b|information provided", re.I
)


def grounding_context(messages: list[Message]) -> str:
    return "\n".join(m.content for m in messages)


def best_extract(
    parts: list[str], hits: list[Hit], lang: Lang, embedder: Embedder | None = None
) -> Extract | None:
    """The knowledge base's own sentences for the question (its parts): by its words for a Chinese
    question; by meaning for an English one (the help centre is mostly Chinese)."""
    if lang == "en" and embedder is not None:
        return extract_by_meaning(" ".join(parts), hits, embedder)
    return extract_parts(parts, hits) if len(parts) > 1 else extract_answer(parts[0], hits)


def replace_unsupported(plan: _Answer, lang: Lang, extracted: str | None = None) -> None:
    """An unsupported answer is never sent: the KB's own sentences, the best FAQ's answer, or the related
    articles."""
    top = plan.hits[0].chunk if plan.hits else None
    plan.status = "replaced"
    if extracted:
        plan.text = extracted
    elif top is not None and top.kind == "faq" and top.answer:
        plan.text, plan.kind = top.answer, "faq"
    else:
        plan.text, plan.kind = prompts.RELATED_ONLY[lang], "no_answer"


def escalation(recent: list[float], score: float) -> bool:
    """The sentiment rule over the session's recent turns and this one (SentimentTracker's rule)."""
    tracker = SentimentTracker()
    tracker.recent.extend(recent)
    return tracker.update(score)


def audit_entry(question: str, plan: _Answer, cites: list[dict[str, object]]) -> tuple[str, dict[str, Any]]:
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


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no reply within KEFU_LLM_TIMEOUT"
    return str(exc)
