"""Group commit of receptions: the submissions in flight share one transaction.

Each submission used to be its own transaction (five round trips and a commit) holding its
unit's daily-sequence row until the commit, so concurrent counters of one unit queued behind each
other. Here a writer takes every reception waiting, stores them in one statement (one round trip,
atomic: `IntakeStore.receive_batch`) and answers each request when it is durable: the same
guarantee (a receipt is only given for a committed dossier and its event) for a batch at a time.
"""

from __future__ import annotations

import asyncio

from services.intake.store import IntakeStore, Reception, StoredDossier
from shared.db_errors import TRANSIENT_DB_ERRORS
from shared.logging import get_logger

log = get_logger(__name__)

_Waiting = tuple[Reception, "asyncio.Future[StoredDossier | None]"]


class ReceptionWriter:
    def __init__(self, store: IntakeStore, *, max_batch: int = 500, transactions: int = 6) -> None:
        self._store = store
        self._max_batch = max_batch
        self._transactions = transactions
        self._waiting: list[_Waiting] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="reception-writer")

    async def stop(self) -> None:
        """Write everything waiting, then stop (a write in flight is never interrupted)."""
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            await self._task

    async def receive(self, reception: Reception) -> StoredDossier | None:
        """The stored dossier once committed; None if its idempotency key was already taken."""
        if self._task is None or self._stopping:
            # Not running (a script, or shutting down): a transaction of its own.
            (stored,) = await self._store.receive_batch([reception])
            return stored
        future: asyncio.Future[StoredDossier | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((reception, future))
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        # Up to `transactions` batches are written at once: while some wait for PostgreSQL (its
        # work, the WAL flush, a turn of this busy loop to read the answer) the next is sent.
        # Batches grow with the load meanwhile. Six measured best on two cores (see
        # docs/performance.md): with two, a request arriving just after both were sent waited for
        # one to finish, then for its own.
        slots = asyncio.Semaphore(self._transactions)
        writing: set[asyncio.Task[None]] = set()

        async def write(batch: list[_Waiting]) -> None:
            try:
                await self._write(batch)
            finally:
                slots.release()

        while True:
            while self._waiting:
                await slots.acquire()
                # Only this loop takes from the queue, so it still holds what it held.
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                task = asyncio.create_task(write(batch))
                writing.add(task)
                task.add_done_callback(writing.discard)
            if self._stopping:
                await asyncio.gather(*writing)
                if not self._waiting:
                    return
                continue
            await self._wakeup.wait()
            self._wakeup.clear()

    async def _write(self, batch: list[_Waiting]) -> None:
        try:
            results = await self._store.receive_batch([r for r, _ in batch])
        except Exception as exc:
            if len(batch) == 1 or isinstance(exc, TRANSIENT_DB_ERRORS):
                for _, future in batch:
                    _settle(future, exc)
                return
            # One reception the database refuses must not fail the others: each on its own.
            log.warning("reception batch refused, writing one by one", size=len(batch))
            for item in batch:
                await self._write([item])
            return
        for (_, future), stored in zip(batch, results, strict=True):
            _settle(future, stored)


def _settle(
    future: asyncio.Future[StoredDossier | None], outcome: StoredDossier | BaseException | None
) -> None:
    if future.done():  # the client went away; its dossier is stored all the same
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
