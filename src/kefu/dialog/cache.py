"""The answer cache: a knowledge answer given once is given again without search or model.

    stage = CacheStage.build(settings, kb, model, embedder)   # None when KEFU_ANSWER_CACHE=off
    answer = await stage.plan(state, question, lang)   # an Answer with cache="exact"/"semantic", or None
    await stage.keep(state, question, plan, lang)      # after the reply was produced: kept if it may be

Two tiers in front of the knowledge stage (``Assistant._plan`` asks after the guards and the flows):

* exact — the normalised question (``cache_text.normalise``: NFKC, case, spaces, trailing punctuation);
* semantic — the question's query embedding against the questions cached under the same key, cosine ≥
  ``KEFU_ANSWER_CACHE_THRESHOLD`` (calibrated by ``kefu eval cache`` on real paraphrase pairs) and the
  same numbers named. The embedding is the one the scope guard and the knowledge base's search compute
  for this message anyway (the embedder keeps recent queries), so a miss costs no extra embedding.

The key (``CacheKey``) is the knowledge-base version being served, the model and its routing settings,
``prompts.PROMPT_VERSION``, the answer mode and the language: an ingest, edit or rollback makes a new KB
version, so an answer of an older version can never be served again.

Only FAQ, grounded and policy answers that were sent as planned (status ok, no handoff) are kept, and
only when they could not have depended on the conversation: never in or beside a flow, never for a
question with PII placeholders (「[手机号_1]」: someone's own data) or an elliptical follow-up (「那新疆呢」),
and only from a turn without earlier turns (the model sees them, and a search may lean on the previous
question) — policy answers, decided on the question alone, from any turn. A cached answer is served to
any eligible question; compliance notices are added per turn, as for any answer.

Entries live in Redis when ``KEFU_REDIS_URL`` is set (shared by replicas, with the TTL; in process while
Redis is down) — see ``cache_store``. The semantic index stays per replica: comparing a question with
thousands of vectors is a sub-millisecond numpy product in process, but would mean fetching them all from
Redis on every miss. Each entry carries its vector, so an exact hit on another replica's entry teaches
this replica that question for semantic matches too.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from anyio import to_thread
from pydantic import SecretStr

from kefu.config import Settings
from kefu.dialog.answer import Answer
from kefu.dialog.cache_store import CachedAnswer, Entries, SemanticIndex, build_entries
from kefu.dialog.cache_text import has_placeholder, normalise, same_numbers
from kefu.dialog.language import Lang
from kefu.dialog.memory import is_follow_up
from kefu.dialog.prompts import PROMPT_VERSION
from kefu.errors import ModelUnavailable
from kefu.kb.types import Embedder, Retriever
from kefu.llm.base import ChatModel
from kefu.storage.base import SessionState

log = logging.getLogger("kefu.dialog")

CACHED_KINDS = frozenset({"faq", "grounded", "policy"})
# kefu.llm.routing's routes near or at a budget cap: degraded on purpose, never kept
_DEGRADED_ROUTES = frozenset({"cheap", "over_budget"})
_FORMAT = "1"  # of the entries: a change makes every old one a miss
# settings that change how an answer is worded, besides the model's own description
_MODEL_SETTINGS = ("llm", "route", "routing", "model", "answer_mode", "answer_check", "shop_name")


@dataclass(frozen=True)
class CacheKey:
    kb_version: str  # "v7": the version the answer came from (lookups: the version being served)
    model: str  # the model's description and a hash of its settings (routes included)
    mode: str  # KEFU_ANSWER_MODE
    lang: str
    prompts: str = PROMPT_VERSION
    arm: str = ""  # an A/B test's "experiment/arm" (kefu.experiments): arms never share answers

    @property
    def digest(self) -> str:
        parts: tuple[str, ...] = (_FORMAT, self.kb_version, self.model, self.mode, self.lang, self.prompts)
        if self.arm:
            parts = (*parts, self.arm)
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


def model_fingerprint(settings: Settings, model: ChatModel | None) -> str:
    """The model's description and a short hash of every setting that picks or words through it."""
    values = {
        name: _setting_value(getattr(settings, name))
        for name in sorted(type(settings).model_fields)
        if name.startswith(_MODEL_SETTINGS) and not isinstance(getattr(settings, name), SecretStr)
    }
    digest = hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:12]
    return f"{model.describe() if model is not None else 'none'}#{digest}"


def _setting_value(value: object) -> str:
    """A setting as text; a file (the KEFU_MODELS matrix) by its content, which may change in place."""
    if isinstance(value, Path) and value.is_file():
        return hashlib.sha256(value.read_bytes()).hexdigest()
    return str(value)


class AnswerCache:
    """Exact and semantic lookups over ``entries``; ``counts()`` tells hits and misses since start."""

    def __init__(
        self, entries: Entries, embedder: Embedder | None, *, threshold: float, semantic_size: int
    ) -> None:
        self.entries, self.embedder, self.threshold = entries, embedder, threshold
        self.semantic = SemanticIndex(semantic_size)
        self._counts: Counter[str] = Counter()

    def counts(self) -> dict[str, int]:
        """Lookups answered "exact" / "semantic", "miss"es, and answers "stored"."""
        return {name: self._counts[name] for name in ("exact", "semantic", "miss", "stored")}

    async def lookup(self, question: str, key: CacheKey) -> tuple[CachedAnswer, str] | None:
        """The cached answer to ``question`` under ``key`` and which tier found it, or None."""
        text, digest = normalise(question), key.digest
        entry = await self.entries.get(f"{digest}:{_sha(text)}")
        if entry is not None:
            if entry.vector is not None:  # perhaps kept by another replica: now matched by meaning here too
                self.semantic.add(digest, text, entry.vector)
            self._counts["exact"] += 1
            return entry, "exact"
        entry = await self._nearest(question, text, digest)
        self._counts["semantic" if entry is not None else "miss"] += 1
        return (entry, "semantic") if entry is not None else None

    async def store(self, question: str, key: CacheKey, entry: CachedAnswer) -> None:
        text, digest = normalise(question), key.digest
        entry.question = text
        if entry.vector is None and self._semantic_on():
            entry.vector = await self._embed(question)
        await self.entries.put(f"{digest}:{_sha(text)}", entry)
        if entry.vector is not None:
            self.semantic.add(digest, text, entry.vector)
        self._counts["stored"] += 1

    async def aclose(self) -> None:
        await self.entries.aclose()

    async def _nearest(self, question: str, text: str, digest: str) -> CachedAnswer | None:
        if not self._semantic_on() or not self.semantic.has(digest):  # nothing to compare: no embedding
            return None
        vector = await self._embed(question)
        near = self.semantic.nearest(digest, vector) if vector is not None else None
        if near is None or near[1] < self.threshold or not same_numbers(near[0], text):
            return None
        entry = await self.entries.get(f"{digest}:{_sha(near[0])}")
        if entry is None:  # expired or evicted
            self.semantic.drop(digest, near[0])
        return entry

    def _semantic_on(self) -> bool:
        return self.embedder is not None and self.threshold < 1.0

    async def _embed(self, question: str) -> np.ndarray | None:
        """The query embedding the knowledge base's search uses (the embedder's recent-query cache makes
        the second of the two free); None when the embedder is unavailable (then: exact tier only)."""
        embedder = self.embedder
        assert embedder is not None
        try:
            vectors = await to_thread.run_sync(lambda: embedder.embed_queries([question.strip()]))
        except ModelUnavailable as exc:
            log.warning("answer cache: no embedding for the semantic tier (%s); exact matches only", exc)
            return None
        return np.asarray(vectors[0], dtype=np.float32)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def cacheable_question(state: SessionState, question: str) -> bool:
    """Whether the answer to ``question`` may come from (or go to) the cache at all."""
    return state.flow is None and not has_placeholder(question) and not is_follow_up(question)


def cacheable_answer(state: SessionState, question: str, plan: Answer) -> bool:
    """A knowledge answer sent as planned, that depended on nothing but the question."""
    session_free = not state.turns and not state.summary
    return (
        cacheable_question(state, question)
        and not plan.cache
        and plan.kind in CACHED_KINDS
        and plan.status == "ok"
        and plan.handoff is None
        and plan.route not in _DEGRADED_ROUTES
        and plan.flow_state is None
        and not plan.flow_data
        and not plan.reminder
        and bool(plan.kb_version)
        and bool(plan.text.strip())
        and (session_free or plan.mode == "policy")
    )


@dataclass
class CacheStage:
    """The answer cache as a stage of the turn (see the module docstring)."""

    cache: AnswerCache
    settings: Settings
    kb: Retriever | None
    model: ChatModel | None
    arm: str = ""  # the A/B test arm this stage serves ("experiment/arm"), part of every key
    _model: str = field(default="", repr=False)

    @classmethod
    def build(
        cls, settings: Settings, kb: Retriever | None, model: ChatModel | None, embedder: Embedder | None
    ) -> CacheStage | None:
        """The stage over the configured store, or None when KEFU_ANSWER_CACHE=off."""
        if not settings.answer_cache:
            return None
        size, ttl = settings.answer_cache_size, settings.answer_cache_ttl_seconds
        entries = build_entries(settings.redis_url, size=size, ttl_seconds=ttl)
        cache = AnswerCache(entries, embedder, threshold=settings.answer_cache_threshold, semantic_size=size)
        return cls(cache, settings, kb, model)

    def key(self, kb_version: str, lang: Lang) -> CacheKey:
        if not self._model:
            self._model = model_fingerprint(self.settings, self.model)
        return CacheKey(kb_version, self._model, self.settings.answer_mode, lang, arm=self.arm)

    async def plan(self, state: SessionState, question: str, lang: Lang) -> Answer | None:
        """The cached answer for this question, as an Answer that needs no model, or None."""
        if self.kb is None or not cacheable_question(state, question):
            return None
        found = await self.cache.lookup(question, self.key(self.kb.version, lang))
        if found is None:
            return None
        entry, how = found
        return Answer(
            entry.kind,
            hits=list(entry.hits),
            text=entry.text,
            kb_version=entry.kb_version,
            mode=entry.mode,
            policy=entry.policy,
            cache=how,
        )

    async def keep(self, state: SessionState, question: str, plan: Answer, lang: Lang) -> None:
        """Store the reply just produced (before compliance notices) when it may be served again."""
        if not cacheable_answer(state, question, plan):
            return
        entry = CachedAnswer(
            question="",
            kind=plan.kind,
            text=plan.text,
            hits=list(plan.hits),
            kb_version=plan.kb_version,
            mode=plan.mode,
            route=plan.route,
            policy=plan.policy,
        )
        await self.cache.store(question, self.key(plan.kb_version, lang), entry)

    def counts(self) -> dict[str, Any]:
        return self.cache.counts()

    async def aclose(self) -> None:
        await self.cache.aclose()
