"""Liveness and readiness."""

from __future__ import annotations

from anyio import to_thread
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from kefu.api.deps import RuntimeDep
from kefu.llm import breaker_states, model_readiness

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    checks: dict[str, str] = {}
    for name, ping in (
        ("database", runtime.stores.ping_database),
        ("sessions", runtime.stores.sessions.ping),
    ):
        try:
            await to_thread.run_sync(ping)
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"error: {exc}"
    model_ready, checks["model"] = model_readiness(runtime.model)
    if not model_ready:  # the local model's worker is (re)starting: say why
        checks["model"] = f"not ready: {checks['model']}"
    breakers = breaker_states(runtime.model)
    if breakers is not None:  # an open breaker keeps /readyz 200: the chat answers from the knowledge base
        checks["model_breaker"] = breakers
    checks["knowledge_base"] = f"{runtime.kb.version} ({len(runtime.kb.chunks)} chunks)"
    ready = model_ready and all(not value.startswith("error") for value in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503
    )
