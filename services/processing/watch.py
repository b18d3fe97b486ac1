"""The overdue watch: notices open dossiers whose appointment has passed, once each."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

from services.processing import workflow
from services.processing.store import ProcessingStore
from shared.contract import Topics
from shared.db_errors import TRANSIENT_DB_ERRORS
from shared.logging import get_logger

log = get_logger(__name__)


class OverdueWatch:
    """Reads only due rows (partial index on the deadline), so a tick costs what it finds."""

    def __init__(
        self, store: ProcessingStore, topics: Topics, interval_s: float, quiet_s: float
    ) -> None:
        self.store = store
        self.topics = topics
        self.interval_s = interval_s
        # A dossier changed within the last `quiet_s` seconds may still be receiving its history
        # (an import's steps in consecutive batches): judged once it is quiet.
        self.quiet_s = quiet_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="overdue-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def tick(self, now: datetime | None = None) -> int:
        """Report what is overdue at `now`; returns how many dossiers became overdue."""
        total = 0
        while True:
            async with self.store.batch() as tx:
                found = await workflow.report_overdue(
                    tx, now or datetime.now(UTC), self.topics, quiet_s=self.quiet_s
                )
            total += len(found)
            for change in found:
                log.info(
                    "dossier overdue",
                    dossier_code=change.dossier.code,
                    unit=change.dossier.competent_unit,
                )
            if len(found) < 500:
                return total

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except TRANSIENT_DB_ERRORS as exc:
                log.warning("overdue watch: database unavailable", error=repr(exc))
            await asyncio.sleep(self.interval_s)
