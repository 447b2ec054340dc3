"""The running parts of one kefu process, built once from settings (in the app's lifespan, the CLI or a
benchmark) and closed once. Nothing here is created at import time."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anyio import to_thread

from kefu.config import Settings
from kefu.dialog.orchestrator import Assistant
from kefu.llm.base import ChatModel

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from kefu.audit import AuditLog
    from kefu.flows import FlowEngine
    from kefu.kb.index import KnowledgeBase
    from kefu.safety.scope import ScopeGuard
    from kefu.storage.factory import Stores
    from kefu.tools.orders import OrderSystem

log = logging.getLogger("kefu")


@dataclass
class Runtime:
    settings: Settings
    stores: Stores
    kb: KnowledgeBase
    model: ChatModel | None
    assistant: Assistant
    audit: AuditLog

    async def aclose(self) -> None:
        if self.model is not None:
            await self.model.aclose()
        self.stores.close()


async def build_runtime(settings: Settings, *, model: ChatModel | None = None) -> Runtime:
    """Open the stores (running migrations), load the knowledge base and the model.

    ``model`` overrides the configured one (tests and benchmarks pass a scripted model)."""
    from kefu.audit import AuditLog
    from kefu.llm import build_chat_model, ensure_ready
    from kefu.safety.compliance import CompliancePolicy
    from kefu.safety.pii import redact_pii
    from kefu.storage.factory import build_stores

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    stores = await to_thread.run_sync(lambda: build_stores(settings))
    try:
        kb = await to_thread.run_sync(lambda: open_knowledge_base(settings))
        if model is None:
            model = build_chat_model(settings)
            if model is not None:
                await ensure_ready(model)
    except BaseException:
        stores.close()
        raise
    audit_log = AuditLog(stores.engine, stores.keyring)
    scope = (
        await to_thread.run_sync(lambda: scope_guard(settings.scope_examples))
        if settings.scope_guard
        else None
    )
    assistant = Assistant(
        settings=settings,
        conversations=stores.conversations,
        sessions=stores.sessions,
        kb=kb,
        model=model,
        redact=lambda text, conversation_id: redact_pii(text, vault=stores.vault_for(conversation_id)).text,
        scope=scope,
        compliance=CompliancePolicy.load(settings.compliance_rules, settings.compliance_domains),
        flows=flow_engine(settings, audit_log),
        audit=lambda kind, payload, conversation_id: audit_log.append(
            kind, payload, conversation_id=conversation_id
        ),
    )
    log.info("kefu ready: model=%s kb=%s (%d chunks)", model and model.describe(), kb.version, len(kb.chunks))
    return Runtime(settings=settings, stores=stores, kb=kb, model=model, assistant=assistant, audit=audit_log)


@functools.cache
def scope_guard(examples: Path | None) -> ScopeGuard:
    """One guard per process and examples file: its examples are embedded once."""
    from kefu.kb.embeddings import shared_embedder
    from kefu.safety.scope import DEFAULT_EXAMPLES, ScopeGuard

    return ScopeGuard.from_examples(examples or DEFAULT_EXAMPLES, shared_embedder())


def open_audit_log(settings: Settings, engine: Engine) -> AuditLog:
    """The audit log on ``engine`` with the ``KEFU_AUDIT_KEYS`` ring (the CLI's audit commands)."""
    from kefu.audit import AuditLog
    from kefu.storage.factory import settings_keyring

    return AuditLog(engine, settings_keyring(settings))


def flow_engine(settings: Settings, audit_log: AuditLog) -> FlowEngine | None:
    """Task flows over the configured order system, or None when there is none (see KEFU_ERP_URL).
    Every call the flows make to the order system is appended to the audit chain."""
    from datetime import UTC, datetime

    from kefu.flows import FlowEngine, demo_flows
    from kefu.tools.audited import AuditedOrderSystem

    orders = order_system(settings)
    if orders is None:
        return None

    def append(kind: str, payload: dict[str, Any], conversation_id: str | None) -> object:
        return audit_log.append(kind, payload, conversation_id=conversation_id, actor="tool")

    return FlowEngine(demo_flows(), AuditedOrderSystem(orders, append), clock=lambda: datetime.now(UTC))


def order_system(settings: Settings) -> OrderSystem | None:
    if settings.erp_url:
        from kefu.tools.http_erp import HttpOrderSystem

        return HttpOrderSystem(settings.erp_url, settings.erp_token.get_secret_value())
    if settings.demo_erp:
        from kefu.tools.demo_erp.local import DemoOrderSystem
        from kefu.tools.demo_erp.seed import seed_demo
        from kefu.tools.demo_erp.store import ErpStore

        store = ErpStore(settings.data_dir / "demo-erp.db")
        store.reset()  # re-seeded at each start: "delivered 5 days ago" stays true
        seed_demo(store)
        return DemoOrderSystem(store)
    return None


def open_knowledge_base(settings: Settings) -> KnowledgeBase:
    from kefu.kb.embeddings import shared_embedder
    from kefu.kb.index import KnowledgeBase

    return KnowledgeBase.open(
        settings.kb_dir,
        settings.effective_index_dir,
        embedder=shared_embedder(),
        faq_direct_threshold=settings.faq_direct_threshold,
        grounded_threshold=settings.grounded_threshold,
    )
