"""One turn at a time per conversation.

Two messages of one conversation arriving together (a double click, two tabs) must not interleave: the
second waits for the first's reply to be stored, so it sees the first's session and flow state.
``LocalLocks`` does this within one process; a Redis-backed implementation does it across replicas.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol


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
