"""Where the answer cache keeps its entries: in process (an LRU with a TTL) or in Redis, shared by replicas.

    entries = build_entries(redis_url, size=2000, ttl_seconds=86400)
    await entries.put(key, entry)          # key = "<cache key digest>:<sha256 of the normalised question>"
    await entries.get(key)                 # → CachedAnswer | None (expired or evicted: None)

``RedisEntries`` keeps each entry as JSON under ``kefu:answers:<key>`` with the TTL (``SET … EX``); while
Redis is unreachable, too slow or failing it uses an in-process LRU — one warning line, never an outage —
and tries Redis again every few seconds. ``SemanticIndex`` holds the question vectors per cache key in
process (see ``kefu.dialog.cache`` for why).
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from kefu.kb.types import Chunk, Hit

log = logging.getLogger("kefu.dialog")


@dataclass
class CachedAnswer:
    """A knowledge answer as it was sent (before compliance notices, which each turn adds itself)."""

    question: str  # the normalised question it answered
    kind: str  # faq / grounded / policy
    text: str
    hits: list[Hit]  # its citations, in the order the text numbers them
    kb_version: str
    mode: str = ""
    route: str = ""  # the model route it was produced on ("" when none)
    policy: dict[str, Any] | None = None
    vector: np.ndarray | None = field(default=None, repr=False)  # the question's query embedding

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "question": self.question,
            "kind": self.kind,
            "text": self.text,
            "hits": [_hit_data(h) for h in self.hits],
            "kb_version": self.kb_version,
            "mode": self.mode,
            "route": self.route,
            "policy": self.policy,
        }
        if self.vector is not None:
            data["vector"] = base64.b64encode(np.asarray(self.vector, dtype=np.float32).tobytes()).decode()
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str | bytes) -> CachedAnswer:
        data = json.loads(raw)
        vector = data.get("vector")
        return cls(
            question=data["question"],
            kind=data["kind"],
            text=data["text"],
            hits=[_hit_from(h) for h in data["hits"]],
            kb_version=data["kb_version"],
            mode=data.get("mode", ""),
            route=data.get("route", ""),
            policy=data.get("policy"),
            vector=np.frombuffer(base64.b64decode(vector), dtype=np.float32) if vector else None,
        )


def _hit_data(hit: Hit) -> dict[str, Any]:
    return {"chunk": vars(hit.chunk), "score": hit.score, "dense": hit.dense, "sparse": hit.sparse}


def _hit_from(data: dict[str, Any]) -> Hit:
    return Hit(Chunk(**data["chunk"]), data["score"], data["dense"], data["sparse"])


class Entries(Protocol):
    async def get(self, key: str) -> CachedAnswer | None: ...

    async def put(self, key: str, entry: CachedAnswer) -> None: ...

    async def aclose(self) -> None: ...


class MemoryEntries:
    """At most ``size`` entries, least recently used dropped first; each lives ``ttl_seconds``."""

    def __init__(self, size: int, ttl_seconds: float, clock: Any = time.monotonic) -> None:
        self.size, self.ttl, self.clock = size, ttl_seconds, clock
        self._items: OrderedDict[str, tuple[float, CachedAnswer]] = OrderedDict()

    def take(self, key: str) -> CachedAnswer | None:
        found = self._items.get(key)
        if found is None:
            return None
        if found[0] <= self.clock():
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return found[1]

    def keep(self, key: str, entry: CachedAnswer) -> None:
        self._items[key] = (self.clock() + self.ttl, entry)
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    async def get(self, key: str) -> CachedAnswer | None:
        return self.take(key)

    async def put(self, key: str, entry: CachedAnswer) -> None:
        self.keep(key, entry)

    async def aclose(self) -> None:
        return None


class RedisEntries:
    """Entries in Redis (``<prefix><key>``, JSON, expiring after ``ttl_seconds``); in process while it is
    unreachable, too slow (``timeout``) or failing, tried again every ``retry_seconds``."""

    def __init__(
        self,
        url: str,
        *,
        size: int,
        ttl_seconds: int,
        prefix: str = "kefu:answers:",
        timeout: float = 0.25,
        retry_seconds: float = 5.0,
    ) -> None:
        import redis.asyncio as redis

        self.prefix, self.ttl = prefix, ttl_seconds
        self.client: Any = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._errors = (redis.RedisError, OSError)  # unreachable, too slow, out of memory, read-only …
        self.fallback = MemoryEntries(size, ttl_seconds)
        self._retry_seconds = retry_seconds
        self._down_until: float | None = None  # monotonic time of the next try while Redis is down

    async def get(self, key: str) -> CachedAnswer | None:
        if self._down():
            return self.fallback.take(key)
        try:
            raw = await self.client.get(self.prefix + key)
        except self._errors as exc:
            self._failed(exc)
            return self.fallback.take(key)
        self._back()
        try:
            return CachedAnswer.from_json(raw) if raw is not None else None
        except (ValueError, KeyError, TypeError) as exc:  # written by another version: a miss
            log.warning("answer cache: ignored an unreadable entry %s%s (%s)", self.prefix, key, exc)
            return None

    async def put(self, key: str, entry: CachedAnswer) -> None:
        if self._down():
            self.fallback.keep(key, entry)
            return
        try:
            await self.client.set(self.prefix + key, entry.to_json(), ex=self.ttl)
        except self._errors as exc:
            self._failed(exc)
            self.fallback.keep(key, entry)
            return
        self._back()

    async def aclose(self) -> None:
        await self.client.aclose()

    def _down(self) -> bool:
        return self._down_until is not None and time.monotonic() < self._down_until

    def _failed(self, exc: BaseException) -> None:
        if self._down_until is None:
            log.warning(
                "answer cache: Redis at KEFU_REDIS_URL is unavailable (%s); caching answers in this "
                "process until it is back (replicas do not share cached answers meanwhile)",
                exc,
            )
        self._down_until = time.monotonic() + self._retry_seconds

    def _back(self) -> None:
        if self._down_until is not None:
            log.info("answer cache: Redis is back; cached answers are shared between replicas again")
            self._down_until = None


def build_entries(redis_url: str, *, size: int, ttl_seconds: int) -> Entries:
    """Redis when ``KEFU_REDIS_URL`` is set (nothing connects until the first lookup), else in process."""
    if redis_url:
        return RedisEntries(redis_url, size=size, ttl_seconds=ttl_seconds)
    return MemoryEntries(size, ttl_seconds)


class SemanticIndex:
    """Per cache key, the normalised questions answered and their query vectors (at most ``size`` in
    all; the least recently added or used dropped first)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()  # (key, question) → vector
        self._matrices: dict[str, tuple[list[str], np.ndarray]] = {}  # key → (questions, matrix), rebuilt

    def __len__(self) -> int:
        return len(self._vectors)

    def has(self, key: str) -> bool:
        return self._matrix(key) is not None

    def add(self, key: str, question: str, vector: np.ndarray) -> None:
        self._vectors[(key, question)] = np.asarray(vector, dtype=np.float32)
        self._vectors.move_to_end((key, question))
        self._matrices.pop(key, None)
        while len(self._vectors) > self.size:
            (old, _), _ = self._vectors.popitem(last=False)
            self._matrices.pop(old, None)

    def drop(self, key: str, question: str) -> None:
        if self._vectors.pop((key, question), None) is not None:
            self._matrices.pop(key, None)

    def nearest(self, key: str, vector: np.ndarray) -> tuple[str, float] | None:
        """The closest question under ``key`` and its cosine (vectors are L2-normalised)."""
        built = self._matrix(key)
        if built is None:
            return None
        questions, matrix = built
        scores = matrix @ np.asarray(vector, dtype=np.float32)
        best = int(np.argmax(scores))
        self._vectors.move_to_end((key, questions[best]))
        return questions[best], float(scores[best])

    def _matrix(self, key: str) -> tuple[list[str], np.ndarray] | None:
        built = self._matrices.get(key)
        if built is None:
            mine = [(q, v) for (k, q), v in self._vectors.items() if k == key]
            if not mine:
                return None
            built = ([q for q, _ in mine], np.vstack([v for _, v in mine]))
            self._matrices[key] = built
        return built
