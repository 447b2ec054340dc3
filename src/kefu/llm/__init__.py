"""Model backends behind the ``ChatModel`` seam, chosen once at start-up by ``KEFU_LLM``.

    local     the bundled (or KEFU_LOCAL_MODEL_PATH) GGUF in a supervised  kefu.llm.supervisor
              worker process (llama.cpp there: kefu.llm.worker, kefu.llm.local)
    openai    any OpenAI-compatible endpoint (KEFU_LLM_BASE_URL …)         kefu.llm.openai_compat
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
    "build_chat_model",
    "ensure_ready",
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
        from kefu.llm.openai_compat import OpenAICompatModel

        return OpenAICompatModel(
            settings.llm_base_url,
            settings.llm_api_key,
            settings.llm_model,
            timeout=settings.llm_timeout,
            max_retries=settings.llm_max_retries,
        )
    from kefu.llm.supervisor import LocalWorkerModel

    return LocalWorkerModel.from_settings(settings)


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
