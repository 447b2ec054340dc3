"""The Prometheus metrics of one kefu process (``/metrics``), on their own registry.

Labels never carry personal data: no conversation id, no user, no text — only bounded sets (channel,
answer kind, model, route, outcome, handoff reason, HTTP route template and status). Unknown values are
folded into ``other`` so a caller can never grow the number of series.

Multi-process: when ``PROMETHEUS_MULTIPROC_DIR`` is set *before the process starts* (prometheus_client
reads it at import), counters and histograms are written to memory-mapped files there and ``render``
sums every process's files (several workers behind one port). Empty the directory when the service
starts; the scrape-time gauges (breakers, queue, KPI ratios) are read by the process that serves the
scrape.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from threading import Lock
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from kefu.observe.traces import TurnTracer

CHANNELS = frozenset({"web", "api", "openai", "cli"})
ANSWER_KINDS = frozenset(
    {
        "faq",
        "grounded",
        "policy",
        "no_answer",
        "fallback",
        "smalltalk",
        "flow",
        "refused",
        "handoff",
        "ticket",
        "agent_pending",
    }
)
KB_DECISIONS = {"faq": "faq", "grounded": "grounded", "policy": "policy", "no_answer": "none"}
KNOWLEDGE_KINDS = frozenset({*KB_DECISIONS, "fallback"})  # turns that went to the knowledge base
# seconds: a turn's first text and full reply (the KPI is P90 < 2 s), HTTP requests
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 20.0, 30.0, 60.0)
COST_BUCKETS = (0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
TOKEN_BUCKETS = (0, 100, 250, 500, 1000, 2000, 4000, 8000, 16000, 32000, 64000)
MAX_LABEL = 60
MAX_TRACKED_CONVERSATIONS = 100_000


def endpoint(value: str | None) -> str:
    """A model or endpoint name ("qwen @ https://host/v1") as a label: no credentials in the URL
    (``user:key@``), no query string (``?api-key=…``), bounded in length."""
    if not value:
        return "none"
    cleaned = re.sub(r"//[^/@\s]*@", "//", value)
    cleaned = re.sub(r"\?\S*", "", cleaned)
    return cleaned[:MAX_LABEL]


def bounded(value: str | None, allowed: frozenset[str] | None = None, default: str = "none") -> str:
    """A label value from a bounded set: ``allowed`` when given (else ``other``), and short."""
    if not value:
        return default
    if allowed is not None:
        return value if value in allowed else "other"
    return value[:MAX_LABEL]


@dataclass
class _Spend:
    cost: float = 0.0
    tokens: int = 0
    seen: float = 0.0


@dataclass
class ConversationSpend:
    """Cost and tokens per conversation, observed into the histograms once the conversation has been
    idle ``idle_seconds`` (in this process: nginx keeps a conversation on one replica). Bounded: past
    ``limit`` conversations the least recently seen is observed early."""

    idle_seconds: float
    limit: int = MAX_TRACKED_CONVERSATIONS
    clock: Callable[[], float] = time.monotonic
    _spend: dict[str, _Spend] = field(default_factory=dict)
    _lock: Lock = field(default_factory=Lock)

    def add(self, conversation_id: str, cost: float, tokens: int) -> None:
        now = self.clock()
        with self._lock:
            spend = self._spend.pop(conversation_id, None) or _Spend()
            spend.cost, spend.tokens, spend.seen = spend.cost + cost, spend.tokens + tokens, now
            self._spend[conversation_id] = spend  # re-inserted: the dict stays in order of last use

    def due(self) -> list[tuple[float, int]]:
        """(cost, tokens) of the conversations that went idle (or overflowed), removed from tracking."""
        now, done = self.clock(), []
        with self._lock:
            while self._spend:
                oldest_id = next(iter(self._spend))
                oldest = self._spend[oldest_id]
                if now - oldest.seen < self.idle_seconds and len(self._spend) <= self.limit:
                    break
                del self._spend[oldest_id]
                done.append((oldest.cost, oldest.tokens))
        return done


class Metrics:
    """Every metric kefu records while serving; ``render()`` is the ``/metrics`` body."""

    def __init__(self, registry: CollectorRegistry | None = None, *, conversation_idle_seconds: float = 1800):
        self.registry = registry or CollectorRegistry()
        self.spend = ConversationSpend(conversation_idle_seconds)
        r = self.registry
        self.requests = Counter(
            "kefu_http_requests",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "kefu_http_request_duration_seconds",
            "Time until the response headers, by route template.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rate_limited = Counter(
            "kefu_rate_limited_requests",
            "Requests refused with 429 by the rate limits.",
            ["route"],
            registry=r,
        )
        self.first_text = Histogram(
            "kefu_turn_first_text_seconds",
            "From the customer's message to the reply's first text.",
            ["channel", "kind"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.reply = Histogram(
            "kefu_turn_seconds",
            "From the customer's message to the full reply, stored.",
            ["channel", "kind"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.first_response = Histogram(
            "kefu_first_response_seconds",
            "A conversation's first reply: time to its first text.",
            ["channel"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.conversations = Counter("kefu_conversations", "Conversations started.", ["channel"], registry=r)
        self.model_calls = Counter(
            "kefu_model_calls",
            "Model calls for a reply by model, route and outcome (ok / error).",
            ["model", "route", "outcome"],
            registry=r,
        )
        self.tokens = Counter("kefu_tokens", "Model tokens by model and type.", ["model", "type"], registry=r)
        self.cost = Counter(
            "kefu_cost", "Model cost in the price list's currency units.", ["model", "route"], registry=r
        )
        self.conversation_cost = Histogram(
            "kefu_conversation_cost",
            "Cost of one conversation, observed once it has gone idle.",
            buckets=COST_BUCKETS,
            registry=r,
        )
        self.conversation_tokens = Histogram(
            "kefu_conversation_tokens",
            "Tokens of one conversation, observed once it has gone idle.",
            buckets=TOKEN_BUCKETS,
            registry=r,
        )
        self.kb_decisions = Counter(
            "kefu_kb_decisions",
            "Knowledge-base decisions: faq / grounded / policy / none.",
            ["decision"],
            registry=r,
        )
        self.cache = Counter(
            "kefu_answer_cache",
            "Knowledge answers by answer-cache result: exact / semantic / miss.",
            ["result"],
            registry=r,
        )
        self.handoffs = Counter("kefu_handoffs", "Handoffs opened, by reason.", ["reason"], registry=r)
        self.ratings = Counter(  # issue #13: ratings and CSAT
            "kefu_ratings",
            "Customer ratings by kind (thumbs / stars / csat) and score.",
            ["kind", "score"],
            registry=r,
        )
        self._scrape: list[Collector] = []
        self.tracer: TurnTracer | None = None  # OpenTelemetry traces of each turn (KEFU_OTLP_ENDPOINT)

    # --- recording ---------------------------------------------------------------------------------

    def conversation_started(self, channel: str) -> None:
        self.conversations.labels(bounded(channel, CHANNELS)).inc()

    def turn(self, turn: TurnFacts) -> None:
        """Record one finished turn (see ``kefu.observe.turns``)."""
        channel, kind = bounded(turn.channel, CHANNELS), bounded(turn.kind, ANSWER_KINDS)
        if turn.first_text is not None:
            self.first_text.labels(channel, kind).observe(turn.first_text)
            if turn.first_of_conversation:
                self.first_response.labels(channel).observe(turn.first_text)
        self.reply.labels(channel, kind).observe(turn.total)
        if turn.kind in KB_DECISIONS:
            self.kb_decisions.labels(KB_DECISIONS[turn.kind]).inc()
        if turn.kind in KNOWLEDGE_KINDS:
            self.cache.labels(bounded(turn.cache, frozenset({"exact", "semantic"}), default="miss")).inc()
        if turn.handoff_reason is not None:
            self.handoffs.labels(bounded(turn.handoff_reason)).inc()
        if turn.model:
            model, route = endpoint(turn.model), bounded(turn.route, default="default")
            self.model_calls.labels(model, route, "error" if turn.status == "fallback" else "ok").inc()
            self.tokens.labels(model, "prompt").inc(turn.prompt_tokens)
            self.tokens.labels(model, "completion").inc(turn.completion_tokens)
            if turn.cost > 0:
                self.cost.labels(model, route).inc(turn.cost)
        self.spend.add(turn.conversation_id, turn.cost, turn.prompt_tokens + turn.completion_tokens)
        self.observe_idle()

    def rating(self, kind: str, score: int) -> None:
        """One customer rating (kind and score are validated before: a bounded label set)."""
        self.ratings.labels(bounded(kind, frozenset({"thumbs", "stars", "csat"})), str(int(score))).inc()

    def observe_idle(self) -> None:
        for cost, tokens in self.spend.due():
            self.conversation_cost.observe(cost)
            self.conversation_tokens.observe(tokens)

    # --- exposition --------------------------------------------------------------------------------

    def add_scrape_collector(self, collector: Collector) -> None:
        """A collector read at scrape time (breaker states, the agent queue, KPI ratios)."""
        self._scrape.append(collector)
        self.registry.register(collector)

    def render(self) -> bytes:
        """The exposition text: this registry, or every process's files in multi-process mode."""
        self.observe_idle()
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged)
        for collector in self._scrape:
            merged.register(collector)
        return generate_latest(merged)


@dataclass(frozen=True)
class TurnFacts:
    """What one turn tells the metrics; no text, and the conversation id never becomes a label."""

    conversation_id: str
    channel: str
    kind: str
    total: float  # seconds to the full reply
    first_text: float | None = None  # seconds to the first text (None: the bot stayed silent)
    first_of_conversation: bool = False
    status: str = "ok"
    cache: str | None = None
    route: str | None = None
    handoff_reason: str | None = None  # a handoff this turn opened
    model: str | None = None  # set when a model was asked for the reply
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
