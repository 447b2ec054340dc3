"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from kefu.api.deps import RuntimeDep
from kefu.breakers import find_breaker
from kefu.llm import breaker_states, model_readiness
from kefu.llm.breaker import breakers_of
from kefu.runtime import Runtime
from kefu.storage.redis_sessions import DivertingSessionStore

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    checks: dict[str, Any] = {}
    for name, ping in (
        ("database", runtime.stores.ping_database),
        ("sessions", runtime.stores.sessions.ping),
    ):
        try:
            await to_thread.run_sync(ping)
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"error: {exc}"
            if name == "sessions" and isinstance(runtime.stores.sessions, DivertingSessionStore):
                checks[name] = f"degraded (sessions in the database until Redis answers): {exc}"
    model_ready, checks["model"] = model_readiness(runtime.model)
    if not model_ready:  # the local model's worker is (re)starting: say why
        checks["model"] = f"not ready: {checks['model']}"
    breakers = breaker_states(runtime.model)
    if breakers is not None:  # an open breaker keeps /readyz 200: the chat answers from the knowledge base
        checks["model_breaker"] = breakers
    checks["knowledge_base"] = f"{runtime.kb.version} ({len(runtime.kb.chunks)} chunks)"
    ready = model_ready and all(not str(value).startswith("error") for value in checks.values())
    checks["breakers"] = breaker_map(runtime)  # open ones degrade the replies, never the readiness
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503
    )


def breaker_map(runtime: Runtime) -> dict[str, str]:
    """Every circuit breaker of this process, name → "closed" / "open until …" / "half-open": the model
    endpoints, then "embeddings", "rerank" and "erp" when those are HTTP services."""
    found = {b.name: b.describe() for b in breakers_of(runtime.model)}
    flows = runtime.assistant.flows
    clients = (
        runtime.knowledge.embedder,
        runtime.knowledge.reranker,
        getattr(flows, "orders", None),
    )
    for client in clients:
        breaker = find_breaker(client)
        if breaker is not None:
            found[breaker.name] = breaker.describe()
    return found
