"""The FastAPI application factory. Everything stateful is built in the lifespan, from settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from kefu import __version__
from kefu.api.errors import install_error_handlers
from kefu.api.ratelimit import RateLimiter, RateLimitPolicy, RateLimits, build_rate_limiter
from kefu.api.routes import agent, conversations, health, metrics, openai, ratings, web
from kefu.api.routes import gaps as gap_routes
from kefu.api.routes import kb as kb_routes
from kefu.api.timing import ServerTiming
from kefu.config import Settings, load_settings
from kefu.llm.base import ChatModel
from kefu.observe.http import RequestMetrics
from kefu.runtime import Runtime, build_runtime


def create_app(
    settings: Settings | None = None,
    *,
    model: ChatModel | None = None,
    runtime: Runtime | None = None,
    rate_limiter: RateLimiter | None = None,
) -> FastAPI:
    """Build the app. ``model`` overrides the configured model (tests and benchmarks); ``runtime`` is
    one already built on the server's event loop (``kefu serve``: built once, before the port opens, so
    a bad setting is one clear line) — the app closes it at shutdown. ``rate_limiter`` overrides the one
    built from settings (tests: a limiter on a frozen clock)."""
    settings = settings or load_settings()
    prebuilt = [runtime] if runtime is not None else []
    rate_limiter = rate_limiter or build_rate_limiter(settings.redis_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = prebuilt.pop() if prebuilt else await build_runtime(settings, model=model)
        app.state.runtime = runtime
        app.state.model = runtime.model
        runtime.start_background()
        try:
            yield
        finally:
            await runtime.aclose()
            await rate_limiter.aclose()

    app = FastAPI(
        title="kefu",
        version=__version__,
        description="Self-hosted LLM customer service: grounded answers with citations.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(RateLimits, policy=RateLimitPolicy.from_settings(settings), limiter=rate_limiter)
    app.add_middleware(ServerTiming)
    app.add_middleware(RequestMetrics, label=settings.version_label)  # outermost: sees the 429s too
    for module in (health, metrics, conversations, openai, web, agent):
        app.include_router(module.router)
    app.include_router(agent.stats_router)
    app.include_router(kb_routes.router)
    app.include_router(ratings.router)  # ratings and CSAT (issue #13 part 1)
    app.include_router(gap_routes.router)  # the knowledge-gap loop (issue #13 part 4)
    app.mount("/static", StaticFiles(directory=web.STATIC_DIR), name="static")
    return app
