"""Model backends behind the ``ChatModel`` seam, chosen once at start-up by ``KEFU_LLM``.

    local     the bundled (or KEFU_LOCAL_MODEL_PATH) GGUF in a supervised  kefu.llm.supervisor
              worker process (llama.cpp there: kefu.llm.worker, kefu.llm.local)
    openai    any OpenAI-compatible endpoint (KEFU_LLM_BASE_URL …)         kefu.llm.openai_compat
              behind a circuit breaker, then the optional KEFU_LLM_FALLBACK_* kefu.llm.breaker
              endpoint, then the local model (KEFU_LLM_FALLBACK_LOCAL, started
              when first needed); all failed → the orchestrator's FAQ / KB
              sentences / the fallback reply offering a human
    scripted  replies from KEFU_SCRIPTED_REPLIES, then deterministic ones  kefu.llm.testing
    none      no model: ``build_chat_model`` returns ``None`` and the dialog layer never generates
              (it answers from FAQ entries or says it has no answer)

Backends are imported only when chosen, so ``KEFU_LLM=openai`` never needs llama.cpp.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from kefu.config import Settings
from kefu.llm.base import ChatModel, ChatRequest, Message, Reply, StreamChunk, Usage

__all__ = [
    "ChatModel",
    "ChatRequest",
    "Message",
    "Reply",
    "StreamChunk",
    "Usage",
    "breaker_states",
    "build_chat_model",
    "build_endpoint",
    "ensure_ready",
    "local_fallback",
    "model_readiness",
]


@runtime_checkable
class _Checkable(Protocol):
    async def check(self) -> None: ...


@runtime_checkable
class _Supervised(Protocol):
    def readiness(self) -> tuple[bool, str]: ...


def build_chat_model(settings: Settings) -> ChatModel | None:
    """The configured model, not yet loaded or contacted (see ``ensure_ready``); ``None`` for "none".

    Raises ``ModelUnavailable`` when KEFU_LLM=local and llama-cpp-python is not installed."""
    if settings.llm == "none":
        return None
    if settings.llm == "scripted":
        from kefu.llm.testing import ScriptedModel

        return ScriptedModel(list(settings.scripted_replies))
    if settings.llm == "openai":
        from kefu.llm.breaker import FallbackChain

        endpoints = [(settings.llm_base_url, settings.llm_api_key, settings.llm_model)]
        if settings.llm_fallback_base_url:
            endpoints.append(
                (settings.llm_fallback_base_url, settings.llm_fallback_api_key, settings.llm_fallback_model)
            )
        guarded: list[ChatModel] = [build_endpoint(settings, *endpoint) for endpoint in endpoints]
        local = local_fallback(settings)
        if local is not None:
            guarded.append(local)
        return FallbackChain(guarded) if len(guarded) > 1 else guarded[0]
    from kefu.llm.supervisor import LocalWorkerModel

    return LocalWorkerModel.from_settings(settings)


def build_endpoint(settings: Settings, base_url: str, api_key: str, name: str) -> ChatModel:
    """One OpenAI-compatible endpoint behind its own circuit breaker (shared through KEFU_REDIS_URL)
    and per-call timeout."""
    from kefu.breakers import breaker_for
    from kefu.llm.breaker import BreakerModel, CircuitBreaker
    from kefu.llm.openai_compat import OpenAICompatModel

    remote = OpenAICompatModel(
        base_url, api_key, name, timeout=settings.llm_timeout, max_retries=settings.llm_max_retries
    )
    breaker = breaker_for(
        settings,
        remote.describe(),  # "model @ url": the name says where
        "",
        kind=CircuitBreaker,
        fallback="the next model or the knowledge base answers",
    )
    # 95 % of the answer's own deadline (the orchestrator's KEFU_LLM_TIMEOUT), so a hung call is
    # cut here first and counted as a failure, not cancelled from outside unseen
    return BreakerModel(remote, breaker, timeout=settings.llm_timeout * 0.95)


def local_fallback(settings: Settings) -> ChatModel | None:
    """The local model as the chain's last model step (KEFU_LLM_FALLBACK_LOCAL), or None.

    "auto" adds it only when llama-cpp-python is importable and the weights are on this machine
    (KEFU_LOCAL_MODEL_PATH, or the bundled model joined or its part packages installed); "on" adds it
    and fails at start-up, naming the fix, when it cannot run. It starts when first needed."""
    from kefu.errors import ModelUnavailable
    from kefu.llm.breaker import LazyLocalModel
    from kefu.llm.supervisor import LocalWorkerModel
    from kefu.llm.weights import INSTALL_HINT

    if settings.llm_fallback_local == "off":
        return None
    missing = _local_model_missing(settings)
    if missing:
        if settings.llm_fallback_local == "on":
            raise ModelUnavailable(
                f"KEFU_LLM_FALLBACK_LOCAL=on, but {missing}; {INSTALL_HINT}, or set KEFU_LLM_FALLBACK_LOCAL=auto"
            )
        return None
    return LazyLocalModel(lambda: LocalWorkerModel.from_settings(settings))


def _local_model_missing(settings: Settings) -> str:
    """What the local model lacks on this machine ("" when it can run)."""
    import importlib.util

    from kefu.llm.weights import BUNDLED_FILENAME, PART_MODULES

    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python is not installed"
    if settings.local_model_path is not None:
        return "" if settings.local_model_path.is_file() else f"{settings.local_model_path} is not a file"
    if (settings.cache_dir / "models" / BUNDLED_FILENAME).is_file():
        return ""
    if all(importlib.util.find_spec(name) is not None for name in PART_MODULES):
        return ""
    return "the bundled model's weights are not installed"


async def ensure_ready(model: ChatModel | None) -> None:
    """Start-up check: load the local model / reach the endpoint; raises ``ModelUnavailable``."""
    if isinstance(model, _Checkable):
        await model.check()


def model_readiness(model: ChatModel | None) -> tuple[bool, str]:
    """(ready, detail) for ``/readyz``: a supervised model says whether its worker is up, and why not."""
    if model is None:
        return True, "none (KEFU_LLM=none)"
    if isinstance(model, _Supervised):
        return model.readiness()
    return True, model.describe()


def breaker_states(model: ChatModel | None) -> str | None:
    """The model's circuit breakers for ``/readyz``: "closed", "open until 20:31:05Z (another 12 s)", or
    one "name: state" per breaker of a fallback chain; ``None`` when the model has none."""
    from kefu.llm.breaker import breakers_of

    breakers = breakers_of(model)
    if not breakers:
        return None
    if len(breakers) == 1:
        return breakers[0].describe()
    return "; ".join(f"{b.name}: {b.describe()}" for b in breakers)
