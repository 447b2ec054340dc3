"""The in-process background worker of the knowledge base: one asyncio task in the server.

    worker = KbWorker(knowledge, refresh_seconds=5, sync_seconds=60, sync=True)
    worker.start()          # in the app's lifespan (``Runtime.start_background``)
    await worker.stop()     # cancels the loop; a refresh or sync already running finishes first

Every ``refresh_seconds`` it calls ``knowledge.refresh()`` in a thread, so a version made elsewhere
(``kefu kb …``, another replica's admin API, a Celery worker) is served within seconds. Every
``sync_seconds`` it runs ``knowledge.sync_due()`` — unless ``sync`` is False, which is the case when
KEFU_CELERY_BROKER_URL is set: then the Celery beat schedules the syncs (``kefu.worker``). A failing
tick is logged and the loop goes on; only cancellation ends it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from anyio import to_thread

if TYPE_CHECKING:
    from kefu.config import Settings
    from kefu.kb.service import KnowledgeService

log = logging.getLogger("kefu.kb.worker")


class KbWorker:
    def __init__(
        self,
        knowledge: KnowledgeService,
        *,
        refresh_seconds: float = 5.0,
        sync_seconds: float = 60.0,
        sync: bool = True,
    ) -> None:
        self.knowledge = knowledge
        self.refresh_seconds = refresh_seconds
        self.sync_seconds = sync_seconds
        self.sync = sync
        self.refreshes = 0  # ticks whose refresh ran (with or without a new version)
        self.sync_runs = 0  # sync_due calls
        self.failures = 0  # ticks that raised (logged)
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, knowledge: KnowledgeService, settings: Settings) -> KbWorker:
        return cls(
            knowledge,
            refresh_seconds=settings.kb_refresh_seconds,
            sync_seconds=settings.kb_sync_check_seconds,
            sync=not settings.celery_broker_url,
        )

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name="kefu-kb-worker")
        return self._task

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None or task.done():
            return
        task.cancel()
        await asyncio.wait([task])  # returns once it ended; our own cancellation still propagates

    async def run(self) -> None:
        # The first sync check comes one period after start-up (the bootstrap has just synced
        # KEFU_KB_DIR); it catches up every source whose interval passed while the server was down.
        next_sync = time.monotonic() + self.sync_seconds
        while True:
            await asyncio.sleep(self.refresh_seconds)
            if self.sync and time.monotonic() >= next_sync:
                await self._tick("sync", self._sync_due)
                next_sync = time.monotonic() + self.sync_seconds
            await self._tick("refresh", self._refresh)

    async def _tick(self, what: str, work: Callable[[], None]) -> None:
        try:
            await to_thread.run_sync(work)
        except Exception:
            self.failures += 1
            log.exception("knowledge-base %s failed; retrying at the next tick", what)

    def _refresh(self) -> None:
        self.knowledge.refresh()
        self.refreshes += 1

    def _sync_due(self) -> None:
        from kefu.kb.service import log_report

        reports = self.knowledge.sync_due()
        self.sync_runs += 1
        for report in reports:  # a broken file is a warning once, then one line while it stays broken
            log_report(report)
