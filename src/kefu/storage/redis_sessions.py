"""``RedisSessionStore``: session state as JSON under ``<prefix><session_id>``, expiring by
Redis's own TTL (``SET … EX``), shared by every API replica.

``DivertingSessionStore`` keeps a Redis outage from becoming a chat outage: while Redis cannot be
reached, sessions are read from and written to the database (``SqlSessionStore``), with one warning
line; when Redis answers again, the sessions written meanwhile are moved back to it (the newer copy
wins), so a conversation keeps its turns and an ongoing flow across the outage. A session that was only
in Redis is not readable during the outage: that conversation starts a fresh session (its messages
stay in the database)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from kefu.errors import ConfigError
from kefu.storage.base import SessionState
from kefu.storage.engine import CONNECT_TIMEOUT_S, StoreUnavailable
from kefu.storage.sessions_sql import SqlSessionStore

log = logging.getLogger("kefu.storage")
T = TypeVar("T")

try:
    import redis
except ImportError:  # the optional `redis` extra
    redis = None  # type: ignore[assignment]


class RedisSessionStore:
    def __init__(self, url_or_client: Any, ttl_seconds: int, prefix: str = "kefu:session:") -> None:
        if ttl_seconds <= 0:
            raise ValueError(f"ttl_seconds must be positive, got {ttl_seconds}")
        self.ttl_seconds = int(ttl_seconds)
        self.prefix = prefix
        self._owns_client = isinstance(url_or_client, str)
        self.client = _client(url_or_client) if self._owns_client else url_or_client

    def load(self, session_id: str) -> SessionState | None:
        with self._reachable():
            raw = self.client.get(self.prefix + session_id)
        return SessionState.from_json(raw) if raw is not None else None

    def save(self, state: SessionState) -> None:
        with self._reachable():
            self.client.set(self.prefix + state.session_id, state.to_json(), ex=self.ttl_seconds)

    def delete(self, session_id: str) -> None:
        with self._reachable():
            self.client.delete(self.prefix + session_id)

    def ping(self) -> None:
        with self._reachable():
            self.client.ping()

    def close(self) -> None:
        """Close the connection pool if this store opened it (from a URL)."""
        if self._owns_client:
            self.client.close()

    @contextmanager
    def _reachable(self) -> Iterator[None]:
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as err:
            raise StoreUnavailable(
                f"cannot reach Redis at KEFU_REDIS_URL={_describe(self.client)} ({err}); check that "
                "Redis is running and the URL is right, or unset KEFU_REDIS_URL to keep sessions "
                "in the database"
            ) from err


class DivertingSessionStore:
    """Redis first; the database while Redis is down; sessions written meanwhile moved back after."""

    def __init__(self, redis_store: RedisSessionStore, fallback: SqlSessionStore) -> None:
        self.redis, self.fallback = redis_store, fallback
        self._diverted: set[str] = set()  # session ids whose newest state is in the database
        self._lock = threading.Lock()
        self._down = False

    def load(self, session_id: str) -> SessionState | None:
        found = self._redis(lambda: self.redis.load(session_id))
        if found is None:  # Redis down: the database's copy (written during this outage, if any)
            return self.fallback.load(session_id)
        return found[0]

    def save(self, state: SessionState) -> None:
        if self._redis(lambda: self.redis.save(state)) is None:
            self.fallback.save(state)
            with self._lock:
                self._diverted.add(state.session_id)

    def delete(self, session_id: str) -> None:
        self.fallback.delete(session_id)
        with self._lock:
            self._diverted.discard(session_id)
        self._redis(lambda: self.redis.delete(session_id))

    def ping(self) -> None:
        """Redis's state for /readyz; the chat keeps working (on the database) while this raises."""
        self.redis.ping()

    def close(self) -> None:
        self.redis.close()

    def _redis(self, call: Callable[[], T]) -> tuple[T] | None:
        """``(result,)`` from Redis, or ``None`` when it cannot be reached (logged once per outage)."""
        try:
            result = call()
        except StoreUnavailable as err:
            with self._lock:
                first, self._down = not self._down, True
            if first:
                log.warning(
                    "%s — sessions go to the database until Redis answers again; conversations continue",
                    err,
                )
            return None
        if self._down or self._diverted:  # back: move the diverted sessions first, then ask again
            self._recovered()
            result = call()
        return (result,)

    def _recovered(self) -> None:
        with self._lock:
            was_down, self._down = self._down, False
            moving, self._diverted = set(self._diverted), set()
        if was_down:
            log.warning("Redis answers again: moving %d session(s) back from the database", len(moving))
        for session_id in moving:
            state = self.fallback.load(session_id)
            try:
                current = self.redis.load(session_id)
                if state is not None and (current is None or state.updated_at >= current.updated_at):
                    self.redis.save(state)
            except StoreUnavailable:
                with self._lock:  # down again: keep them diverted
                    self._diverted.add(session_id)
                continue
            self.fallback.delete(session_id)


def _client(url: str) -> Any:
    if redis is None:
        raise ConfigError(
            "KEFU_REDIS_URL is set but the redis package is not installed; "
            "run `pip install 'kefu[redis]'` or unset KEFU_REDIS_URL"
        )
    try:
        return redis.Redis.from_url(
            url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=CONNECT_TIMEOUT_S
        )
    except ValueError as err:
        raise ConfigError(
            f"KEFU_REDIS_URL={url!r} is not a Redis URL ({err}); use redis://host:6379/0"
        ) from None


def _describe(client: Any) -> str:
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    return f"redis://{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"
