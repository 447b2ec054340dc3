"""One turn at a time per conversation.

Two messages of one conversation arriving together (a double click, two tabs) must not interleave: the
second waits for the first's reply to be stored, so it sees the first's session and flow state.
``LocalLocks`` does this within one process; a Redis-backed implementation does it across replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

log = logging.getLogger("kefu.locks")


class ConversationLocks(Protocol):
    def hold(self, conversation_id: str) -> AbstractAsyncContextManager[None]:
        """Held for the whole turn of ``conversation_id``."""
        ...


class LocalLocks:
    """An ``asyncio.Lock`` per conversation, forgotten when no turn holds or waits for it."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    @asynccontextmanager
    async def hold(self, conversation_id: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(conversation_id, asyncio.Lock())
        async with lock:
            yield


# KEYS[1] = the lock; ARGV[1] = the holder's token. Only the holder releases or extends its own lock.
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
EXTEND_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


class RedisLocks:
    """One Redis key per conversation held for the turn: ``SET NX PX`` with a random token, renewed every
    third of ``ttl`` while the turn runs, released by a compare-and-delete script. A replica that dies
    mid-turn leaves a lock that expires ``ttl`` seconds later.

    Turns of one conversation in this process queue on a ``LocalLocks`` first (in order, and only one of
    them polls Redis); the one at the head polls with backoff from ``poll`` up to ``max_poll`` seconds.
    While Redis is unreachable (or answers errors) turns are serialised in this process only — one
    warning line, Redis tried again after ``retry_seconds``, never an outage."""

    def __init__(
        self,
        url: str,
        *,
        ttl: float = 30.0,
        prefix: str = "kefu:lock:conversation:",
        timeout: float = 0.5,
        poll: float = 0.005,
        max_poll: float = 0.1,
        retry_seconds: float = 5.0,
    ) -> None:
        import redis.asyncio as redis

        self.prefix = prefix
        self.ttl = ttl
        self.client: Any = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._release = self.client.register_script(RELEASE_LUA)
        self._extend = self.client.register_script(EXTEND_LUA)
        self._errors = (redis.RedisError, OSError)
        self._local = LocalLocks()
        self._poll, self._max_poll = poll, max_poll
        self._retry_seconds = retry_seconds
        self._down_until: float | None = None

    @asynccontextmanager
    async def hold(self, conversation_id: str) -> AsyncIterator[None]:
        async with self._local.hold(conversation_id):
            key, token = self.prefix + conversation_id, secrets.token_hex(16)
            if not await self._acquire(key, token):
                yield  # Redis is down: this process's lock alone
                return
            renewal = asyncio.create_task(self._renew(key, token), name=f"kefu-lock-renew:{conversation_id}")
            try:
                yield
            finally:
                renewal.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewal
                await self._unlock(key, token)

    async def _acquire(self, key: str, token: str) -> bool:
        """True once this turn holds the Redis lock; False when Redis cannot be used."""
        delay = self._poll
        while True:
            if self._down_until is not None and time.monotonic() < self._down_until:
                return False
            try:
                if await self.client.set(key, token, nx=True, px=self._ttl_ms()):
                    self._recovered()
                    return True
            except self._errors as exc:
                self._failed(exc)
                return False
            await asyncio.sleep(delay * (0.5 + random.random()))  # jitter: replicas do not poll in step
            delay = min(self._max_poll, delay * 2)

    async def _renew(self, key: str, token: str) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                extended = await self._extend(keys=[key], args=[token, self._ttl_ms()])
            except self._errors as exc:
                self._failed(exc)
                continue
            if not int(extended):
                log.warning(
                    "conversation lock %s was lost before the turn ended (Redis restarted or flushed, or "
                    "the turn outlived KEFU_CONVERSATION_LOCK_TTL without renewal): another replica may "
                    "answer this conversation at the same time; check Redis's persistence and eviction",
                    key,
                )
                return

    async def _unlock(self, key: str, token: str) -> None:
        try:
            await self._release(keys=[key], args=[token])
        except self._errors as exc:  # it expires after the TTL anyway
            log.debug("conversation lock %s not released (%s); it expires by itself", key, exc)

    def _ttl_ms(self) -> int:
        return max(1, round(self.ttl * 1000))

    def _failed(self, exc: BaseException) -> None:
        if self._down_until is None:
            log.warning(
                "conversation locks: Redis at KEFU_REDIS_URL is unavailable (%s); a conversation's turns "
                "are serialised in this process only until it is back (two replicas could interleave one "
                "conversation meanwhile)",
                exc,
            )
        self._down_until = time.monotonic() + self._retry_seconds

    def _recovered(self) -> None:
        if self._down_until is not None:
            log.info("conversation locks: Redis is back; turns are serialised across replicas again")
            self._down_until = None

    async def aclose(self) -> None:
        await self.client.aclose()


def build_locks(redis_url: str, ttl: float) -> ConversationLocks:
    """Redis locks when ``KEFU_REDIS_URL`` is set (nothing connects before the first turn), else in-process."""
    return RedisLocks(redis_url, ttl=ttl) if redis_url else LocalLocks()
