"""The optional rerank step: an OpenAI-style ``POST /rerank`` endpoint (vLLM, Xinference, Jina, Cohere
and TEI speak it) reorders the best fused candidates before the top k go to the model.

    reranker = HttpReranker("http://127.0.0.1:8002/v1", "bge-reranker-v2-m3")
    order = reranker.rerank("耳机保修多久", ["…", "…"])     # candidate indices, best first

Reranking changes which chunks the model reads and in what order; it never changes the decision
(verbatim FAQ / grounded / none), which stays on the calibrated dense confidence. A reranker that
fails or is slow is logged and skipped: the fused order is served, the turn never fails. With a
``breaker`` (``kefu.breakers``) its failures count against it; while it is open the reranker is not
called at all (the breaker logs each change once instead of a warning per search).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import httpx

from kefu.breakers import BreakerOpen, CircuitBreaker

log = logging.getLogger("kefu.kb")


class Reranker(Protocol):
    def rerank(self, query: str, documents: list[str]) -> list[int] | None:
        """Indices into ``documents``, most relevant first; None when the reranker is unavailable."""
        ...


class HttpReranker:
    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "",
        *,
        timeout: float = 5.0,
        client: Any = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.name = f"{model}@{base_url.rstrip('/')}"
        self.model = model
        self.breaker = breaker
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = client or httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    def rerank(self, query: str, documents: list[str]) -> list[int] | None:
        if not documents:
            return []
        body = {"model": self.model, "query": query, "documents": documents, "top_n": len(documents)}
        try:
            if self.breaker is None:
                results = self._results(body)
            else:
                results = self.breaker.guard(lambda: self._results(body), _counts_against)
            scored = sorted(
                ((float(r["relevance_score"]), int(r["index"])) for r in results), key=lambda s: (-s[0], s[1])
            )
        except BreakerOpen:
            return None  # logged once, when it opened
        except (httpx.HTTPError, KeyError, TypeError, ValueError) as exc:
            log.warning("reranker %s failed (%s); serving the fused order", self.name, exc)
            return None
        order = [i for _, i in scored if 0 <= i < len(documents)]
        seen = set(order)
        if len(seen) != len(order):
            log.warning("reranker %s returned repeated indices; serving the fused order", self.name)
            return None
        return order + [i for i in range(len(documents)) if i not in seen]

    def _results(self, body: dict[str, Any]) -> Any:
        response = self._client.post("/rerank", json=body)
        response.raise_for_status()
        return response.json()["results"]

    def close(self) -> None:
        self._client.close()


def _counts_against(exc: BaseException) -> str | None:
    """Unreachable, timed out, 5xx, 429 or an answer that is not a result list: the reranker is failing."""
    if isinstance(exc, httpx.HTTPStatusError):
        code = exc.response.status_code
        return f"HTTP {code}" if code >= 500 or code == 429 else None
    if isinstance(exc, httpx.HTTPError | KeyError | TypeError | ValueError):
        return f"{type(exc).__name__}: {exc}"
    return None
