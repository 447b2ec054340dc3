"""``RedisSessionStore``: session state as JSON under ``<prefix><session_id>``, expiring by
Redis's own TTL (``SET … EX``), shared by every API replica."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kefu.errors import ConfigError
from kefu.storage.base import SessionState
from kefu.storage.engine import CONNECT_TIMEOUT_S, StoreUnavailable

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
