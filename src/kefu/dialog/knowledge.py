"""The knowledge stage of a turn: what the help centre says to a question, and how it is written.

    plan(state, question, lang)  → an ``Answer``: a policy verdict by the return flow's rules
                                   (``policy_answers``), an FAQ verbatim, the KB's own sentences
                                   (``extractive``), a plan for the model to word them, or no answer
    produce(plan, …)             → the reply's text pieces: as planned, or the model's wording held and
                                   checked (``grounding.contradictions``) and replaced by the KB's own
                                   sentences when it fails; a model error never reaches the customer

``KEFU_ANSWER_MODE`` picks the writing (extractive / rephrase / generate); ``Assistant`` runs this stage
after the guards and the flows, and persists and audits whatever it produced.

Model routing (``kefu.llm.routing``): every plan records its route — the scenario of the question (faq,
complex, complaint, long_context), "default" without a model matrix — and a turn the model words is
answered by that route's model and priced (``Answer.cost``). Near a budget cap the "cheap" route answers;
over it no model is called: the KB's own sentences (or the FAQ) and a human offered.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from anyio import to_thread

from kefu.config import Settings
from kefu.dialog import prompts
from kefu.dialog.answer import Answer
from kefu.dialog.extractive import (
    Extract,
    extract_answer,
    extract_by_meaning,
    extract_parts,
    part_query,
    split_parts,
)
from kefu.dialog.grounding import contradictions, is_grounded, is_rewording
from kefu.dialog.language import Lang
from kefu.dialog.memory import is_follow_up, retrieval_query, with_previous_question
from kefu.dialog.policy_answers import ReturnPolicy
from kefu.errors import ModelError
from kefu.flows import FlowEngine
from kefu.kb.types import Embedder, Hit, Retrieval, Retriever
from kefu.llm.base import ChatModel, ChatRequest, Message
from kefu.llm.routing import CHEAP, DEFAULT_ROUTE, OVER_BUDGET, ModelRouter, choose_route, router_of
from kefu.llm.text import estimate_tokens
from kefu.safety.injection import leaks_prompt
from kefu.safety.injection import refusal_text as injection_refusal
from kefu.safety.sentiment import score_sentiment
from kefu.storage.base import SessionState

log = logging.getLogger("kefu.dialog")


@dataclass
class KnowledgeStage:
    settings: Settings
    kb: Retriever | None
    model: ChatModel | None
    embedder: Embedder | None = None  # the KB's embedder: sentences by meaning across languages
    flows: FlowEngine | None = None  # the return flow's rules answer hypothetical return questions
    _return_policy: list[ReturnPolicy | None] = field(default_factory=list)  # computed once from the flows
    _routers: list[ModelRouter | None] = field(default_factory=list)  # the model as a router, made once

    async def plan(self, state: SessionState, question: str, lang: Lang) -> Answer:
        """The knowledge base decides: an FAQ verbatim, an answer from its own cited sentences, or none.

        A return/exchange question that names the days since delivery is decided by the return flow's
        rules first (``policy_answers``): policy is code, the knowledge base only cites it."""
        if self.kb is None:
            return Answer("no_answer", text=prompts.NO_ANSWER[lang])
        ruled = await self._policy(question, lang)
        if ruled is not None:
            return ruled
        found = await self._search(state, question)
        v = found.version
        parts = split_parts(question)
        if found.decision == "faq" and found.faq is not None:
            faq = found.faq.chunk
            answer = Answer("faq", hits=[found.faq], text=faq.answer or faq.text, kb_version=v)
            answer.route = self._scenario(state, question, parts, answer.hits)
            return answer
        if found.decision != "grounded" or not found.hits:
            answer = Answer("no_answer", text=prompts.NO_ANSWER[lang], kb_version=v)
            if found.keywords_only and found.hits:  # embeddings down: BM25's best as related articles
                answer.hits, answer.text = found.hits[:3], prompts.RELATED_ONLY[lang]
            answer.route = self._scenario(state, question, parts, [])
            return answer
        hits = found.hits
        if len(parts) > 1:  # several questions in one message: each part's best chunks too
            hits = await self._part_hits(parts, question, hits)
        extract = await to_thread.run_sync(lambda: best_extract(parts, hits, lang, self.embedder))
        mode = self._answer_mode()
        route = self._scenario(state, question, parts, hits)
        if mode != "extractive":  # the model will be asked: the budget may say otherwise
            route = await self._budgeted(route, state.conversation_id)
            if route == OVER_BUDGET:
                mode = "extractive"
        answer = self._grounded(found, hits, extract, mode, lang)
        answer.route = route
        if route == OVER_BUDGET and answer.kind == "grounded":
            answer.text += "\n\n" + prompts.BUDGET_HUMAN[lang]
        return answer

    def _grounded(
        self, found: Retrieval, hits: list[Hit], extract: Extract | None, mode: str, lang: Lang
    ) -> Answer:
        """The plan of a grounded answer: for the model to word (generate, rephrase, translate) or the
        KB's own sentences."""
        v = found.version
        if mode == "generate":
            return Answer("grounded", hits=hits, kb_version=v, extract=extract, mode=mode)
        if extract is None:
            return Answer("no_answer", hits=found.hits, text=prompts.RELATED_ONLY[lang], kb_version=v)
        hits = [hits[i] for i in extract.cited]
        if extract.lang != lang and mode == "rephrase":
            mode = "translate"  # an English question on Chinese sources: the model translates, checked
        elif extract.lang != lang:  # extractive: nothing generated, not even a translation (the 0.5B
            # model turned 「连续 7 天额外 5 积分」 into "on the 7th day of a month", which no check sees)
            text = prompts.IN_CHINESE_LEAD + extract.text
            return Answer("grounded", hits=hits, text=text, kb_version=v, extract=extract, mode="extractive")
        text = extract.text if mode == "extractive" else ""
        return Answer("grounded", hits=hits, text=text, kb_version=v, extract=extract, mode=mode)

    def router(self) -> ModelRouter | None:
        """The model as a router (``kefu.llm.routing``): the matrix's, or a one-model "default" one."""
        if not self._routers:
            self._routers.append(router_of(self.model, self.settings))
        return self._routers[0]

    def _scenario(self, state: SessionState, question: str, parts: list[str], hits: list[Hit]) -> str:
        """The route of this question (``choose_route``); "default" without a model matrix."""
        router = self.router()
        if router is None:
            return ""
        if not router.matrix.source:
            return DEFAULT_ROUTE
        spec = router.matrix.spec_for("faq")
        prompt = "\n".join([question, state.summary, *(t.user + t.assistant for t in state.turns)])
        prompt_tokens = 400 + estimate_tokens(prompt) + sum(estimate_tokens(h.chunk.text) for h in hits)
        return choose_route(
            question,
            parts=len(parts),
            sentiment=score_sentiment(question).score,
            prompt_tokens=prompt_tokens,
            context_tokens=spec.context_tokens - self.settings.llm_max_tokens,
        )

    async def _budgeted(self, route: str, conversation_id: str) -> str:
        """The route the budgets allow: as chosen, "cheap" near a cap, OVER_BUDGET (no model) at it."""
        router = self.router()
        if router is None or not router.budget.active:
            return route
        budget = router.budget
        state = await to_thread.run_sync(lambda: budget.state(conversation_id))
        if state == "over":
            return OVER_BUDGET
        return CHEAP if state == "degrade" else route

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

    async def _policy(self, question: str, lang: Lang) -> Answer | None:
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
        answer = Answer("policy", hits=hits, text=ruled.text(marks), kb_version=version, mode="policy")
        answer.flow_data = {}  # no flow ran: the rules were only asked
        answer.policy = data
        return answer

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

    async def produce(
        self, plan: Answer, state: SessionState, question: str, lang: Lang
    ) -> AsyncIterator[str]:
        router = self.router()
        if plan.kind != "grounded" or router is None or plan.mode == "extractive":
            yield plan.text
            return
        name, model = router.for_route(plan.route)
        try:
            if plan.mode in ("rephrase", "translate") and plan.extract is not None:
                async for piece in self._reword(plan, model, plan.extract, question, lang):
                    yield piece
                return
            async for piece in self._generate(plan, model, state, question, lang):
                yield piece
        finally:
            plan.cost = router.matrix.cost(name, plan.usage)
            if router.matrix.source:  # the matrix's name for the model ("cheap", "strong")
                plan.model = name

    async def _reword(
        self, plan: Answer, model: ChatModel, extract: Extract, question: str, lang: Lang
    ) -> AsyncIterator[str]:
        """The model rewords (or translates) the chosen sentences; sent only if nothing was changed."""
        messages = prompts.rephrase_messages(self.settings.shop_name, lang, question, extract.plain)
        request = ChatRequest(messages=messages, max_tokens=self.settings.llm_max_tokens, temperature=0.1)
        plan.model, plan.request = model.describe(), request
        text = await self._held_text(plan, model, request)
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

    async def _held_text(self, plan: Answer, model: ChatModel, request: ChatRequest) -> str:
        """The model's whole reply ("" after a model error or timeout, which is logged)."""
        text = ""
        try:
            async with asyncio.timeout(self.settings.llm_timeout):
                async for chunk in model.stream(request):
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
        self, plan: Answer, model: ChatModel, state: SessionState, question: str, lang: Lang
    ) -> AsyncIterator[str]:
        """The model answers from the numbered sources; held and checked unless KEFU_ANSWER_CHECK=off."""
        follow_up_of = state.turns[-1].user if state.turns and is_follow_up(question) else None
        messages = prompts.grounded_messages(
            self.settings.shop_name,
            lang,
            state,
            question,
            plan.hits,
            follow_up_of=follow_up_of,
            template=self.settings.system_prompt,
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

    def _answer_problems(self, plan: Answer, messages: list[Message], lang: Lang) -> list[str]:
        """What is wrong with a generated answer: beyond its sources, or against the chosen sentences."""
        context = grounding_context(messages)
        if not is_grounded(plan.text, context):
            return ["not supported by the sources"]
        if plan.extract is not None:  # what the knowledge base's own sentences say to this question
            return contradictions(plan.text, plan.extract.plain, numbers=False)
        return []

    @staticmethod
    def _extract_text(plan: Answer, extract: Extract) -> str:
        """The extract cited with the plan's own numbering (its citations were already sent)."""
        return extract.render([i + 1 for i in extract.cited])

    def _holds_answers(self) -> bool:
        """Whether to check a generated answer before the customer sees any of it: always, unless
        KEFU_ANSWER_CHECK=off (remote models get the same check as the local one)."""
        return self.settings.answer_check != "off"

    def _answer_mode(self) -> str:
        """How knowledge answers are written (KEFU_ANSWER_MODE): "auto" → the KB's own sentences for the
        local model (it states wrong policy when it writes) and without a model; generated otherwise. With a
        model matrix (KEFU_MODELS) "local" means the "faq" route's model is the local one."""
        mode = self.settings.answer_mode
        router = self.router()
        if router is None:
            return "extractive"
        if mode == "auto" and router.matrix.source:
            return "extractive" if router.matrix.spec_for("faq").kind == "local" else "generate"
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


def replace_unsupported(plan: Answer, lang: Lang, extracted: str | None = None) -> None:
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


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no reply within KEFU_LLM_TIMEOUT"
    return str(exc)
